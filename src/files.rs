//! Files: the tool reads only regular files (a FIFO would block a read
//! forever, a device such as `/dev/zero` never ends, a directory or socket
//! cannot be read; each is refused at once, by what it is), small ones
//! (secrets, rules, config) with a size limit; it hashes them; and it
//! writes its own files atomically: to a temporary file beside the real
//! one, synced, then renamed into place, so that a crash never leaves a
//! half file that looks whole.

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
    let bytes = read_capped(path, max)?.ok_or_else(|| too_large(max))?;
    String::from_utf8(bytes).map_err(|e| Error::new(ErrorKind::InvalidData, e))
}

/// A regular file's bytes; `None` past `max` bytes (read no further than
/// that, whatever its size claims, or if it grows meanwhile).
pub fn read_capped(path: &Path, max: u64) -> std::io::Result<Option<Vec<u8>>> {
    let len = regular(path)?.len();
    if len > max {
        return Ok(None);
    }
    let mut bytes = Vec::with_capacity(len as usize + 1);
    std::fs::File::open(path)?
        .take(max + 1)
        .read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= max).then_some(bytes))
}

/// The SHA-256 of bytes, in hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// The SHA-256 (hex) and size of a regular file, read in pieces.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    regular(path)?;
    let mut file = std::fs::File::open(path)?;
    let mut hash = sha2::Sha256::new();
    let size = std::io::copy(&mut file, &mut hash)?;
    Ok((hex::encode(hash.finalize()), size))
}

/// A file being written under a temporary name (`.NAME.XXXX.partial`)
/// beside `path`, renamed onto it by [`commit`](Self::commit); dropped
/// uncommitted, it is removed.
pub struct AtomicFile {
    path: std::path::PathBuf,
    tmp: tempfile::NamedTempFile,
}

impl AtomicFile {
    /// Refuses a path where something other than a regular file stands (a
    /// FIFO, device or folder is not replaced by a file), or whose folder
    /// does not exist.
    pub fn create(path: &Path) -> std::io::Result<Self> {
        if let Ok(meta) = std::fs::symlink_metadata(path)
            && !meta.is_file()
            && !meta.file_type().is_symlink()
        {
            return Err(Error::new(
                ErrorKind::InvalidInput,
                format!("it is {}, not a regular file", what(&meta)),
            ));
        }
        let dir = folder_of(path);
        if !dir.is_dir() {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("the folder {} does not exist", dir.display()),
            ));
        }
        let mut builder = tempfile::Builder::new();
        let prefix = partial_prefix(path);
        builder.prefix(&prefix).suffix(".partial");
        // Reports are for others to read (auditors): not the temp file's 0600.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            builder.permissions(std::fs::Permissions::from_mode(0o644));
        }
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp: builder.tempfile_in(dir)?,
        })
    }

    /// Where the file will be once committed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The temporary file, to write to.
    pub fn file(&self) -> &std::fs::File {
        self.tmp.as_file()
    }

    /// The temporary file's path (for a library that writes by path).
    pub fn tmp_path(&self) -> &Path {
        self.tmp.path()
    }

    /// Syncs the file to disk and renames it into place.
    pub fn commit(self) -> std::io::Result<()> {
        self.tmp.as_file().sync_all()?;
        self.tmp.persist(&self.path).map_err(|e| e.error)?;
        Ok(())
    }
}

/// Removes the temporary files a killed run left for a file at `path`.
pub fn sweep_partials(path: &Path) {
    let prefix = partial_prefix(path);
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix)
            && name.ends_with(".partial")
            && entry.file_type().is_ok_and(|t| t.is_file())
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// Writes a small file atomically; returns its SHA-256 (hex).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<String> {
    use std::io::Write;
    let file = AtomicFile::create(path)?;
    file.file().write_all(bytes)?;
    file.commit()?;
    Ok(sha256_hex(bytes))
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    }
}

/// The prefix of a file's temporary names.
fn partial_prefix(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    format!(".{name}.")
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

/// `orders.report.csv` with `run-42` → `orders.run-42.report.csv`: the tag
/// after the name's stem, so a file and what its run wrote, tagged alike,
/// stay together.
pub fn with_tag(path: &Path, tag: &str) -> std::path::PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tagged = match name.split_once('.') {
        Some((stem, rest)) => format!("{stem}.{tag}.{rest}"),
        None => format!("{name}.{tag}"),
    };
    path.with_file_name(tagged)
}

/// Moves a file: a rename, or across file systems a copy (synced) and the
/// original removed.
pub fn move_file(from: &Path, to: &Path) -> std::io::Result<()> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => {
            std::fs::copy(from, to)?;
            std::fs::File::open(to)?.sync_all()?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e),
    }
}

/// A folder only its owner can read (the ledgers', the access database's),
/// made with its parents if need be.
pub fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// A SQLite database opened for records that must not be lost: WAL, and
/// every commit synced (a crash or power loss never forgets one), foreign
/// keys on, and a wait of up to 30 s for another writer.
pub fn open_sqlite(path: &Path) -> rusqlite::Result<rusqlite::Connection> {
    let conn = rusqlite::Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(conn)
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
