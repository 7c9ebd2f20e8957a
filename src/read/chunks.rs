//! A CSV text cut into chunks of whole records, so that each chunk can be
//! parsed on its own, on any thread, exactly as one reader from the start
//! would parse it. One csv-core parser reads the text in order and notes
//! where records end; a chunk ends where a record ends, once it holds
//! [`CHUNK_BYTES`]. Where the records end is csv-core's to say (quoted
//! cells over several lines included), never a scan of our own.

use std::io;

use csv_core::ReadRecordResult as Read;

use super::store::Store;

/// About how many bytes a chunk holds.
#[cfg(not(test))]
pub(super) const CHUNK_BYTES: usize = 1 << 20;
/// Small in unit tests, so that their files cross many chunk boundaries.
#[cfg(test)]
pub(super) const CHUNK_BYTES: usize = 4 << 10;

/// How much of the text one read takes while cutting: small, so that the
/// bytes past a chunk's end, moved to the next, are few.
const READ_BYTES: usize = 64 << 10;

/// Where a chunk of whole records lies in the text, and the line its first
/// byte is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Chunk {
    pub start: u64,
    pub end: u64,
    pub first_line: u64,
    /// Each of its lines is one whole record, as the parser found: no
    /// blank line, no cell over several lines, no CR. Its records are then
    /// its lines, the LFs between them where the parser ended them.
    pub line_a_record: bool,
}

/// Reads the text of `store` in order and hands each chunk, with its
/// bytes, to `send`, which says whether to go on.
pub(super) fn cut(
    store: &Store,
    delimiter: u8,
    send: &mut dyn FnMut(Chunk, Vec<u8>) -> bool,
) -> io::Result<()> {
    let mut parser = csv_core::ReaderBuilder::new().delimiter(delimiter).build();
    // What the parser copies out is not wanted: only where records end.
    let (mut out, mut ends) = (vec![0u8; 64 << 10], vec![0usize; 1024]);
    let len = store.len();
    let mut chunk = Chunk {
        start: 0,
        end: 0,
        first_line: 1,
        line_a_record: false,
    };
    // Records the parser has ended in this chunk.
    let mut records = 0u64;
    // The chunk's bytes so far, and how many of them the parser has read.
    let mut bytes: Vec<u8> = Vec::with_capacity(CHUNK_BYTES + READ_BYTES);
    let (mut parsed, mut read_to) = (0, 0u64);
    loop {
        // With no text left, a call with no input ends it.
        if parsed == bytes.len() && read_to < len {
            let more = store.read(read_to, read_to + READ_BYTES as u64)?;
            read_to += more.len() as u64;
            bytes.extend_from_slice(&more);
        }
        let (result, nin, _, _) = parser.read_record(&bytes[parsed..], &mut out, &mut ends);
        parsed += nin;
        match result {
            Read::Record => {
                records += 1;
                let after = &bytes[parsed..];
                // A chunk's parser takes a BOM at its start for the file's
                // own and drops it: no chunk but the first starts with one.
                let bom_ahead =
                    (after.len() < 3 && read_to < len) || after.starts_with(b"\xEF\xBB\xBF");
                if parsed >= CHUNK_BYTES && !bom_ahead {
                    let rest = bytes.split_off(parsed);
                    chunk.end = chunk.start + parsed as u64;
                    chunk.line_a_record = line_a_record(&chunk, records, parser.line(), &bytes);
                    let next = Chunk {
                        start: chunk.end,
                        end: chunk.end,
                        first_line: parser.line(),
                        line_a_record: false,
                    };
                    records = 0;
                    if !send(chunk, std::mem::replace(&mut bytes, rest)) {
                        return Ok(());
                    }
                    bytes.reserve(CHUNK_BYTES);
                    (chunk, parsed) = (next, 0);
                }
            }
            Read::InputEmpty | Read::OutputFull | Read::OutputEndsFull => {}
            Read::End => break,
        }
    }
    chunk.end = chunk.start + bytes.len() as u64;
    if !bytes.is_empty() {
        chunk.line_a_record = line_a_record(&chunk, records, parser.line(), &bytes);
        send(chunk, bytes);
    }
    Ok(())
}

/// Whether each line of `chunk` (its `bytes`, ending before line
/// `next_line`) is one of the `records` the parser ended in it: as many
/// records as lines, and no CR (which would end a record within a line).
fn line_a_record(chunk: &Chunk, records: u64, next_line: u64, bytes: &[u8]) -> bool {
    records == next_line - chunk.first_line
        && bytes.ends_with(b"\n")
        && memchr::memchr(b'\r', bytes).is_none()
}
