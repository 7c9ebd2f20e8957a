//! Files the tool is given to read: only regular files. A FIFO would block
//! a read forever, a device (`/dev/zero`) never ends, a directory or socket
//! cannot be read; each is refused at once, by what it is. Small files
//! (secrets, rules, config) are read with a size limit.

use std::io::{Error, ErrorKind, Read};
use std::path::Path;

/// The file's metadata, if it is a regular file (symbolic links followed);
/// otherwise an error that says what it is.
pub fn regular(path: &Path) -> std::io::Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path)?;
    if meta.is_file() {
        return Ok(meta);
    }
    Err(Error::new(
        ErrorKind::InvalidInput,
        format!("{}, not a regular file", what(&meta)),
    ))
}

/// A small regular file's text, refused past `max` bytes (read no further
/// than that, whatever its size claims).
pub fn read_small(path: &Path, max: u64) -> std::io::Result<String> {
    let meta = regular(path)?;
    if meta.len() > max {
        return Err(too_large(max));
    }
    let mut text = String::new();
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_string(&mut text)?;
    if text.len() as u64 > max {
        return Err(too_large(max));
    }
    Ok(text)
}

fn too_large(max: u64) -> Error {
    Error::new(
        ErrorKind::InvalidData,
        format!("larger than {} KiB", max / 1024),
    )
}

fn what(meta: &std::fs::Metadata) -> &'static str {
    if meta.is_dir() {
        return "a folder";
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        let t = meta.file_type();
        if t.is_fifo() {
            return "a named pipe (FIFO)";
        }
        if t.is_char_device() || t.is_block_device() {
            return "a device";
        }
        if t.is_socket() {
            return "a socket";
        }
    }
    "not a file"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_files_and_small_ones_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("t");
        std::fs::write(&f, "abc").unwrap();
        assert!(regular(&f).is_ok());
        assert_eq!(read_small(&f, 10).unwrap(), "abc");
        assert!(
            read_small(&f, 2)
                .unwrap_err()
                .to_string()
                .contains("larger than")
        );
        let e = regular(dir.path()).unwrap_err();
        assert_eq!(e.to_string(), "a folder, not a regular file");
        #[cfg(unix)]
        {
            let e = regular(Path::new("/dev/zero")).unwrap_err();
            assert_eq!(e.to_string(), "a device, not a regular file");
            let fifo = dir.path().join("fifo");
            assert!(
                std::process::Command::new("mkfifo")
                    .arg(&fifo)
                    .status()
                    .unwrap()
                    .success()
            );
            let e = regular(&fifo).unwrap_err();
            assert_eq!(e.to_string(), "a named pipe (FIFO), not a regular file");
        }
    }
}
