//! CSV/TSV input. The file is read once in pieces, to hash it, tell its
//! encoding and copy it; its text then stays on disk, in a private copy
//! (see [`store`](super::store)), never whole in memory.
//!
//! A first pass cuts the text into chunks at line ends on one thread (see
//! [`chunks`](super::chunks)) while the pool parses and maps each chunk
//! with the csv crate; a chunk that started inside a record (a quoted cell
//! over the line end before it) is parsed again from that record's start.
//! It keeps where the chunks of whole records lie, so a later pass reads
//! and parses every chunk on the pool at once; it meets the very rows the
//! first checked, whatever happens to the file.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::OnceLock;

use super::chunks::{self, Chunk};
pub use super::store::TextEncoding;
use super::store::{self, Store};
use super::{Fold, FoldSink, Row, Sink};
use crate::error::{Error, Result};
use crate::stage;

/// `--delimiter` and `--encoding`; `None` means detect.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOpts {
    pub delimiter: Option<u8>,
    pub encoding: Option<TextEncoding>,
}

/// A CSV file: where its text lies, and where its chunks lie once a whole
/// pass has read them.
pub(super) struct TextSheet {
    store: Store,
    delimiter: u8,
    /// The SHA-256 (hex) of the file's bytes.
    sha256: String,
    index: OnceLock<Vec<Chunk>>,
    /// Chunk buffers handed back once parsed, to read the next chunks
    /// into: memory already faulted in, used again.
    spare: stage::Spare,
}

/// A chunk to parse: with its bytes when the pass that cut it hands them
/// on, else read again.
struct Piece {
    chunk: Chunk,
    bytes: Option<Vec<u8>>,
}

/// What parsing a chunk gives: its rows folded into one value, the chunk
/// (up to its last record's end), and the record it leaves open, if any.
type Parsed<A> = Result<(A, Chunk, Option<Open>)>;

/// A record that runs on past the end of the chunk it starts in: where it
/// starts (with the blank lines before it), the line that is on, where
/// the parser stopped, and csv-core's parser that has read it so far.
struct Open {
    start: u64,
    first_line: u64,
    end: u64,
    parser: csv_core::Reader,
}

const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

/// Chunks in hand at once (being parsed, or parsed and waiting for those
/// before them): enough to keep every thread of the pool busy while a
/// slow chunk holds the others back, and few enough that memory does not
/// follow the file.
fn window() -> usize {
    (4 * rayon::current_num_threads()).max(4)
}

impl TextSheet {
    /// Opens the CSV file at `path`; the notes say which encoding and
    /// delimiter were detected or given; and the file's size.
    pub(super) fn open(path: &Path, opts: &TextOpts) -> Result<(Self, Vec<String>, u64)> {
        let opened = store::open(path, opts.encoding)?;
        let mut notes = opened.notes;
        let delimiter = match opts.delimiter {
            Some(d) => {
                notes.push(format!("delimiter {} (given)", show_delimiter(d)));
                d
            }
            None => {
                let sample = opened
                    .store
                    .read(0, 256 * 1024)
                    .map_err(|e| Error::io(path, e))?;
                let d = sniff_delimiter(&sample);
                notes.push(format!("delimiter {} (detected)", show_delimiter(d)));
                d
            }
        };
        let sheet = TextSheet {
            store: opened.store,
            delimiter,
            sha256: opened.sha256,
            index: OnceLock::new(),
            spare: stage::Spare::default(),
        };
        Ok((sheet, notes, opened.size))
    }

    /// The SHA-256 (hex) of the file's bytes.
    pub(super) fn sha256(&self) -> &str {
        &self.sha256
    }

    pub(super) fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Hands the first rows (blank ones included) to `f`, to find the header.
    pub(super) fn head(&self, max_rows: usize, f: &mut dyn FnMut(&[Row<'_>])) {
        let mut rdr = csv_reader(self.delimiter, self.store.reader());
        let mut records = Vec::new();
        while records.len() < max_rows {
            // A record of its own each: a reused one keeps the room its
            // widest row took, and a clone copies that room.
            let mut rec = csv::StringRecord::new();
            match read_numbered(&mut rdr, &mut rec) {
                Ok(Some(line)) => records.push((line, rec)),
                // Problems further down are reported, with their line, by a scan.
                Ok(None) | Err(_) => break,
            }
        }
        f(&super::text_rows(&records));
    }

    /// Folds the records below `header_row` of each chunk into one value
    /// (`A::default()` first), a chunk on each thread of the pool, and
    /// hands `sink` the values in order, a chunk's at a time, while the
    /// pool folds the next chunks; a row that `raw`, when given, takes as
    /// its number and bytes alone (`true`) is not parsed, where its
    /// chunk's lines are its records: most rows of most files, when a
    /// report copies them as they are.
    pub(super) fn scan_fold<A: Default + Send>(
        &self,
        path: &Path,
        header_row: u64,
        header_width: usize,
        fold: &Fold<'_, A>,
        raw: Option<&RawFold<'_, A>>,
        sink: &mut FoldSink<'_, A>,
    ) -> Result<()> {
        let scan = Scan::new(path, header_row, header_width);
        self.scan_chunks(&scan, None, fold, raw, sink)
    }

    /// Maps every record below `header_row` with `map`, in parallel, and
    /// hands the results to `sink` in order, a chunk at a time, while the
    /// pool maps the next chunks; only the records of the chunks that
    /// hold rows of `lines` (sorted), when given (once a whole pass has
    /// found where the chunks lie): the rows of a page, not the whole
    /// sheet. `header_width` tells a quote that swallowed lines from a
    /// legitimate cell over several lines.
    pub(super) fn scan_map_lines<T: Send>(
        &self,
        path: &Path,
        header_row: u64,
        header_width: usize,
        lines: Option<&[u64]>,
        map: &(dyn Fn(&Row<'_>) -> T + Sync),
        sink: &mut Sink<'_, T>,
    ) -> Result<()> {
        let scan = Scan::new(path, header_row, header_width);
        let fold = |out: &mut Vec<T>, r: &Row<'_>| out.push(map(r));
        self.scan_chunks(&scan, lines, &fold, None, sink)
    }

    fn scan_chunks<A: Default + Send>(
        &self,
        scan: &Scan<'_>,
        lines: Option<&[u64]>,
        fold: &Fold<'_, A>,
        raw: Option<&RawFold<'_, A>>,
        sink: &mut FoldSink<'_, A>,
    ) -> Result<()> {
        let path = scan.path;
        let parse = |piece: Piece| self.parse(scan, piece, fold, raw);
        let scanned = match self.index.get() {
            Some(index) => {
                let held: Vec<Chunk> = match lines {
                    None => index.clone(),
                    Some(lines) => index
                        .iter()
                        .enumerate()
                        .filter(|(i, c)| {
                            let end = index.get(i + 1).map_or(u64::MAX, |n| n.first_line);
                            let at = lines.partition_point(|&l| l < c.first_line);
                            lines.get(at).is_some_and(|&l| l < end)
                        })
                        .map(|(_, c)| *c)
                        .collect(),
                };
                let pieces = held
                    .into_iter()
                    .map(|chunk| Ok(Piece { chunk, bytes: None }));
                self.run(scan, pieces, &parse, sink).map(drop)
            }
            None => std::thread::scope(|s| {
                let (tx, rx) = stage::bounded::<Result<Piece>>(window());
                stage::beside(s, "csv chunks", move || self.cut(path, &tx))
                    .map_err(|e| Error::io(path, e))?;
                let index = self.run(scan, rx.into_iter(), &parse, sink)?;
                let _ = self.index.set(index);
                Ok(())
            }),
        };
        // A sheet may be kept open for long (the desk's): its chunk
        // buffers are not.
        self.spare.clear();
        scanned
    }

    /// Cuts the text into chunks and sends them on (until the receiver is
    /// gone), or the first problem.
    fn cut(&self, path: &Path, out: &stage::Sender<Result<Piece>>) {
        let cut = chunks::cut(&self.store, &|| self.spare.take(), &mut |chunk, bytes| {
            let bytes = Some(bytes);
            out.send(Ok(Piece { chunk, bytes })).is_ok()
        });
        if let Err(e) = cut {
            let _ = out.send(Err(Error::io(path, e)));
        }
    }

    /// The bytes of a chunk: as handed on, or read again.
    fn bytes_of(&self, path: &Path, piece: Piece) -> Result<Vec<u8>> {
        let Piece { chunk, bytes } = piece;
        match bytes {
            Some(bytes) => Ok(bytes),
            None => {
                let mut bytes = self.spare.take();
                self.store
                    .read_onto(chunk.start, chunk.end, &mut bytes)
                    .map_err(|e| Error::io(path, e))?;
                Ok(bytes)
            }
        }
    }

    /// Parses one chunk's records and folds those below the header.
    fn parse<A: Default>(
        &self,
        scan: &Scan<'_>,
        piece: Piece,
        fold: &Fold<'_, A>,
        raw: Option<&RawFold<'_, A>>,
    ) -> Parsed<A> {
        let chunk = piece.chunk;
        let bytes = self.bytes_of(scan.path, piece)?;
        let parsed = self.parse_bytes(scan, chunk, &bytes, fold, raw);
        self.spare.give(bytes);
        parsed
    }

    /// [`parse`](Self::parse) of the chunk's `bytes`.
    fn parse_bytes<A: Default>(
        &self,
        scan: &Scan<'_>,
        mut chunk: Chunk,
        bytes: &[u8],
        fold: &Fold<'_, A>,
        raw: Option<&RawFold<'_, A>>,
    ) -> Parsed<A> {
        if let Some(raw) = raw
            && chunk.line_a_record
        {
            let rows = self.parse_lines(scan, &chunk, bytes, fold, raw)?;
            return Ok((rows, chunk, None));
        }
        let lines_before = chunk.first_line - 1;
        let text_ends = chunk.end == self.store.len();
        let mut rdr = csv_reader(self.delimiter, bytes);
        let mut rec = csv::StringRecord::new();
        let (mut out, mut records, mut open) = (A::default(), 0, None);
        let (mut last_line, mut last_from) = (lines_before, 0);
        loop {
            let from = rdr.position().byte() as usize;
            let from_line = rdr.position().line() + lines_before;
            let line = match read_numbered(&mut rdr, &mut rec) {
                Ok(Some(line)) => line + lines_before,
                Ok(None) => break,
                Err(e) => return Err(csv_error(scan.path, e, lines_before)),
            };
            let to = rdr.position().byte() as usize;
            // A record cut off by the chunk's end is the next chunk's.
            if to == bytes.len()
                && !text_ends
                && let Some(parser) = chunks::open_record(self.delimiter, &bytes[from..])
            {
                let start = chunk.start + from as u64;
                open = Some(Open {
                    start,
                    first_line: from_line,
                    end: chunk.end,
                    parser,
                });
                chunk.end = start;
                break;
            }
            (last_line, last_from, records) = (line, from, records + 1);
            if line <= scan.header_row {
                continue;
            }
            scan.whole_record(line, rdr.position().line() + lines_before, &rec)?;
            // The record's bytes: past the blank lines before it, without
            // its line end.
            let blank = bytes[from..to].iter().take_while(|&&b| b == b'\n').count();
            let (a, b) = (from + blank, to - 1);
            fold(
                &mut out,
                &Row::Text {
                    number: line,
                    record: &rec,
                    raw: Some(&bytes[a..b]),
                },
            );
        }
        if open.is_none() {
            self.closed(scan, &chunk, &bytes[last_from..], last_line)?;
        }
        let kept = &bytes[..(chunk.end - chunk.start) as usize];
        chunk.line_a_record = chunks::line_a_record(records, kept);
        Ok((out, chunk, open))
    }

    /// [`parse`](Self::parse) of a chunk whose every line is one record
    /// (the cutter's parser said so): each line below the header goes to
    /// `raw` as it is; a line `raw` does not take is parsed alone.
    fn parse_lines<A: Default>(
        &self,
        scan: &Scan<'_>,
        chunk: &Chunk,
        bytes: &[u8],
        fold: &Fold<'_, A>,
        raw: &RawFold<'_, A>,
    ) -> Result<A> {
        let mut parser: Option<RecordParser> = None;
        let mut rec = csv::StringRecord::new();
        let mut out = A::default();
        let (mut from, mut last) = (0, (chunk.first_line, 0));
        for (number, end) in (chunk.first_line..).zip(memchr::memchr_iter(b'\n', bytes)) {
            let line = &bytes[from..end];
            last = (number, from);
            from = end + 1;
            if number <= scan.header_row {
                continue;
            }
            if raw(&mut out, number, line) {
                continue;
            }
            let parser = parser.get_or_insert_with(|| RecordParser::new(self.delimiter));
            parser
                .parse(line, &mut rec)
                .map_err(|NotUtf8| not_utf8(scan.path, number))?;
            fold(
                &mut out,
                &Row::Text {
                    number,
                    record: &rec,
                    raw: Some(line),
                },
            );
        }
        self.closed(scan, chunk, &bytes[last.1..], last.0)?;
        Ok(out)
    }

    /// An error if `chunk` is the text's last and its last record (`last`,
    /// on line `line`) leaves a quote open.
    fn closed(&self, scan: &Scan<'_>, chunk: &Chunk, last: &[u8], line: u64) -> Result<()> {
        if chunk.end == self.store.len() && ends_in_quotes(last, self.delimiter) {
            return Err(scan.unclosed(line));
        }
        Ok(())
    }
}

/// Folds a row, by its number and bytes (up to its line end) alone, into
/// its chunk's value (`true`), or declines (`false`): the row is then
/// parsed and folded as any other.
pub type RawFold<'a, A> = dyn Fn(&mut A, u64, &[u8]) -> bool + Sync + 'a;

impl TextSheet {
    /// Parses the chunks on the pool, each on one thread, as many at once
    /// as the [`window`] holds, and hands `sink` their rows in order (on
    /// this thread, while the pool parses the chunks after them); what the
    /// chunks of whole records were, in order.
    fn run<A: Send>(
        &self,
        scan: &Scan<'_>,
        pieces: impl Iterator<Item = Result<Piece>>,
        parse: &(dyn Fn(Piece) -> Parsed<A> + Sync),
        sink: &mut FoldSink<'_, A>,
    ) -> Result<Vec<Chunk>> {
        let mut index = Vec::new();
        let mut open: Option<Open> = None;
        let mut take = |chunk: Chunk, parsed: Parsed<A>| -> Result<()> {
            let parsed = match open.take() {
                None => parsed,
                // The chunk before left a record open: this one's parse
                // started inside it, and is not used.
                Some(mut record) => match self.follow(scan, &mut record, chunk)? {
                    Some(piece) => parse(piece),
                    None => {
                        open = Some(record);
                        return Ok(());
                    }
                },
            };
            let (rows, chunk, left_open) = parsed?;
            if chunk.end > chunk.start {
                index.push(chunk);
            }
            sink(rows)?;
            open = left_open;
            Ok(())
        };
        in_order(
            scan.path,
            pieces,
            &|piece: Piece| (piece.chunk, parse(piece)),
            &mut |(chunk, parsed)| take(chunk, parsed),
        )?;
        match open {
            // Cannot happen: the text's last chunk leaves no record open.
            Some(record) => Err(scan.unclosed(record.first_line)),
            None => Ok(index),
        }
    }

    /// Follows an open `record` through `chunk`, the next: once it ends,
    /// the piece to parse again, from the record's start to the chunk's
    /// end; `None` while it runs on past the chunk (the text's last chunk
    /// is then parsed with it, to say where a quote is not closed).
    fn follow(&self, scan: &Scan<'_>, record: &mut Open, chunk: Chunk) -> Result<Option<Piece>> {
        if chunk.start != record.end {
            // Cannot happen: only a first pass, chunk after chunk, leaves one open.
            return Err(Error::input(
                scan.path,
                "the text's chunks are out of order",
            ));
        }
        let bytes = self
            .store
            .read(chunk.start, chunk.end)
            .map_err(|e| Error::io(scan.path, e))?;
        record.end = chunk.end;
        let ends = chunks::follow(&mut record.parser, &bytes).is_some();
        if !ends && chunk.end < self.store.len() {
            return Ok(None);
        }
        let whole = Chunk::new(record.start, chunk.end, record.first_line);
        Ok(Some(Piece {
            chunk: whole,
            bytes: None,
        }))
    }
}

/// Maps each of `items` with `map` on the pool, up to a [`window`] of
/// them at once, and hands the results to `take` in the items' order, on
/// this thread, as soon as each one's turn comes: no thread waits for a
/// group of items to be done. Stops at the first error, of an item or of
/// `take`, once the items being mapped are done.
fn in_order<I: Send, O: Send>(
    path: &Path,
    items: impl Iterator<Item = Result<I>>,
    map: &(dyn Fn(I) -> O + Sync),
    take: &mut dyn FnMut(O) -> Result<()>,
) -> Result<()> {
    // What a task sends: its result, or its panic, carried to this thread
    // (a task that sent nothing would leave this thread waiting).
    type Mapped<O> = std::thread::Result<O>;
    let (done, results) = stage::unbounded::<(usize, Mapped<O>)>();
    rayon::in_place_scope(|s| {
        let mut items = items.enumerate();
        // Mapped but not yet taken, by their place in `items`.
        let mut waiting: std::collections::BTreeMap<usize, O> = Default::default();
        let (mut started, mut taken) = (0, 0);
        loop {
            while started - taken < window() {
                let Some((i, item)) = items.next() else { break };
                let item = item?;
                let done = done.clone();
                s.spawn(move |_| {
                    let out = std::panic::catch_unwind(AssertUnwindSafe(|| map(item)));
                    let _ = done.send((i, out));
                });
                started += 1;
            }
            if taken == started {
                return Ok(());
            }
            // Cannot fail: this thread holds a sender, so the channel
            // stays open.
            let (i, out) = results
                .recv()
                .map_err(|_| Error::input(path, "the chunks' parses stopped"))?;
            waiting.insert(
                i,
                out.unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
            );
            while let Some(out) = waiting.remove(&taken) {
                taken += 1;
                take(out)?;
            }
        }
    })
}

/// One CSV record's bytes parsed into its cells by a csv-core parser made
/// once and reset for each record (making one builds its tables: too dear
/// for every row).
pub struct RecordParser {
    parser: csv_core::Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
}

impl RecordParser {
    pub fn new(delimiter: u8) -> Self {
        RecordParser {
            parser: csv_core::ReaderBuilder::new().delimiter(delimiter).build(),
            out: vec![0; 1024],
            ends: vec![0; 64],
        }
    }

    /// The cells of the record `input` holds into `record`; `Err` if
    /// they are not UTF-8.
    pub fn parse(
        &mut self,
        mut input: &[u8],
        record: &mut csv::StringRecord,
    ) -> std::result::Result<(), NotUtf8> {
        use csv_core::ReadRecordResult as Read;
        let (mut nout, mut nends) = (0, 0);
        self.parser.reset();
        // A parser takes a BOM at the start of its first input for the
        // file's own and drops it; a record that starts with one keeps it
        // if that input is its first byte alone.
        let mut first = true;
        loop {
            let piece = if std::mem::take(&mut first) {
                &input[..input.len().min(1)]
            } else {
                input
            };
            let (read, nin, o, e) =
                self.parser
                    .read_record(piece, &mut self.out[nout..], &mut self.ends[nends..]);
            (input, nout, nends) = (&input[nin..], nout + o, nends + e);
            match read {
                // With no input left, the next call ends the record.
                Read::InputEmpty => {}
                Read::OutputFull => self.out.resize(self.out.len() * 2, 0),
                Read::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                Read::Record | Read::End => break,
            }
        }
        let cells = std::str::from_utf8(&self.out[..nout]).map_err(|_| NotUtf8)?;
        record.clear();
        let mut start = 0;
        for &end in &self.ends[..nends] {
            // A cell is UTF-8 on its own, not only with its neighbours.
            record.push_field(cells.get(start..end).ok_or(NotUtf8)?);
            start = end;
        }
        Ok(())
    }
}

/// A record whose cells are not UTF-8.
#[derive(Debug)]
pub struct NotUtf8;

/// What a pass over the records needs to know besides their bytes.
struct Scan<'a> {
    path: &'a Path,
    header_row: u64,
    header_width: usize,
}

impl<'a> Scan<'a> {
    fn new(path: &'a Path, header_row: u64, header_width: usize) -> Self {
        Scan {
            path,
            header_row,
            header_width,
        }
    }

    /// An error if a record that starts on `line` and ends before
    /// `end_line` holds a quoted cell over several lines that leaves it
    /// with another width than the header's: a quote not closed.
    fn whole_record(&self, line: u64, end_line: u64, rec: &csv::StringRecord) -> Result<()> {
        if end_line <= line + 1 {
            return Ok(());
        }
        let width = super::record_width(rec);
        if width == self.header_width {
            return Ok(());
        }
        Err(Error::input(
            self.path,
            format!(
                "line {line}: a quoted cell runs over lines {line}-{} and leaves the record with {width} \
                 cells instead of {}: a quote is probably not closed on line {line}",
                end_line - 1,
                self.header_width
            ),
        ))
    }

    /// The error for a last record, on `last_line`, that leaves a quote open.
    fn unclosed(&self, last_line: u64) -> Error {
        Error::input(
            self.path,
            format!(
                "line {last_line}: a quote opened on this record is never closed, so the rest of the \
                 file would be swallowed into one cell; close the quote (or double it: \"\")"
            ),
        )
    }
}

fn csv_reader<R: std::io::Read>(delimiter: u8, text: R) -> csv::Reader<R> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(text);
    // Every record is a row. Told its header is known already (none), the
    // reader neither keeps its first record back as the header nor copies
    // it (twice) to keep: a record of a cell of megabytes, at a chunk's
    // start, would be held three times over.
    rdr.set_byte_headers(csv::ByteRecord::new());
    rdr
}

/// Whether a record's bytes end inside a quoted cell: a quote at a cell's
/// start opens it, a doubled quote inside stays inside, a single one closes.
fn ends_in_quotes(record: &[u8], delimiter: u8) -> bool {
    let (mut inside, mut at_start) = (false, true);
    let mut bytes = record.iter().peekable();
    while let Some(&b) = bytes.next() {
        if inside {
            if b == b'"' {
                if bytes.peek() == Some(&&b'"') {
                    bytes.next();
                } else {
                    inside = false;
                }
            }
        } else if b == b'"' && at_start {
            inside = true;
        }
        at_start = !inside && (b == delimiter || b == b'\n');
    }
    inside
}

/// Reads the next record and the line it starts on. The csv crate notes a
/// record's position before it skips blank lines, so the line is counted
/// back from where the record ends (every record ends in a newline: see
/// the text's line ends are LF and its last line is ended), less the
/// newlines inside its quoted cells.
fn read_numbered<R: std::io::Read>(
    rdr: &mut csv::Reader<R>,
    rec: &mut csv::StringRecord,
) -> csv::Result<Option<u64>> {
    let before = rdr.position().line();
    if !rdr.read_record(rec)? {
        return Ok(None);
    }
    // Most records are one line, right after the last: nothing to count.
    let after = rdr.position().line();
    if after == before + 1 {
        return Ok(Some(before));
    }
    let inner = memchr::memchr_iter(b'\n', rec.as_slice().as_bytes()).count() as u64;
    // A record cut off by the end of the file (an unclosed quote) has no
    // terminator of its own: the file's last newline is inside its last cell.
    let cut_off = rec.iter().next_back().is_some_and(|f| f.ends_with('\n'));
    let terminator = u64::from(!cut_off);
    Ok(Some(after.saturating_sub(terminator + inner).max(1)))
}

/// A csv error, its line counted from a chunk that starts after
/// `lines_before` lines.
fn csv_error(path: &Path, e: csv::Error, lines_before: u64) -> Error {
    let line = e.position().map(|p| p.line() + lines_before);
    match e.into_kind() {
        csv::ErrorKind::Io(io) => Error::io(path, io),
        csv::ErrorKind::Utf8 { err, .. } => Error::input(
            path,
            format!(
                "line {}, field {}: not valid UTF-8; save the file as UTF-8 or pass --encoding windows-1252",
                line.unwrap_or(0),
                err.field() + 1
            ),
        ),
        other => Error::input(path, format!("line {}: {other:?}", line.unwrap_or(0))),
    }
}

fn not_utf8(path: &Path, line: u64) -> Error {
    Error::input(
        path,
        format!(
            "line {line}: not valid UTF-8; save the file as UTF-8 or pass --encoding windows-1252"
        ),
    )
}

fn show_delimiter(d: u8) -> String {
    match d {
        b'\t' => "TAB".into(),
        d => format!("'{}'", d as char),
    }
}

/// The delimiter that splits the first records into the same number of
/// fields most often (title rows above the header count against every
/// candidate alike).
fn sniff_delimiter(sample: &[u8]) -> u8 {
    let mut best = (0usize, b',');
    for d in DELIMITERS {
        let mut rdr = csv_reader(d, sample);
        let mut counts: Vec<usize> = Vec::new();
        for rec in rdr.byte_records().take(200) {
            let Ok(rec) = rec else { break };
            if rec.len() > 1 {
                counts.push(rec.len());
            }
        }
        // The last record of a cut sample may be partial.
        if counts.len() > 2 {
            counts.pop();
        }
        let mut freq = std::collections::HashMap::new();
        for c in &counts {
            *freq.entry(*c).or_insert(0usize) += 1;
        }
        let score = freq.values().max().copied().unwrap_or(0);
        if score > best.0 {
            best = (score, d);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piecemeal_file(rows: usize) -> String {
        let mut s = String::from("Orders of the week\n\nbranch_id,name,address\n");
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for i in 0..rows {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            match rng % 10 {
                0 => s.push_str(&format!("{i},\"multi\nline {i}\",\"x, \"\"y\"\"\"\r\n")),
                1 => s.push('\n'),
                2 => s.push_str(&format!("{i},\"a\r\nb\",c\n")),
                3 => s.push_str(&format!("{i},\"\n\n\",\"z\"\"\"\n")),
                _ => s.push_str(&format!("{i},name {i},\"Flat {i}, Road\"\n")),
            }
        }
        s
    }

    type Lines = Vec<(u64, Vec<String>)>;

    fn open(text: &str) -> TextSheet {
        open_bytes(text.as_bytes())
    }

    /// The sheet of a file holding `bytes` (the file itself is gone once
    /// opened: the sheet holds it open).
    fn open_bytes(bytes: &[u8]) -> TextSheet {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), bytes).unwrap();
        TextSheet::open(file.path(), &TextOpts::default())
            .unwrap()
            .0
    }

    #[test]
    fn a_bom_and_a_missing_last_line_end_read_as_without() {
        let plain = "a,b,c\n1,\"x\ny\",3\n\n4,5,6\n";
        let rows = |sheet: &TextSheet| {
            let mut got = Vec::new();
            sheet.head(10, &mut |rows| {
                got = rows
                    .iter()
                    .map(|r| (r.number(), r.cell(1).text.into_owned()))
                    .collect();
            });
            got
        };
        let want = rows(&open(plain));
        assert_eq!(want.len(), 3);
        assert_eq!(rows(&open(&format!("\u{feff}{plain}"))), want);
        assert_eq!(rows(&open(plain.trim_end())), want);
        assert_eq!(rows(&open(&plain.replace('\n', "\r\n"))), want);
        let sheet = open(&format!("\u{feff}{}", plain.trim_end()));
        assert_eq!(rows(&sheet), want);
        assert_eq!(scanned_from(&sheet, 1).len(), 2);
    }

    fn scanned(sheet: &TextSheet) -> Result<Lines> {
        scanned_below(sheet, 3)
    }

    fn scanned_from(sheet: &TextSheet, header_row: u64) -> Lines {
        scanned_below(sheet, header_row).unwrap()
    }

    fn scanned_below(sheet: &TextSheet, header_row: u64) -> Result<Lines> {
        let mut got = Vec::new();
        let cells = |r: &Row<'_>| {
            (
                r.number(),
                (0..3).map(|c| r.cell(c).text.into_owned()).collect(),
            )
        };
        sheet.scan_map_lines(
            Path::new("t.csv"),
            header_row,
            3,
            None,
            &cells,
            &mut |rows| {
                got.extend(rows);
                Ok(())
            },
        )?;
        Ok(got)
    }

    /// Each row's number, bytes and cells; `None` where not known.
    type Met = Vec<(u64, Option<Vec<u8>>, Option<Vec<String>>)>;

    fn met(sheet: &TextSheet, take: Option<&(dyn Fn(u64) -> bool + Sync)>) -> Met {
        let mut got = Vec::new();
        let map = |r: &Row<'_>| {
            let cells = (0..3).map(|c| r.cell(c).text.into_owned()).collect();
            (r.number(), r.raw().map(<[u8]>::to_vec), Some(cells))
        };
        let fold = |out: &mut Vec<_>, r: &Row<'_>| out.push(map(r));
        let raw = |out: &mut Vec<_>, n: u64, bytes: &[u8]| {
            let taken = take.is_some_and(|take| take(n));
            if taken {
                out.push((n, Some(bytes.to_vec()), None));
            }
            taken
        };
        let raw = take.map(|_| &raw as &RawFold<'_, Vec<_>>);
        let sink = &mut |rows: Vec<_>| {
            got.extend(rows);
            Ok(())
        };
        sheet
            .scan_fold(Path::new("t.csv"), 3, 3, &fold, raw, sink)
            .unwrap();
        got
    }

    #[test]
    fn rows_taken_as_bytes_are_the_rows_a_parse_meets() {
        // Plain stretches, whose chunks' lines are their records, between
        // stretches with cells over lines and blank lines.
        let mut text = String::from("Orders of the week\n\nbranch_id,name,address\n");
        for part in 0..8 {
            if part % 2 == 0 {
                for i in 0..1000 {
                    text.push_str(&format!("{i},\"name, {i}\",Flat {i}\n"));
                }
            } else {
                text.push_str(piecemeal_file(200).split_once("address\n").unwrap().1);
            }
        }
        let sheet = open(&text);
        let take = |n: u64| !n.is_multiple_of(3);
        for pass in ["first", "later"] {
            let got = met(&sheet, Some(&take));
            let want = met(&sheet, None);
            assert_eq!(got.len(), want.len(), "{pass} pass");
            let mut taken = 0;
            for ((n, bytes, cells), (wn, wbytes, wcells)) in got.into_iter().zip(want) {
                assert_eq!(n, wn, "{pass} pass");
                if cells.is_none() {
                    taken += 1;
                    assert!(take(n), "row {n} was taken");
                    assert_eq!(bytes, wbytes, "{pass} pass, row {n}");
                } else {
                    assert_eq!(cells, wcells, "{pass} pass, row {n}");
                }
            }
            // A first pass knows no chunk's records before it parses them;
            // a later pass takes most of the 2,667 rows that may be taken.
            if pass == "later" {
                assert!(taken > 4 * 1000 / 2, "{pass} pass: {taken} rows taken");
            }
        }
    }

    /// Items mapped on the pool come out in their order, however long
    /// each takes, never more than a window of them in hand at once; the
    /// first error stops it.
    #[test]
    fn items_mapped_apart_are_taken_in_order() {
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        let (taken_n, most) = (AtomicUsize::new(0), AtomicUsize::new(0));
        let map = |i: usize| -> usize {
            // Started, less taken: in hand now.
            most.fetch_max(i + 1 - taken_n.load(SeqCst), SeqCst);
            if i.is_multiple_of(7) {
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
            i
        };
        let mut taken = Vec::new();
        let items = (0..300).map(Ok);
        in_order(Path::new("t"), items, &map, &mut |i| {
            taken.push(i);
            taken_n.store(taken.len(), SeqCst);
            Ok(())
        })
        .unwrap();
        assert_eq!(taken, (0..300).collect::<Vec<_>>());
        assert!(most.load(SeqCst) <= window(), "{most:?} in hand");

        let mut taken = Vec::new();
        let items = (0..300).map(|i| {
            if i == 250 {
                Err(Error::input("t", "bad item"))
            } else {
                Ok(i)
            }
        });
        let e = in_order(Path::new("t"), items, &|i| i, &mut |i| {
            taken.push(i);
            Ok(())
        });
        assert!(e.unwrap_err().to_string().contains("bad item"));
        assert!(taken.len() <= 250 && taken.iter().enumerate().all(|(k, &i)| k == i));

        let mut taken = Vec::new();
        let e = in_order(Path::new("t"), (0..300).map(Ok), &|i| i, &mut |i| {
            taken.push(i);
            if i == 40 {
                Err(Error::input("t", "bad take"))
            } else {
                Ok(())
            }
        });
        assert!(e.unwrap_err().to_string().contains("bad take"));
        assert_eq!(taken, (0..=40).collect::<Vec<_>>());
    }

    #[test]
    fn batches_read_as_one_reader_reads() {
        let text = piecemeal_file(60_000);
        both_passes_read_as_one_reader_reads(&text);
    }

    /// Cells over many lines, some longer than several chunks, lie across
    /// the line ends where chunks are cut: every chunk a pass keeps starts
    /// where a record does, and the rows read as one reader reads them.
    #[test]
    fn cells_over_the_cuts_are_read_whole() {
        let mut text = String::from("Orders\n\nbranch_id,name,address\n");
        let mut long_cells = Vec::new();
        for i in 0..4_000 {
            if i % 700 == 0 {
                let start = text.len() + format!("{i},\"").len();
                text.push_str(&format!("{i},\"{}\",z\n", "a long line\n".repeat(2_000)));
                long_cells.push(start..text.len() - 4);
            } else if i % 3 == 0 {
                text.push_str(&format!("{i},\"{}\",z\n", "x\n".repeat(i % 40)));
            } else {
                text.push_str(&format!("{i},name {i},\"Flat {i}, Road\"\n"));
            }
        }
        both_passes_read_as_one_reader_reads(&text);
        let sheet = open(&text);
        scanned(&sheet).unwrap();
        let index = sheet.index.get().unwrap();
        assert_eq!(index.first().map(|c| c.start), Some(0));
        assert_eq!(index.last().map(|c| c.end), Some(text.len() as u64));
        for pair in index.windows(2) {
            assert_eq!(pair[0].end, pair[1].start, "chunks tile the text");
        }
        for c in index {
            let at = c.start as usize;
            let lines = text[..at].matches('\n').count() as u64;
            assert_eq!(c.first_line, lines + 1, "chunk at {at}");
            assert!(
                !long_cells.iter().any(|cell| cell.contains(&at)),
                "chunk at {at}"
            );
        }
        assert!(
            long_cells
                .iter()
                .all(|cell| cell.len() > 5 * chunks::CHUNK_BYTES)
        );
    }

    #[test]
    fn lone_cr_records_and_cells_over_lines_keep_their_lines() {
        let mut text = String::from("Orders\n\nbranch_id,name,address\n");
        for i in 0..10_000 {
            text.push_str(&format!("{i},cr {i},end\r"));
            text.push_str(&format!("{i},\"two\nlines\",z\n"));
        }
        both_passes_read_as_one_reader_reads(&text);
    }

    fn both_passes_read_as_one_reader_reads(text: &str) {
        let sheet = open(text);
        let mut want: Lines = Vec::new();
        sheet.head(usize::MAX, &mut |rows| {
            for r in rows.iter().filter(|r| r.number() > 3) {
                want.push((
                    r.number(),
                    (0..3).map(|c| r.cell(c).text.into_owned()).collect(),
                ));
            }
        });
        let got = scanned(&sheet).unwrap();
        let chunks = sheet.index.get().map_or(0, Vec::len);
        assert!(chunks > 20, "many chunks: {chunks}");
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);
        assert_eq!(
            scanned(&sheet).unwrap(),
            got,
            "a second pass reads the same"
        );
        // Each record's bytes parsed alone read the same.
        let mut raw = Vec::new();
        let bytes = |r: &Row<'_>| (r.number(), r.raw().unwrap().to_vec());
        sheet
            .scan_map_lines(Path::new("t.csv"), 3, 3, None, &bytes, &mut |rows| {
                raw.extend(rows);
                Ok(())
            })
            .unwrap();
        let mut parser = RecordParser::new(b',');
        let mut record = csv::StringRecord::new();
        let reread: Lines = raw
            .iter()
            .map(|(number, bytes)| {
                parser.parse(bytes, &mut record).unwrap();
                let r = Row::Text {
                    number: *number,
                    record: &record,
                    raw: None,
                };
                (
                    *number,
                    (0..3).map(|c| r.cell(c).text.into_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(reread, want, "read alone again");
    }

    #[test]
    fn a_file_changed_after_it_was_opened_reads_as_it_was() {
        for text in [
            piecemeal_file(3_000).replace('\r', ""),
            piecemeal_file(3_000),
        ] {
            let file = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(file.path(), &text).unwrap();
            let sheet = TextSheet::open(file.path(), &TextOpts::default())
                .unwrap()
                .0;
            let first = scanned(&sheet).unwrap();
            // Saved over in place: one byte changed, then cut short.
            let mut changed = text.clone().into_bytes();
            let at = changed.len() / 2;
            changed[at] = if changed[at] == b'7' { b'8' } else { b'7' };
            std::fs::OpenOptions::new()
                .write(true)
                .open(file.path())
                .and_then(|mut f| std::io::Write::write_all(&mut f, &changed))
                .unwrap();
            assert_eq!(scanned(&sheet).unwrap(), first);
            std::fs::write(file.path(), &text[..text.len() / 3]).unwrap();
            assert_eq!(scanned(&sheet).unwrap(), first);
            assert!(first.len() > 2_000);
        }
    }

    #[test]
    fn a_record_that_starts_with_a_bom_is_read_as_one_reader_reads() {
        // A BOM opens a record in the middle (files put end to end): a
        // chunk never starts there, so no chunk's parser drops it.
        let mut text = String::from("Orders\n\nbranch_id,name,address\n");
        for i in 0..20_000 {
            if i % 7 == 0 {
                text.push('\u{feff}');
            }
            text.push_str(&format!("{i},n {i},a\n"));
        }
        both_passes_read_as_one_reader_reads(&text);
    }

    #[test]
    fn an_unclosed_quote_far_down_names_its_line() {
        let mut text = piecemeal_file(30_000);
        let line = text.bytes().filter(|&b| b == b'\n').count() + 1;
        text.push_str("77,\"never closed,x\n");
        let err = scanned(&open(&text)).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "line {line}: a quote opened on this record is never closed"
            )),
            "{err}"
        );
    }

    #[test]
    fn quotes_left_open_at_the_end() {
        assert!(!ends_in_quotes(b"\"x, y\",z\n", b','));
        assert!(!ends_in_quotes(b"a,\"say \"\"hi\"\"\",c\n", b','));
        assert!(!ends_in_quotes(b"a,5\" tall,c\n", b','));
        assert!(ends_in_quotes(b"a,\"unclosed,c\nd,e,f\n", b','));
        assert!(ends_in_quotes(b"\"", b','));
        assert!(!ends_in_quotes(b"a,\"multi\nline\",c\n", b','));
        assert!(!ends_in_quotes(b"a,\"ends\"\"\"", b','));
        assert!(ends_in_quotes(b"a;\"open;c\n", b';'));
        assert!(!ends_in_quotes(b"a,\"open;c\n", b';'));
    }

    #[test]
    fn delimiter_sniffing() {
        assert_eq!(sniff_delimiter(b"a,b,c\n1,2,3\n4,5,6\n"), b',');
        assert_eq!(
            sniff_delimiter(b"a;b;c\n1;\"x, y\";3\n4;5,5;6\n7;8;9\n"),
            b';'
        );
        assert_eq!(
            sniff_delimiter(b"Title line\n\na\tb\tc\n1\t2\t3\n4\t5\t6\n"),
            b'\t'
        );
        assert_eq!(sniff_delimiter(b"a|b|c\n1|2|3\n4|5|6\n"), b'|');
        assert_eq!(sniff_delimiter(b"only\none\ncolumn\n"), b',');
    }

    #[test]
    fn encoding_names() {
        assert_eq!(TextEncoding::parse("UTF-8"), Some(TextEncoding::Utf8));
        assert_eq!(TextEncoding::parse("utf-16le"), Some(TextEncoding::Utf16Le));
        assert_eq!(
            TextEncoding::parse("cp1252"),
            Some(TextEncoding::Windows1252)
        );
        assert_eq!(TextEncoding::parse("ebcdic"), None);
    }
}
