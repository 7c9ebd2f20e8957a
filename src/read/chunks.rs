//! A CSV text cut into chunks, so that each can be parsed on its own, on
//! any thread. A chunk ends after a line end once it holds
//! [`CHUNK_BYTES`]: where a record most likely ends, found without a
//! parse, so no thread waits for one. A quoted cell may run over that line
//! end; whether it does is for csv-core to say, never a scan of ours: the
//! parse of each chunk says whether its last record ended with it (see
//! [`open_record`]), and where it did not, the next chunk, which started
//! inside that record, is parsed again from the record's start (see the
//! text's `run`).

use std::io;

use csv_core::ReadRecordResult as Read;

use super::store::Store;

/// About how many bytes a chunk holds.
#[cfg(not(test))]
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// Small in unit tests, so that their files cross many chunk boundaries.
#[cfg(test)]
pub(super) const CHUNK_BYTES: usize = 4 << 10;

/// How much of the text one read takes while cutting.
const READ_BYTES: usize = 64 << 10;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Where a chunk lies in the text, and the line its first byte is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chunk {
    pub start: u64,
    pub end: u64,
    pub first_line: u64,
    /// Each of its lines is one whole record, as its parse found: no
    /// blank line, no cell over several lines, no CR. Its records are then
    /// its lines, the LFs between them where the parser ended them.
    pub line_a_record: bool,
}

impl Chunk {
    /// The chunk from `start` to `end`, whose first byte is on `first_line`.
    pub fn new(start: u64, end: u64, first_line: u64) -> Self {
        Chunk {
            start,
            end,
            first_line,
            line_a_record: false,
        }
    }
}

/// Reads the text of `store` in order and hands each chunk, with its
/// bytes, to `send`, which says whether to go on. Each chunk's bytes are
/// read into a buffer from `spare` (empty; one handed back after an
/// earlier chunk, or new).
pub(super) fn cut(
    store: &Store,
    spare: &dyn Fn() -> Vec<u8>,
    send: &mut dyn FnMut(Chunk, Vec<u8>) -> bool,
) -> io::Result<()> {
    let len = store.len();
    let mut chunk = Chunk::new(0, 0, 1);
    // Room for a chunk and the read that ends it.
    let room = || {
        let mut b = spare();
        b.reserve(CHUNK_BYTES + READ_BYTES);
        b
    };
    let mut bytes = room();
    // Bytes of the chunk before this have no place to end it.
    let mut looked = CHUNK_BYTES - 1;
    let mut read_to = 0;
    while read_to < len {
        let was = bytes.len();
        store.read_onto(read_to, read_to + READ_BYTES as u64, &mut bytes)?;
        read_to += (bytes.len() - was) as u64;
        while let Some(at) = end_of_chunk(&bytes, &mut looked, read_to == len) {
            let mut rest = room();
            rest.extend_from_slice(&bytes[at..]);
            bytes.truncate(at);
            chunk.end = chunk.start + at as u64;
            let lines = memchr::memchr_iter(b'\n', &bytes).count() as u64;
            let next = Chunk::new(chunk.end, chunk.end, chunk.first_line + lines);
            if !send(chunk, std::mem::replace(&mut bytes, rest)) {
                return Ok(());
            }
            (chunk, looked) = (next, CHUNK_BYTES - 1);
        }
    }
    if !bytes.is_empty() {
        chunk.end = chunk.start + bytes.len() as u64;
        send(chunk, bytes);
    }
    Ok(())
}

/// Where a chunk of `bytes` ends: after the first line end at or past
/// `looked` (moved on past what has been looked at) that no BOM follows (a
/// chunk's parser would take one at its start for the file's own and drop
/// it); `None` if there is none yet. `all`: no more bytes come.
fn end_of_chunk(bytes: &[u8], looked: &mut usize, all: bool) -> Option<usize> {
    while *looked < bytes.len() {
        let Some(lf) = memchr::memchr(b'\n', &bytes[*looked..]) else {
            *looked = bytes.len();
            return None;
        };
        let at = *looked + lf + 1;
        let after = &bytes[at..];
        if after.len() < BOM.len() && !all && BOM.starts_with(after) {
            // A BOM may follow: look again once more bytes are in.
            *looked = at - 1;
            return None;
        }
        if after.starts_with(BOM) {
            *looked = at;
            continue;
        }
        // The last line end of the text ends the last chunk: no empty chunk.
        return (at < bytes.len()).then_some(at);
    }
    None
}

/// Whether each line of a chunk's `bytes` is one of the `records` its
/// parse met: as many records as lines, and no CR (which would end a
/// record within a line).
pub(super) fn line_a_record(records: u64, bytes: &[u8]) -> bool {
    bytes.ends_with(b"\n")
        && memchr::memchr(b'\r', bytes).is_none()
        && records == memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// csv-core's parser having read `bytes`, which start a record (blank
/// lines before it allowed), if that record does not end within them: a
/// quoted cell runs on past them.
pub(super) fn open_record(delimiter: u8, bytes: &[u8]) -> Option<csv_core::Reader> {
    let mut parser = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    follow(&mut parser, bytes).is_none().then_some(parser)
}

/// Feeds `bytes` to `parser`, which is inside a record, until the record
/// ends: how many bytes that took, or `None` if it runs on past them.
pub(super) fn follow(parser: &mut csv_core::Reader, bytes: &[u8]) -> Option<usize> {
    // What the parser copies out is not wanted: only where the record ends.
    let (mut out, mut ends) = ([0u8; 4 << 10], [0usize; 256]);
    let mut taken = 0;
    loop {
        // Input never runs out here: an empty input would end the text.
        if taken == bytes.len() {
            return None;
        }
        let (result, nin, _, _) = parser.read_record(&bytes[taken..], &mut out, &mut ends);
        taken += nin;
        match result {
            Read::Record => return Some(taken),
            Read::InputEmpty | Read::OutputFull | Read::OutputEndsFull | Read::End => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_is_open_while_a_quote_is() {
        for (bytes, open) in [
            (&b"a,b\n"[..], false),
            (b"\n\na,\"b\nc\"\n", false),
            (b"a,\"b\n", true),
            (b"a,\"b\"\"\n", true),
            (b"a,\"b\"\"\"\n", false),
            (b"a,b\"c\n", false),
        ] {
            assert_eq!(open_record(b',', bytes).is_some(), open, "{bytes:?}");
        }
        let mut parser = open_record(b',', b"1,\"x\n").unwrap();
        assert_eq!(follow(&mut parser, b"y\nz"), None);
        assert_eq!(follow(&mut parser, b"\",3\n4,5,6\n"), Some(4));
    }

    #[test]
    fn chunks_end_after_a_line_end_that_no_bom_follows() {
        let mut looked = 2;
        assert_eq!(end_of_chunk(b"abcd\nef\ngh\n", &mut looked, true), Some(5));
        let mut looked = 2;
        assert_eq!(end_of_chunk(b"ab\n\xEF\xBB", &mut looked, false), None);
        assert_eq!(
            end_of_chunk(b"ab\n\xEF\xBB\xBFc\nd\n", &mut looked, false),
            Some(8)
        );
        let mut looked = 2;
        assert_eq!(end_of_chunk(b"abcd\n", &mut looked, true), None);
        assert_eq!(end_of_chunk(b"abcd", &mut looked, false), None);
        assert_eq!(looked, 4, "looked at once");
    }
}
