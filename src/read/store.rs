//! Where a CSV file's text lies while it is checked and reported: in a
//! private copy of the file (an unnamed temporary file in the temporary
//! folder, gone with the process), taken while the file is read once in
//! pieces to hash it and tell its encoding from all of its bytes; and when
//! the file is not UTF-8 with LF line ends, in a copy of its text decoded
//! to that. The text is never held in memory whole: a pass reads the byte
//! ranges it needs (the page cache keeps that fast); and whatever happens
//! to the file meanwhile (an editor saving over it), every pass reads the
//! bytes that were hashed.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};
use sha2::Digest;

use crate::error::{Error, Result};

/// A text encoding the user may force with `--encoding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextEncoding {
    Utf8,
    Utf16Le,
    Utf16Be,
    Windows1252,
}

impl TextEncoding {
    pub fn parse(s: &str) -> Option<Self> {
        let n: String = s
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect::<String>()
            .to_ascii_lowercase();
        Some(match n.as_str() {
            "utf8" => Self::Utf8,
            "utf16le" | "utf16" => Self::Utf16Le,
            "utf16be" => Self::Utf16Be,
            "windows1252" | "cp1252" | "latin1" | "iso88591" | "ansi" => Self::Windows1252,
            _ => return None,
        })
    }

    pub(super) fn encoding(self) -> Option<&'static Encoding> {
        match self {
            Self::Utf8 => None,
            Self::Utf16Le => Some(UTF_16LE),
            Self::Utf16Be => Some(UTF_16BE),
            Self::Windows1252 => Some(WINDOWS_1252),
        }
    }
}

/// How much of the file one read takes.
const BLOCK: usize = 1 << 20;

const BOM: [u8; 3] = [0xEF, 0xBB, 0xBF];

/// A sheet's text: bytes `skip..skip+len` of `file`, and one LF more when
/// the file does not end its last line.
pub(super) struct Store {
    file: File,
    skip: u64,
    len: u64,
    add_lf: bool,
}

/// A CSV file opened: where its text lies, the SHA-256 (hex) and size of
/// its bytes, and what was detected.
pub(super) struct Opened {
    pub store: Store,
    pub sha256: String,
    pub size: u64,
    pub notes: Vec<String>,
}

impl Store {
    /// The text's length in bytes.
    pub fn len(&self) -> u64 {
        self.len + u64::from(self.add_lf)
    }

    /// The text's bytes `start..end` (cut at its end).
    pub fn read(&self, start: u64, end: u64) -> io::Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.read_onto(start, end, &mut buf)?;
        Ok(buf)
    }

    /// [`read`](Self::read), the bytes added to the end of `buf` (whose
    /// room is used again: no fresh memory to fault in, no copy between).
    pub fn read_onto(&self, start: u64, end: u64, buf: &mut Vec<u8>) -> io::Result<()> {
        let end = end.min(self.len());
        let in_file = end.min(self.len).saturating_sub(start);
        let at = buf.len();
        buf.resize(at + usize::try_from(in_file).map_err(io::Error::other)?, 0);
        read_exact_at(&self.file, &mut buf[at..], self.skip + start)?;
        // The LF that ends the last line, past the file's end.
        if (start..end).contains(&self.len) && self.add_lf {
            buf.push(b'\n');
        }
        Ok(())
    }

    /// The text from its start, read in order.
    pub fn reader(&self) -> StoreReader<'_> {
        StoreReader { store: self, at: 0 }
    }
}

/// The text of a [`Store`], read in order.
pub(super) struct StoreReader<'s> {
    store: &'s Store,
    at: u64,
}

impl Read for StoreReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let end = (self.at + buf.len() as u64).min(self.store.len());
        let bytes = self.store.read(self.at, end)?;
        buf[..bytes.len()].copy_from_slice(&bytes);
        self.at += bytes.len() as u64;
        Ok(bytes.len())
    }
}

#[cfg(unix)]
fn read_exact_at(file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, at)
}

#[cfg(windows)]
fn read_exact_at(file: &File, mut buf: &mut [u8], mut at: u64) -> io::Result<()> {
    while !buf.is_empty() {
        match std::os::windows::fs::FileExt::seek_read(file, buf, at)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                at += n as u64;
            }
        }
    }
    Ok(())
}

/// Opens the CSV file at `path`: hashes it, tells its encoding (unless
/// `forced`) and, unless it is UTF-8 with LF line ends, spools its text.
pub(super) fn open(path: &Path, forced: Option<TextEncoding>) -> Result<Opened> {
    let io_err = |e| Error::io(path, e);
    let mut source = File::open(path).map_err(io_err)?;
    let mut file = tempfile::tempfile().map_err(copy_failed).map_err(io_err)?;
    let survey = Survey::of(&mut source, &mut file).map_err(io_err)?;
    drop(source);
    let mut notes = Vec::new();
    let encoding = match forced {
        Some(e) => {
            notes.push(format!("encoding {e:?} (given)"));
            e.encoding()
        }
        None => survey.encoding(path, &file, &mut notes)?,
    };
    let skip = if encoding.is_none() && survey.head.starts_with(&BOM) {
        3
    } else {
        0
    };
    let store = if encoding.is_none() && !survey.has_cr {
        let len = survey.size - skip;
        Store {
            file,
            skip,
            len,
            add_lf: len > 0 && survey.last != Some(b'\n'),
        }
    } else {
        spool(&mut file, skip, encoding)
            .map_err(copy_failed)
            .map_err(io_err)?
    };
    Ok(Opened {
        store,
        sha256: survey.sha256,
        size: survey.size,
        notes,
    })
}

/// A failure to write a copy, said as such (of a kind of its own: not
/// the input's "not found" or "permission denied").
fn copy_failed(e: io::Error) -> io::Error {
    io::Error::other(format!(
        "writing its private copy in the temporary folder {} (TMPDIR): {e}",
        std::env::temp_dir().display()
    ))
}

/// What one read of the whole file finds.
struct Survey {
    sha256: String,
    size: u64,
    /// The first bytes (for a BOM) and the last.
    head: Vec<u8>,
    last: Option<u8>,
    has_cr: bool,
    nul_at: Option<u64>,
    utf8: Utf8,
}

/// Whether the bytes are UTF-8, as far as one read tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Utf8 {
    Valid {
        ascii: bool,
    },
    /// The file ends inside a character.
    CutOff,
    /// Byte `at` is not UTF-8; `ascii`: nothing before it is beyond ASCII.
    Invalid {
        at: u64,
        byte: u8,
        ascii: bool,
    },
}

impl Utf8 {
    /// Looks at `text`, which starts at byte `from` of the file (with the
    /// bytes of a character the last block cut); where a character this
    /// block cuts starts, if it does.
    fn look(&mut self, text: &[u8], from: u64) -> Option<usize> {
        let Utf8::Valid { ascii } = *self else {
            return None;
        };
        match std::str::from_utf8(text) {
            Ok(s) => {
                *self = Utf8::Valid {
                    ascii: ascii && s.is_ascii(),
                };
                None
            }
            Err(e) if e.error_len().is_none() => {
                let up_to = e.valid_up_to();
                *self = Utf8::Valid {
                    ascii: ascii && text[..up_to].is_ascii(),
                };
                Some(up_to)
            }
            Err(e) => {
                let at = e.valid_up_to();
                *self = Utf8::Invalid {
                    at: from + at as u64,
                    byte: text[at],
                    ascii: ascii && text[..at].is_ascii(),
                };
                None
            }
        }
    }
}

impl Survey {
    /// Reads `file` once, writing its bytes to `copy`.
    fn of(file: &mut File, copy: &mut File) -> io::Result<Survey> {
        let mut hash = sha2::Sha256::new();
        // The block looked at, and the next, read meanwhile. Each begins
        // with the bytes of a character the block before cut (`carried`).
        let (mut buf, mut next) = (vec![0u8; BLOCK + 4], vec![0u8; BLOCK + 4]);
        let mut carried = 0;
        let mut n = file.read(&mut buf[..BLOCK])?;
        let mut size = 0u64;
        let mut head = Vec::new();
        let (mut last, mut has_cr, mut nul_at) = (None, false, None);
        let mut utf8 = Utf8::Valid { ascii: true };
        while n > 0 {
            let fresh = &buf[carried..carried + n];
            let from = size - carried as u64;
            // The hash on one thread; the copy, the looks and the next
            // read on another.
            let ((), (copied, kept, read)) = rayon::join(
                || hash.update(fresh),
                || {
                    let copied = copy.write_all(fresh).map_err(copy_failed);
                    if head.len() < 3 {
                        head.extend(fresh.iter().take(3 - head.len()));
                    }
                    last = fresh.last().copied();
                    has_cr |= memchr::memchr(b'\r', fresh).is_some();
                    if nul_at.is_none() {
                        nul_at = memchr::memchr(0, fresh).map(|i| size + i as u64);
                    }
                    let cut = utf8.look(&buf[..carried + n], from);
                    // A character cut by the end of the block goes to the
                    // front of the next.
                    let kept = cut.map_or(0, |cut| carried + n - cut);
                    next[..kept].copy_from_slice(&buf[carried + n - kept..carried + n]);
                    let read = copied
                        .is_ok()
                        .then(|| file.read(&mut next[kept..kept + BLOCK]));
                    (copied, kept, read)
                },
            );
            copied?;
            size += n as u64;
            n = read.unwrap_or(Ok(0))?;
            carried = kept;
            std::mem::swap(&mut buf, &mut next);
        }
        if carried > 0 && matches!(utf8, Utf8::Valid { .. }) {
            utf8 = Utf8::CutOff;
        }
        Ok(Survey {
            sha256: hex::encode(hash.finalize()),
            size,
            head,
            last,
            has_cr,
            nul_at,
            utf8,
        })
    }

    /// Chooses between UTF-8 and Windows-1252 by all of the file's bytes,
    /// and refuses bytes that are not text at all; a UTF-8 or UTF-16 BOM
    /// decides at once. `None`: UTF-8.
    fn encoding(
        &self,
        path: &Path,
        file: &File,
        notes: &mut Vec<String>,
    ) -> Result<Option<&'static Encoding>> {
        if self.head.starts_with(&BOM) {
            notes.push("encoding UTF-8 with BOM".into());
            return Ok(None);
        }
        if self.head.starts_with(&[0xFF, 0xFE]) {
            notes.push("encoding UTF-16LE (BOM)".into());
            return Ok(Some(UTF_16LE));
        }
        if self.head.starts_with(&[0xFE, 0xFF]) {
            notes.push("encoding UTF-16BE (BOM)".into());
            return Ok(Some(UTF_16BE));
        }
        let line_at = |at: u64| line_at(file, at).map_err(|e| Error::io(path, e));
        if let Some(at) = self.nul_at {
            return Err(Error::input(
                path,
                format!(
                    "line {}: the file holds NUL bytes, so it is not a text file (if it is UTF-16 \
                     without a BOM, pass --encoding utf-16le)",
                    line_at(at)?
                ),
            ));
        }
        match self.utf8 {
            Utf8::Valid { ascii: true } => notes.push("encoding ASCII (read as UTF-8)".into()),
            Utf8::Valid { ascii: false } => notes.push("encoding UTF-8".into()),
            Utf8::CutOff => {
                notes.push("encoding Windows-1252 (the file ends inside a UTF-8 character)".into());
                return Ok(Some(WINDOWS_1252));
            }
            Utf8::Invalid {
                ascii: false,
                at,
                byte,
            } => {
                return Err(Error::input(
                    path,
                    format!(
                        "line {}: byte 0x{byte:02X} is not valid UTF-8, though earlier lines are UTF-8: the \
                         file mixes encodings; save it as UTF-8 (CSV UTF-8 in Excel)",
                        line_at(at)?
                    ),
                ));
            }
            Utf8::Invalid {
                ascii: true, at, ..
            } => {
                notes.push(format!(
                    "encoding Windows-1252 (line {} is not UTF-8 and nothing before it is)",
                    line_at(at)?
                ));
                return Ok(Some(WINDOWS_1252));
            }
        }
        Ok(None)
    }
}

/// The line byte `at` of the file is on.
fn line_at(file: &File, at: u64) -> io::Result<u64> {
    let mut lines = 1;
    let mut buf = vec![0u8; BLOCK];
    let mut pos = 0;
    while pos < at {
        let n = (at - pos).min(BLOCK as u64) as usize;
        read_exact_at(file, &mut buf[..n], pos)?;
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
        pos += n as u64;
    }
    Ok(lines)
}

/// Writes the text of the file's bytes (past `skip`) in `encoding`
/// (`None`: UTF-8, as it is) with LF line ends, the last line ended, to a
/// spool.
fn spool(file: &mut File, skip: u64, encoding: Option<&'static Encoding>) -> io::Result<Store> {
    use std::io::Seek;
    file.seek(io::SeekFrom::Start(skip))?;
    let mut out = Lf::new(BufWriter::with_capacity(BLOCK, tempfile::tempfile()?));
    let mut decoder = encoding.map(Encoding::new_decoder_with_bom_removal);
    let mut buf = vec![0u8; BLOCK];
    let mut decoded = Vec::new();
    loop {
        let n = file.read(&mut buf)?;
        let last = n == 0;
        match &mut decoder {
            None => out.write(&buf[..n])?,
            Some(d) => {
                decoded.clear();
                let room = d
                    .max_utf8_buffer_length(n)
                    .ok_or_else(|| io::Error::other("too long"))?;
                decoded.resize(room, 0);
                let (_, read, written, _) = d.decode_to_utf8(&buf[..n], &mut decoded, last);
                debug_assert_eq!(read, n);
                out.write(&decoded[..written])?;
            }
        }
        if last {
            break;
        }
    }
    let (spool, len) = out.finish()?;
    Ok(Store {
        file: spool.into_inner().map_err(io::IntoInnerError::into_error)?,
        skip: 0,
        len,
        add_lf: false,
    })
}

/// Writes text with every line end made LF: CRLF (Windows) and a CR alone
/// (old Mac files, or a stray one), in quoted cells too; and ends the last
/// line. The csv crate counts a record's line before it skips the LF of a
/// CRLF, and does not count a CR alone at all; with LF alone its line
/// numbers are exact.
struct Lf<W: Write> {
    out: W,
    /// The last byte written was a CR, written as LF: an LF next is its.
    after_cr: bool,
    last: Option<u8>,
    len: u64,
}

impl<W: Write> Lf<W> {
    fn new(out: W) -> Self {
        Lf {
            out,
            after_cr: false,
            last: None,
            len: 0,
        }
    }

    fn write(&mut self, mut text: &[u8]) -> io::Result<()> {
        if std::mem::take(&mut self.after_cr) && text.first() == Some(&b'\n') {
            text = &text[1..];
        }
        while let Some(cr) = memchr::memchr(b'\r', text) {
            self.put(&text[..cr])?;
            self.put(b"\n")?;
            match text.get(cr + 1) {
                Some(b'\n') => text = &text[cr + 2..],
                Some(_) => text = &text[cr + 1..],
                None => {
                    self.after_cr = true;
                    return Ok(());
                }
            }
        }
        self.put(text)
    }

    fn put(&mut self, bytes: &[u8]) -> io::Result<()> {
        if let Some(&b) = bytes.last() {
            self.out.write_all(bytes)?;
            self.last = Some(b);
            self.len += bytes.len() as u64;
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<(W, u64)> {
        if self.last.is_some_and(|b| b != b'\n') {
            self.put(b"\n")?;
        }
        self.out.flush()?;
        Ok((self.out, self.len))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_of(bytes: &[u8]) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        file
    }

    /// The text a file of `bytes` is read as.
    fn text_of(bytes: &[u8]) -> Vec<u8> {
        let file = file_of(bytes);
        let store = open(file.path(), None).unwrap().store;
        store.read(0, store.len()).unwrap()
    }

    #[test]
    fn line_ends_become_lf_across_reads() {
        for (input, want) in [
            (&b"a\r\nb\r\n"[..], &b"a\nb\n"[..]),
            (b"a\rb\r", b"a\nb\n"),
            (b"a\r\r\nb", b"a\n\nb\n"),
            (b"\"x\r\ny\"\r", b"\"x\ny\"\n"),
            (b"", b""),
            (b"no end", b"no end\n"),
            (b"a\nb", b"a\nb\n"),
        ] {
            assert_eq!(text_of(input), want, "{}", String::from_utf8_lossy(input));
            // Written in every split: a CRLF cut between two writes is one.
            for cut in 0..=input.len() {
                let mut lf = Lf::new(Vec::new());
                lf.write(&input[..cut]).unwrap();
                lf.write(&input[cut..]).unwrap();
                let (text, len) = lf.finish().unwrap();
                assert_eq!(
                    text,
                    want,
                    "{} cut at {cut}",
                    String::from_utf8_lossy(input)
                );
                assert_eq!(len, text.len() as u64);
            }
        }
    }

    #[test]
    fn a_bom_is_skipped_and_encodings_decoded() {
        assert_eq!(text_of(b"\xEF\xBB\xBFa,b\n1,2"), b"a,b\n1,2\n");
        assert_eq!(text_of(b"\xEF\xBB\xBFa,b\r\n"), b"a,b\n");
        assert_eq!(
            text_of(b"\xFF\xFEa\0,\0\xE9\0\r\0\n\0"),
            "a,\u{e9}\n".as_bytes()
        );
        assert_eq!(text_of(b"caf\xE9\r\n"), "caf\u{e9}\n".as_bytes());
        // Read as it is: UTF-8 with LF line ends, at any offset.
        let file = file_of("x,\u{e9}\ny,z".as_bytes());
        let store = open(file.path(), None).unwrap().store;
        assert_eq!(store.len(), 9);
        assert_eq!(store.read(2, 6).unwrap(), "\u{e9}\ny".as_bytes());
        assert_eq!(store.read(5, 100).unwrap(), b"y,z\n");
        assert_eq!(store.read(8, 100).unwrap(), b"\n");
        assert_eq!(store.read(9, 100).unwrap(), b"");
    }

    #[test]
    fn encodings_are_told_from_the_whole_file() {
        let detect = |bytes: &[u8]| {
            let file = file_of(bytes);
            let mut f = File::open(file.path()).unwrap();
            let mut copy = tempfile::tempfile().unwrap();
            let survey = Survey::of(&mut f, &mut copy).unwrap();
            assert_eq!(survey.sha256, crate::files::sha256_hex(bytes));
            // The copy holds what was hashed, block after block.
            let mut copied = Vec::new();
            io::Seek::rewind(&mut copy).unwrap();
            copy.read_to_end(&mut copied).unwrap();
            assert!(copied == bytes, "the copy differs");
            assert_eq!(survey.size, bytes.len() as u64);
            let mut notes = Vec::new();
            survey
                .encoding(Path::new("t.csv"), &copy, &mut notes)
                .map(|e| (e, notes))
        };
        // UTF-8 far down a file of ASCII is still UTF-8, also with a
        // character cut by the end of a read (`é` by one byte at BLOCK - 4,
        // `€` by one and by two at BLOCK - 6 and - 7) ...
        for pad in [
            3 << 20,
            BLOCK - 1,
            BLOCK - 2,
            BLOCK,
            BLOCK - 4,
            BLOCK - 6,
            BLOCK - 7,
        ] {
            let mut late = vec![b'a'; pad];
            late.extend_from_slice("caf\u{e9}\u{20ac}\n".as_bytes());
            assert_eq!(detect(&late).unwrap().0, None, "{pad}");
        }
        // ... and a Windows-1252 byte far down is Windows-1252.
        let mut w = vec![b'a'; 3 << 20];
        w.extend_from_slice(b"caf\xe9\n");
        let (e, notes) = detect(&w).unwrap();
        assert_eq!(e, Some(WINDOWS_1252));
        assert!(notes[0].contains("line 1 is not UTF-8"), "{notes:?}");
        // UTF-8 then a byte that is not: mixed, refused.
        let mut mixed = "caf\u{e9}\n".as_bytes().to_vec();
        mixed.extend_from_slice(b"x\xe9\n");
        let err = detect(&mixed).unwrap_err().to_string();
        assert!(err.contains("line 2: byte 0xE9"), "{err}");
        let err = detect(b"a\nb\0c").unwrap_err().to_string();
        assert!(err.contains("line 2: the file holds NUL bytes"), "{err}");
        assert_eq!(detect(b"\xff\xfea\0").unwrap().0, Some(UTF_16LE));
        assert_eq!(detect("caf\u{e9}".as_bytes()).unwrap().0, None);
        assert_eq!(detect(b"caf\xC3").unwrap().0, Some(WINDOWS_1252), "cut off");
    }
}
