//! CSV/TSV input: encoding and delimiter detection, a streaming reader that
//! hands out batches from a second thread, and the checks that stop a broken
//! file (an unclosed quote, bytes that are no text) from being read as rows.

use std::fs::File;
use std::io::{self, BufReader, Read, Seek};
use std::path::Path;
use std::sync::mpsc;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};
use encoding_rs_io::DecodeReaderBytesBuilder;

use rayon::prelude::*;

use super::Row;
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

    fn encoding(self) -> Option<&'static Encoding> {
        match self {
            Self::Utf8 => None,
            Self::Utf16Le => Some(UTF_16LE),
            Self::Utf16Be => Some(UTF_16BE),
            Self::Windows1252 => Some(WINDOWS_1252),
        }
    }
}

/// `--delimiter` and `--encoding`; `None` means detect.
#[derive(Debug, Clone, Copy, Default)]
pub struct TextOpts {
    pub delimiter: Option<u8>,
    pub encoding: Option<TextEncoding>,
    /// Detect the encoding from the file's first MiB, and when that is
    /// UTF-8 leave the rest to the caller to confirm (with a [`Utf8Scan`],
    /// see [`Sheet::confirm_encoding`](super::Sheet::confirm_encoding)),
    /// rather than read the whole file once more before the rows: the check
    /// pass confirms it while it hashes the file.
    pub encoding_from_head: bool,
}

pub(super) struct TextSheet {
    /// `None`: UTF-8, read as is (a BOM is stripped).
    encoding: Option<&'static Encoding>,
    delimiter: u8,
    /// UTF-8 by the first MiB, the rest not yet confirmed.
    pub(super) unconfirmed: bool,
}

const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

impl TextSheet {
    pub(super) fn open(path: &Path, opts: &TextOpts) -> Result<(Self, Vec<String>)> {
        let mut notes = Vec::new();
        let (encoding, confirmed) = match opts.encoding {
            Some(e) => {
                notes.push(format!("encoding {e:?} (given)"));
                (e.encoding(), true)
            }
            None => detect_encoding(path, &mut notes, opts.encoding_from_head)?,
        };
        let mut sheet = TextSheet {
            encoding,
            delimiter: opts.delimiter.unwrap_or(b','),
            unconfirmed: !confirmed,
        };
        match opts.delimiter {
            Some(d) => notes.push(format!("delimiter {} (given)", show_delimiter(d))),
            None => {
                let mut sample = Vec::new();
                sheet
                    .reader(path)?
                    .take(256 * 1024)
                    .read_to_end(&mut sample)
                    .map_err(|e| Error::io(path, e))?;
                sheet.delimiter = sniff_delimiter(&sample);
                notes.push(format!(
                    "delimiter {} (detected)",
                    show_delimiter(sheet.delimiter)
                ));
            }
        }
        Ok((sheet, notes))
    }

    fn reader(&self, path: &Path) -> Result<Box<dyn Read + Send>> {
        let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
        if self.encoding.is_none() {
            // UTF-8 needs no decoding: skip a BOM and read the file as is.
            let mut bom = [0u8; 3];
            let n = read_full(&mut file, &mut bom).map_err(|e| Error::io(path, e))?;
            if bom[..n] != [0xEF, 0xBB, 0xBF] {
                file.seek(io::SeekFrom::Start(0))
                    .map_err(|e| Error::io(path, e))?;
            }
            return Ok(Box::new(LfLineEnds::new(file)));
        }
        // The decoder strips a BOM and transcodes UTF-16 and Windows-1252
        // to UTF-8 as it streams; plain UTF-8 passes through untouched.
        let decoded = DecodeReaderBytesBuilder::new()
            .encoding(self.encoding)
            .bom_override(self.encoding.is_none())
            .strip_bom(true)
            .build(file);
        Ok(Box::new(LfLineEnds::new(BufReader::with_capacity(
            1 << 20,
            decoded,
        ))))
    }

    fn csv_reader<R: Read>(&self, rd: R) -> csv::Reader<R> {
        self.csv_reader_sized(rd, 1 << 20)
    }

    /// Runs `f` with this thread's reader over bytes in memory, which `fill`
    /// writes into its (emptied) buffer. Readers are kept and reused:
    /// building one costs more than parsing a record.
    fn with_memory_reader<T>(
        &self,
        fill: impl FnOnce(&mut Vec<u8>),
        f: impl FnOnce(&mut csv::Reader<io::Cursor<Vec<u8>>>) -> T,
    ) -> T {
        type Kept = Option<(u8, csv::Reader<io::Cursor<Vec<u8>>>)>;
        thread_local! {
            static READER: std::cell::RefCell<Kept> = const { std::cell::RefCell::new(None) };
        }
        READER.with_borrow_mut(|kept| {
            let rdr = match kept {
                Some((d, rdr)) if *d == self.delimiter => rdr,
                _ => {
                    let rdr = self.csv_reader_sized(io::Cursor::new(Vec::new()), 1 << 16);
                    &mut kept.insert((self.delimiter, rdr)).1
                }
            };
            let bytes = rdr.get_mut().get_mut();
            bytes.clear();
            fill(bytes);
            // Back to the start, with the parser's state and buffer reset.
            let _ = rdr.seek(csv::Position::new());
            let out = f(rdr);
            // A huge record must not stay held by the thread.
            let bytes = rdr.get_mut().get_mut();
            if bytes.capacity() > 16 << 20 {
                *bytes = Vec::new();
            }
            out
        })
    }

    fn csv_reader_sized<R: Read>(&self, rd: R, capacity: usize) -> csv::Reader<R> {
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(self.delimiter)
            .buffer_capacity(capacity)
            .from_reader(rd)
    }

    pub(super) fn head(
        &self,
        path: &Path,
        max_rows: usize,
        f: &mut dyn FnMut(&[Row<'_>]),
    ) -> Result<()> {
        let mut rdr = self.csv_reader(self.reader(path)?);
        let mut records = Vec::new();
        while records.len() < max_rows {
            // A record of its own each: a reused one keeps the room its
            // widest row took, and a clone copies that room (a row of 8
            // million empty cells made each of the 49 after it 64 MB).
            let mut rec = csv::StringRecord::new();
            match read_numbered(&mut rdr, &mut rec) {
                Ok(Some(line)) => records.push((line, rec)),
                Ok(None) => break,
                // Problems further down are reported, with their line, by `scan`.
                Err(_) => break,
            }
        }
        let rows: Vec<Row<'_>> = records
            .iter()
            .map(|(n, r)| Row::Text {
                number: *n,
                record: r,
            })
            .collect();
        f(&rows);
        Ok(())
    }

    /// Reads every record once, in order, handing the data records (those
    /// below the header row) to `f` in batches; returns where they lie.
    pub(super) fn scan(
        &self,
        path: &Path,
        header_row: u64,
        header_width: usize,
        f: &mut dyn FnMut(&[Row<'_>]) -> Result<()>,
    ) -> Result<TextSpans> {
        // A compact copy: `clone` would copy the room the reused record
        // keeps for the widest row seen so far (64 MB after a row of 8
        // million cells, for every row after it).
        let copy = |number: u64, record: &csv::StringRecord| {
            (number, record.iter().collect::<csv::StringRecord>())
        };
        self.scan_records(path, header_row, header_width, &copy, &mut |batch| {
            let rows: Vec<Row<'_>> = batch
                .iter()
                .map(|(number, record)| Row::Text {
                    number: *number,
                    record,
                })
                .collect();
            f(&rows)
        })
    }

    /// Reads every record once and hands `map` of each data record to
    /// `sink`, in order, a piece's records at a time; returns where the
    /// records lie. A
    /// thread cuts the stream into pieces of whole records (where a line
    /// ends outside quotes), and the pieces are parsed and mapped in
    /// parallel.
    pub(super) fn scan_map<T: Send>(
        &self,
        path: &Path,
        header_row: u64,
        header_width: usize,
        map: &(dyn Fn(&Row<'_>) -> T + Sync),
        sink: &mut dyn FnMut(Vec<T>) -> Result<()>,
    ) -> Result<TextSpans> {
        let map_row = |number: u64, record: &csv::StringRecord| map(&Row::Text { number, record });
        self.scan_records(path, header_row, header_width, &map_row, sink)
    }

    fn scan_records<T: Send>(
        &self,
        path: &Path,
        header_row: u64,
        header_width: usize,
        map: &(dyn Fn(u64, &csv::StringRecord) -> T + Sync),
        sink: &mut dyn FnMut(Vec<T>) -> Result<()>,
    ) -> Result<TextSpans> {
        let reader = self.reader(path)?;
        let delimiter = self.delimiter;
        let (tx, rx) = mpsc::sync_channel::<io::Result<Piece>>(2 * PIECES_AT_ONCE);
        let (back_tx, back_rx) = mpsc::channel::<ReadBuf>();
        std::thread::scope(|s| {
            s.spawn(move || {
                if let Err(e) = cut_pieces(reader, delimiter, &tx, &back_rx) {
                    let _ = tx.send(Err(e));
                }
            });
            let mut spans = TextSpans {
                start: 0,
                line: 1,
                ends: Vec::new(),
            };
            let mut rx = rx.into_iter();
            loop {
                let pieces = rx
                    .by_ref()
                    .take(PIECES_AT_ONCE)
                    .collect::<io::Result<Vec<Piece>>>()
                    .map_err(|e| Error::io(path, e))?;
                if pieces.is_empty() {
                    return Ok(spans);
                }
                let parsed: Vec<Result<Parsed<T>>> = pieces
                    .par_iter()
                    .map(|piece| self.parse_piece(path, piece, header_row, header_width, map))
                    .collect();
                // Each piece's values go on as they are, not gathered into
                // one batch: a copy fewer of every row's result.
                for records in parsed {
                    let records = records?;
                    if let Some(above) = records.above {
                        (spans.start, spans.line) = above;
                    }
                    spans.ends.extend_from_slice(&records.ends);
                    if !records.values.is_empty() {
                        sink(records.values)?;
                    }
                }
                for piece in pieces {
                    let _ = back_tx.send(piece.bytes);
                }
            }
        })
    }

    /// Parses one piece's records and maps the data records; for each
    /// record, the line after it, where it ends in the stream, and its
    /// mapped value (`None` above the data).
    fn parse_piece<T>(
        &self,
        path: &Path,
        piece: &Piece,
        header_row: u64,
        header_width: usize,
        map: &(dyn Fn(u64, &csv::StringRecord) -> T + Sync),
    ) -> Result<Parsed<T>> {
        let lines_before = piece.line - 1;
        // The bytes are in memory already: a small buffer reads them as
        // well, and a reader a piece zeroes less.
        let mut rdr = self.csv_reader_sized(piece.bytes.bytes(), 1 << 13);
        let rows = piece.bytes.len / 128;
        let mut out = Parsed {
            ends: Vec::with_capacity(rows),
            values: Vec::with_capacity(rows),
            above: None,
        };
        let mut rec = csv::StringRecord::new();
        let mut last_line = header_row;
        loop {
            let line = match read_numbered(&mut rdr, &mut rec) {
                Ok(Some(line)) => line + lines_before,
                Ok(None) => break,
                Err(e) => return Err(csv_error(path, e, lines_before)),
            };
            last_line = line;
            let end = rdr.position();
            let (end_byte, end_line) = (piece.base + end.byte(), end.line() + lines_before);
            if line <= header_row {
                out.above = Some((end_byte, end_line));
                continue;
            }
            if end_line > line + 1 {
                let width = super::record_width(&rec);
                if width != header_width {
                    return Err(Error::input(
                        path,
                        format!(
                            "line {line}: a quoted cell runs over lines {line}-{} and leaves the record with {width} \
                             cells instead of {header_width}: a quote is probably not closed on line {line}",
                            end_line - 1
                        ),
                    ));
                }
            }
            out.ends.push(end_byte);
            out.values.push(map(line, &rec));
        }
        if piece.unclosed {
            return Err(Error::input(
                path,
                format!(
                    "line {last_line}: a quote opened on this record is never closed, so the rest of the \
                     file would be swallowed into one cell; close the quote (or double it: \"\")"
                ),
            ));
        }
        Ok(out)
    }

    /// Hands the rows of an earlier [`scan`](Self::scan) to `f` again, in
    /// order and in batches, found by the byte spans that scan recorded:
    /// the reader thread only cuts the stream at known record ends, and the
    /// records are parsed in parallel. A file that changed in between is an
    /// error, not wrong rows.
    pub(super) fn rescan(
        &self,
        path: &Path,
        spans: &TextSpans,
        f: &mut dyn FnMut(&[Row<'_>]) -> Result<()>,
    ) -> Result<()> {
        let changed = || Error::file_changed(path);
        let ends = &spans.ends;
        let mut pool: Vec<Vec<csv::StringRecord>> = Vec::new();
        let mut line = spans.line;
        self.chunks(path, spans, &mut |chunk| {
            // Groups of records parsed by one task each, with the line
            // each group starts on.
            let groups: Vec<(usize, usize)> = (chunk.first..chunk.first + chunk.count)
                .step_by(PARSE_GROUP)
                .map(|i| (i, PARSE_GROUP.min(chunk.first + chunk.count - i)))
                .collect();
            let slice = |i: usize, n: usize| {
                let from = if i == 0 { spans.start } else { ends[i - 1] };
                &chunk.bytes.bytes()
                    [(from - chunk.base) as usize..(ends[i + n - 1] - chunk.base) as usize]
            };
            let newlines: Vec<u64> = groups
                .par_iter()
                .map(|&(i, n)| memchr::memchr_iter(b'\n', slice(i, n)).count() as u64)
                .collect();
            let starts: Vec<u64> = newlines
                .iter()
                .map(|n| {
                    let at = line;
                    line += n;
                    at
                })
                .collect();
            pool.resize_with(groups.len().max(pool.len()), Vec::new);
            let parsed: Vec<Result<Vec<u64>>> = groups
                .par_iter()
                .zip(&starts)
                .zip(pool.par_iter_mut())
                .zip(&newlines)
                .map(|(((&(i, n), &line), records), &newlines)| {
                    let bytes = slice(i, n);
                    let from = if i == 0 { spans.start } else { ends[i - 1] };
                    let cuts = ends[i..i + n].iter().map(|e| (e - from) as usize);
                    let one_line_each = newlines == n as u64;
                    self.parse_group(bytes, cuts, line, one_line_each, records)
                        .ok_or_else(changed)
                })
                .collect();
            let mut lines = Vec::with_capacity(chunk.count);
            for group in parsed {
                lines.extend(group?);
            }
            let records = pool.iter().flat_map(|g| g.iter().take(PARSE_GROUP));
            let rows: Vec<Row<'_>> = lines
                .into_iter()
                .zip(records)
                .map(|(number, record)| Row::Text { number, record })
                .collect();
            f(&rows)
        })
    }

    /// Like [`rescan`](Self::rescan), but hands out the records' bytes
    /// only (blank records too), unparsed and unnumbered, with the index of
    /// the first of them among the data records, for a consumer that needs
    /// the cells of few of them ([`TextSheet::parse_many`]). The records
    /// are cut where the first scan found them to end, which costs next to
    /// nothing; a file shorter or longer than then is an error.
    pub(super) fn rescan_raw(
        &self,
        path: &Path,
        spans: &TextSpans,
        f: &mut RawSink<'_>,
    ) -> Result<()> {
        self.chunks(path, spans, &mut |chunk| {
            let bytes = chunk.bytes.bytes();
            let mut from = 0;
            let records: Vec<&[u8]> = spans.ends[chunk.first..chunk.first + chunk.count]
                .iter()
                .map(|&end| {
                    let cut = (end - chunk.base) as usize;
                    let raw = &bytes[from..cut];
                    from = cut;
                    record_body(raw)
                })
                .collect();
            f(chunk.first, &records)
        })
    }

    pub(super) fn is_comma_separated(&self) -> bool {
        self.delimiter == b','
    }

    /// Parses records' bytes (as [`rescan_raw`](Self::rescan_raw) gave
    /// them) with one reader: building one costs more than a record.
    pub(super) fn parse_many(&self, raws: &[&[u8]]) -> Option<Vec<csv::StringRecord>> {
        let records = self.with_memory_reader(
            |joined| {
                for raw in raws {
                    joined.extend_from_slice(raw);
                    joined.push(b'\n');
                }
            },
            |rdr| rdr.records().collect::<csv::Result<Vec<_>>>(),
        );
        records.ok().filter(|records| records.len() == raws.len())
    }

    /// Reads the decoded stream again in [`Chunk`]s of whole records, cut
    /// at the ends the first scan recorded, and hands each to `f`, in
    /// order; a thread of its own reads ahead.
    fn chunks(
        &self,
        path: &Path,
        spans: &TextSpans,
        f: &mut dyn FnMut(&Chunk) -> Result<()>,
    ) -> Result<()> {
        let mut reader = self.reader(path)?;
        let (tx, rx) = mpsc::sync_channel::<Result<Chunk>>(2);
        let (back_tx, back_rx) = mpsc::channel::<ReadBuf>();
        std::thread::scope(|s| {
            s.spawn(move || {
                let sent = cut_chunks(&mut reader, spans, &tx, &back_rx);
                if let Err(e) = sent {
                    let _ = tx.send(Err(Error::io(path, e)));
                }
            });
            for chunk in rx {
                let chunk = chunk?;
                let end = spans.ends[chunk.first + chunk.count - 1];
                if chunk.bytes.len as u64 != end - chunk.base {
                    return Err(Error::file_changed(path));
                }
                f(&chunk)?;
                let _ = back_tx.send(chunk.bytes);
            }
            Ok(())
        })
    }

    /// Parses one group of whole records, which end at `cuts` (offsets in
    /// `bytes`), into `records`; returns the line each record starts on.
    /// `None` when the bytes are not the records the first scan found
    /// there. `one_line_each`: `bytes` holds as many newlines as records.
    fn parse_group(
        &self,
        bytes: &[u8],
        cuts: impl Iterator<Item = usize> + Clone,
        mut line: u64,
        one_line_each: bool,
        records: &mut Vec<csv::StringRecord>,
    ) -> Option<Vec<u64>> {
        self.with_memory_reader(
            |buf| buf.extend_from_slice(bytes),
            |rdr| {
                for (k, cut) in cuts.clone().enumerate() {
                    if records.len() <= k {
                        records.push(csv::StringRecord::new());
                    }
                    if !rdr.read_record(&mut records[k]).ok()?
                        || rdr.position().byte() != cut as u64
                    {
                        return None;
                    }
                }
                Some(())
            },
        )?;
        let mut out = Vec::with_capacity(PARSE_GROUP);
        let mut from = 0usize;
        // As many newlines as records, none starting blank: each record is
        // one line, the one after the last.
        let one_line_each = one_line_each && {
            let mut from = 0;
            cuts.clone().all(|cut| {
                let blank = blank_before(&bytes[from..cut]);
                from = cut;
                blank == 0
            })
        };
        for cut in cuts {
            let raw = &bytes[from..cut];
            if one_line_each {
                out.push(line);
                line += 1;
            } else {
                let blank = blank_before(raw);
                line += memchr::memchr_iter(b'\n', &raw[..blank]).count() as u64;
                out.push(line);
                line += memchr::memchr_iter(b'\n', &raw[blank..]).count() as u64;
            }
            from = cut;
        }
        Some(out)
    }
}

/// How many bytes of blank lines come before a record, in the bytes the
/// stream holds from the previous record's end to its own.
fn blank_before(raw: &[u8]) -> usize {
    raw.iter()
        .take_while(|b| matches!(b, b'\n' | b'\r'))
        .count()
}

/// A record's bytes as the stream holds them from the previous record's
/// end to its own: without the blank lines before it or its line end.
fn record_body(raw: &[u8]) -> &[u8] {
    let body = &raw[blank_before(raw)..];
    body.strip_suffix(b"\n")
        .or_else(|| body.strip_suffix(b"\r"))
        .unwrap_or(body)
}

/// What takes records' bytes, in batches: the index of the batch's first
/// record among the data records, and the bytes of each (see
/// [`TextSheet::rescan_raw`]).
pub type RawSink<'f> = dyn FnMut(usize, &[&[u8]]) -> Result<()> + 'f;

/// Records a group of [`TextSheet::rescan`] parses in one task.
const PARSE_GROUP: usize = 512;

/// Where the data records of a CSV file lie in its decoded stream, found by
/// the first scan so later passes can cut the stream without parsing it.
#[derive(Debug, Default, Clone)]
pub struct TextSpans {
    /// Where the first record after the header starts.
    start: u64,
    /// The first line of the stream after `start`.
    line: u64,
    /// Where each record ends (just past its line end).
    ends: Vec<u64>,
}

/// Whole records of the decoded stream, cut by [`cut_chunks`].
struct Chunk {
    bytes: ReadBuf,
    /// The stream offset of `bytes[0]`.
    base: u64,
    /// The index of the first record.
    first: usize,
    count: usize,
}

/// About how many bytes of whole records go in a chunk.
const CHUNK_BYTES: u64 = 1 << 20;

fn cut_chunks(
    reader: &mut dyn Read,
    spans: &TextSpans,
    tx: &mpsc::SyncSender<Result<Chunk>>,
    recycled: &mpsc::Receiver<ReadBuf>,
) -> io::Result<()> {
    io::copy(&mut reader.take(spans.start), &mut io::sink())?;
    let mut base = spans.start;
    let mut first = 0;
    while first < spans.ends.len() {
        // Whole records up to about CHUNK_BYTES; at least one.
        let limit = base + CHUNK_BYTES;
        let count = spans.ends[first..].partition_point(|&e| e <= limit).max(1);
        let end = spans.ends[first + count - 1];
        let mut bytes = recycled.try_recv().unwrap_or_default();
        bytes.clear();
        bytes.read_more(reader, (end - base) as usize)?;
        let chunk = Chunk {
            base,
            first,
            count,
            bytes,
        };
        if tx.send(Ok(chunk)).is_err() {
            break; // the consumer stopped: its error wins
        }
        base = end;
        first += count;
    }
    Ok(())
}

/// The records of a piece.
struct Parsed<T> {
    /// Where each data record ends in the stream.
    ends: Vec<u64>,
    /// What became of each data record.
    values: Vec<T>,
    /// Where the last record at or above the header ends, and the line
    /// after it: the data starts there.
    above: Option<(u64, u64)>,
}

/// Whole records of the decoded stream, cut by [`cut_pieces`].
struct Piece {
    bytes: ReadBuf,
    /// The stream offset of `bytes[0]`.
    base: u64,
    /// The line `bytes` starts on.
    line: u64,
    /// The stream ends inside a quote, in this piece's last record.
    unclosed: bool,
}

/// A buffer read into again and again: its bytes past `len` stay
/// allocated and initialised, so that reading into it zeroes nothing.
#[derive(Default)]
struct ReadBuf {
    buf: Vec<u8>,
    /// How many bytes at the start hold data.
    len: usize,
}

impl ReadBuf {
    fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn clear(&mut self) {
        self.truncate(0);
    }

    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Room for `n` more bytes after the data.
    fn room(&mut self, n: usize) -> &mut [u8] {
        let want = self.len + n;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        &mut self.buf[self.len..want]
    }

    fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.room(bytes.len()).copy_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Reads up to `n` more bytes, fewer only at the end of the stream.
    fn read_more(&mut self, reader: &mut (impl Read + ?Sized), n: usize) -> io::Result<usize> {
        let got = read_full(reader, self.room(n))?;
        self.len += got;
        Ok(got)
    }
}

/// How many bytes a piece is read in (it grows for a record longer).
const PIECE_BYTES: usize = 256 << 10;
/// Pieces parsed at once, in parallel: a batch of about 8k records.
const PIECES_AT_ONCE: usize = 8;

/// Cuts the decoded stream into [`Piece`]s, each ending where a line ends
/// outside quotes (so on a record's end), and sends them on in order.
fn cut_pieces(
    mut reader: impl Read,
    delimiter: u8,
    tx: &mpsc::SyncSender<io::Result<Piece>>,
    recycled: &mpsc::Receiver<ReadBuf>,
) -> io::Result<()> {
    let mut quotes = QuoteTracker::new(io::empty(), delimiter);
    let (mut base, mut line) = (0u64, 1u64);
    let mut buf = ReadBuf::default();
    loop {
        // `buf` holds the start of a record, already tracked: read on.
        let old = buf.len;
        let n = buf.read_more(&mut reader, PIECE_BYTES)?;
        if n == 0 {
            // The stream ends in a newline (see `LfLineEnds`), so what is left
            // is a record whose quote never closed.
            if buf.len > 0 {
                let piece = Piece {
                    bytes: buf,
                    base,
                    line,
                    unclosed: quotes.in_quote(),
                };
                let _ = tx.send(Ok(piece));
            }
            return Ok(());
        }
        let read = buf.bytes();
        let cut = match memchr::memrchr(b'\n', &read[old..]) {
            Some(q) => {
                quotes.track(&read[old..=old + q]);
                let outside = !quotes.in_quote();
                quotes.track(&read[old + q + 1..]);
                outside.then_some(old + q + 1)
            }
            None => {
                quotes.track(&read[old..]);
                None
            }
        };
        let Some(cut) = cut else { continue };
        let mut next = recycled.try_recv().unwrap_or_default();
        next.clear();
        next.extend_from_slice(&buf.bytes()[cut..]);
        buf.truncate(cut);
        let lines = memchr::memchr_iter(b'\n', buf.bytes()).count() as u64;
        let piece = Piece {
            bytes: std::mem::replace(&mut buf, next),
            base,
            line,
            unclosed: false,
        };
        base += cut as u64;
        line += lines;
        if tx.send(Ok(piece)).is_err() {
            return Ok(()); // the consumer stopped: its error wins
        }
    }
}

/// Reads the next record and the line it starts on. The csv crate notes a
/// record's position before it skips blank lines, so the line is counted
/// back from where the record ends (every record ends in a newline: see
/// [`LfLineEnds`]), less the newlines inside its quoted cells.
fn read_numbered<R: Read>(
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
    Ok(Some(
        rdr.position()
            .line()
            .saturating_sub(terminator + inner)
            .max(1),
    ))
}

/// A csv error, its line counted from a piece that starts after
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
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .delimiter(d)
            .from_reader(sample);
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

/// Reads the whole file once to choose between UTF-8 and Windows-1252, and
/// to refuse bytes that are not text at all. A UTF-8 or UTF-16 BOM decides
/// at once. With `head_only`, a first MiB that is UTF-8, of a longer file,
/// decides too, unconfirmed (the second value: `true` when confirmed): the
/// caller then confirms it with a [`Utf8Scan`] of the whole file.
fn detect_encoding(
    path: &Path,
    notes: &mut Vec<String>,
    head_only: bool,
) -> Result<(Option<&'static Encoding>, bool)> {
    let mut file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut buf = vec![0u8; 1 << 20];
    let first = read_full(&mut file, &mut buf).map_err(|e| Error::io(path, e))?;
    let head = &buf[..first];
    if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        notes.push("encoding UTF-8 with BOM".into());
        return Ok((None, true));
    }
    if head.starts_with(&[0xFF, 0xFE]) {
        notes.push("encoding UTF-16LE (BOM)".into());
        return Ok((Some(UTF_16LE), true));
    }
    if head.starts_with(&[0xFE, 0xFF]) {
        notes.push("encoding UTF-16BE (BOM)".into());
        return Ok((Some(UTF_16BE), true));
    }
    let mut offset: u64 = 0;
    let mut carry = 0usize;
    let mut len = first;
    let mut non_ascii = false;
    loop {
        let chunk = &buf[..len];
        if let Some(i) = memchr::memchr(0, chunk) {
            let at = offset + i as u64 - carry as u64;
            return Err(Error::input(
                path,
                format!(
                    "line {}: the file holds NUL bytes, so it is not a text file (if it is UTF-16 \
                     without a BOM, pass --encoding utf-16le)",
                    line_at(path, at)?
                ),
            ));
        }
        match std::str::from_utf8(chunk) {
            Ok(s) => {
                non_ascii |= !s.is_ascii();
                carry = 0;
            }
            Err(e) if e.error_len().is_none() && len == buf.len() => {
                // A character cut at the chunk's end: finish it next round.
                non_ascii |= e.valid_up_to() > 0 && !chunk[..e.valid_up_to()].is_ascii();
                carry = len - e.valid_up_to();
            }
            Err(e) => {
                let valid = &chunk[..e.valid_up_to()];
                non_ascii |= !valid.is_ascii();
                let at = offset + e.valid_up_to() as u64 - carry as u64;
                if non_ascii {
                    return Err(Error::input(
                        path,
                        format!(
                            "line {}: byte 0x{:02X} is not valid UTF-8, though earlier lines are UTF-8: the \
                             file mixes encodings; save it as UTF-8 (CSV UTF-8 in Excel)",
                            line_at(path, at)?,
                            chunk[e.valid_up_to()]
                        ),
                    ));
                }
                notes.push(format!(
                    "encoding Windows-1252 (line {} is not UTF-8 and nothing before it is)",
                    line_at(path, at)?
                ));
                return Ok((Some(WINDOWS_1252), true));
            }
        }
        if head_only && len == buf.len() {
            return Ok((None, false)); // UTF-8 so far; more follows
        }
        offset += (len - carry) as u64;
        buf.copy_within(len - carry..len, 0);
        let n = read_full(&mut file, &mut buf[carry..]).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            if carry > 0 {
                notes.push("encoding Windows-1252 (the file ends inside a UTF-8 character)".into());
                return Ok((Some(WINDOWS_1252), true));
            }
            break;
        }
        len = carry + n;
    }
    notes.push(utf8_note(non_ascii));
    Ok((None, true))
}

pub(super) fn utf8_note(non_ascii: bool) -> String {
    if non_ascii {
        "encoding UTF-8".into()
    } else {
        "encoding ASCII (read as UTF-8)".into()
    }
}

/// What a whole file's bytes say of its encoding, fed piece by piece to a
/// [`Utf8Scan`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextVerdict {
    Ascii,
    Utf8,
    /// A NUL byte, a sequence that is not UTF-8, or a character cut off at
    /// the end: not UTF-8 text (the full detection says what it is).
    Other,
}

/// Decides, over bytes fed in pieces, what [`detect_encoding`] decides of
/// a file without a BOM that it reads whole: UTF-8 (or ASCII) or not.
#[derive(Debug, Default)]
pub struct Utf8Scan {
    /// The start of a character cut at the end of the last piece.
    carry: Vec<u8>,
    non_ascii: bool,
    bad: bool,
}

impl Utf8Scan {
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if self.bad {
            return;
        }
        if memchr::memchr(0, bytes).is_some() {
            self.bad = true;
            return;
        }
        if let Some(&lead) = self.carry.first() {
            // A cut character: its lead byte says how long it is.
            let width = match lead {
                0xC2..=0xDF => 2,
                0xE0..=0xEF => 3,
                _ => 4,
            };
            let need = (width - self.carry.len()).min(bytes.len());
            self.carry.extend_from_slice(&bytes[..need]);
            bytes = &bytes[need..];
            if self.carry.len() < width {
                return; // still cut: the next piece may finish it
            }
            self.bad = std::str::from_utf8(&self.carry).is_err();
            self.carry.clear();
            if self.bad {
                return;
            }
        }
        match std::str::from_utf8(bytes) {
            Ok(s) => self.non_ascii |= !s.is_ascii(),
            Err(e) if e.error_len().is_none() => {
                self.non_ascii = true;
                self.carry.extend_from_slice(&bytes[e.valid_up_to()..]);
            }
            Err(_) => self.bad = true,
        }
    }

    pub fn finish(self) -> TextVerdict {
        if self.bad || !self.carry.is_empty() {
            TextVerdict::Other
        } else if self.non_ascii {
            TextVerdict::Utf8
        } else {
            TextVerdict::Ascii
        }
    }
}

fn read_full(file: &mut (impl Read + ?Sized), buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// The 1-based line of a byte offset (read again: only on the error path).
fn line_at(path: &Path, offset: u64) -> Result<u64> {
    let file = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut rd = BufReader::new(file).take(offset);
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 1;
    loop {
        let n = rd.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            return Ok(lines);
        }
        lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64;
    }
}

/// Turns every line end into LF: CRLF (Windows) and a CR alone (old Mac
/// files, or a stray one), in quoted cells too. The csv crate counts a
/// record's line before it skips the LF of a CRLF, which would number every
/// row of a Windows file one too low, and does not count a CR as a line
/// end at all; with LF alone its line numbers are exact.
struct LfLineEnds<R> {
    inner: R,
    /// A CR that ended the last read: kept until we see what follows it.
    held_cr: bool,
    /// Converted bytes a too-small caller buffer could not take.
    spill: std::collections::VecDeque<u8>,
    /// The last byte handed out, so a file that does not end in a newline
    /// gets one (a record's line is counted from its terminator).
    last: Option<u8>,
}

impl<R: Read> LfLineEnds<R> {
    fn new(inner: R) -> Self {
        LfLineEnds {
            inner,
            held_cr: false,
            spill: std::collections::VecDeque::new(),
            last: None,
        }
    }
}

impl<R: Read> Read for LfLineEnds<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.spill.is_empty() || buf.len() < 2 {
            if self.spill.is_empty() {
                let mut tmp = [0u8; 256];
                let n = self.read_converted(&mut tmp)?;
                self.spill.extend(&tmp[..n]);
            }
            let n = buf.len().min(self.spill.len());
            for (b, s) in buf.iter_mut().zip(self.spill.drain(..n)) {
                *b = s;
            }
            if n > 0 {
                self.last = Some(buf[n - 1]);
            } else if self.last.is_some_and(|b| b != b'\n') {
                self.last = Some(b'\n');
                buf[0] = b'\n';
                return Ok(1);
            }
            return Ok(n);
        }
        let n = self.read_converted(buf)?;
        if n > 0 {
            self.last = Some(buf[n - 1]);
        } else if self.last.is_some_and(|b| b != b'\n') {
            self.last = Some(b'\n');
            buf[0] = b'\n';
            return Ok(1);
        }
        Ok(n)
    }
}

impl<R: Read> LfLineEnds<R> {
    fn read_converted(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let start = usize::from(self.held_cr);
            let n = match self.inner.read(&mut buf[start..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => r?,
            };
            if n == 0 {
                // End of input: a held CR was not part of a CRLF.
                if std::mem::take(&mut self.held_cr) {
                    buf[0] = b'\n';
                    return Ok(1);
                }
                return Ok(0);
            }
            let mut len = n;
            if std::mem::take(&mut self.held_cr) {
                if buf[1] == b'\n' {
                    buf.copy_within(1..1 + n, 0);
                } else {
                    buf[0] = b'\n';
                    len = n + 1;
                }
            }
            let out = self.compact(buf, len);
            if out > 0 {
                return Ok(out);
            }
            // Only a CR came: read on, rather than signal the end.
        }
    }

    /// Drops every CR followed by LF in `buf[..n]` and turns every other CR
    /// into LF; holds back a final CR (an LF may come next).
    fn compact(&mut self, buf: &mut [u8], n: usize) -> usize {
        let Some(first) = memchr::memchr(b'\r', &buf[..n]) else {
            return n;
        };
        let mut w = first;
        let mut r = first;
        while r < n {
            let b = buf[r];
            if b == b'\r' {
                if r + 1 == n {
                    self.held_cr = true;
                    return w;
                }
                if buf[r + 1] == b'\n' {
                    r += 1;
                    continue;
                }
            }
            buf[w] = if b == b'\r' { b'\n' } else { b };
            w += 1;
            r += 1;
        }
        w
    }
}

/// Passes bytes through while following CSV quoting, so that at the end we
/// know whether a quote was left open (the csv crate then quietly ends the
/// cell at end of file, swallowing every line after the quote).
struct QuoteTracker<R> {
    inner: R,
    delimiter: u8,
    in_quote: bool,
    /// Inside a quote, the last byte was `"`: the next byte decides whether
    /// it was an escaped quote (`""`) or the closing one.
    pending_close: bool,
    prev: u8,
}

impl<R: Read> QuoteTracker<R> {
    fn new(inner: R, delimiter: u8) -> Self {
        QuoteTracker {
            inner,
            delimiter,
            in_quote: false,
            pending_close: false,
            prev: b'\n',
        }
    }

    fn in_quote(&self) -> bool {
        self.in_quote && !self.pending_close
    }

    fn track(&mut self, buf: &[u8]) {
        let mut i = 0;
        if self.pending_close && !buf.is_empty() {
            self.pending_close = false;
            if buf[0] == b'"' {
                i = 1; // an escaped quote: still inside
                self.prev = b'"';
            } else {
                self.in_quote = false;
            }
        }
        while i < buf.len() {
            if self.in_quote {
                match memchr::memchr(b'"', &buf[i..]) {
                    None => break,
                    Some(j) => {
                        let q = i + j;
                        match buf.get(q + 1) {
                            Some(b'"') => i = q + 2,
                            Some(_) => {
                                self.in_quote = false;
                                i = q + 1;
                            }
                            None => {
                                self.pending_close = true;
                                i = q + 1;
                            }
                        }
                    }
                }
            } else {
                match memchr::memchr(b'"', &buf[i..]) {
                    None => break,
                    Some(j) => {
                        let q = i + j;
                        let before = if q == 0 { self.prev } else { buf[q - 1] };
                        if before == self.delimiter || before == b'\n' || before == b'\r' {
                            self.in_quote = true;
                        }
                        i = q + 1;
                    }
                }
            }
        }
        if let Some(&last) = buf.last() {
            self.prev = last;
        }
    }
}

impl<R: Read> Read for QuoteTracker<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.track(&buf[..n]);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file of several pieces, with what cuts them badly if anything
    /// does: cells quoted over lines (LF and CRLF), doubled quotes, commas
    /// in quotes, blank lines, title rows.
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

    fn scanned(sheet: &TextSheet, path: &Path) -> Result<(Lines, TextSpans)> {
        let mut got = Vec::new();
        let spans = sheet.scan(path, 3, 3, &mut |rows| {
            for r in rows {
                got.push((
                    r.number(),
                    (0..3).map(|c| r.cell(c).text.into_owned()).collect(),
                ));
            }
            Ok(())
        })?;
        Ok((got, spans))
    }

    #[test]
    fn pieces_read_as_one_reader_reads() {
        let text = piecemeal_file(60_000);
        assert!(text.len() > 6 * PIECE_BYTES, "several pieces");
        both_passes_read_as_one_reader_reads(&text);
    }

    /// Records that end in a lone CR (an old Mac line end) next to records
    /// with a cell over two lines: each CR is a line end, in both passes.
    #[test]
    fn lone_cr_records_and_cells_over_lines_keep_their_lines() {
        let mut text = String::from("Orders\n\nbranch_id,name,address\n");
        for i in 0..3000 {
            text.push_str(&format!("{i},cr {i},end\r"));
            text.push_str(&format!("{i},\"two\nlines\",z\n"));
        }
        both_passes_read_as_one_reader_reads(&text);
    }

    /// The first pass and the second find the records, and their lines,
    /// that one reader over the whole file finds (the header on line 3).
    fn both_passes_read_as_one_reader_reads(text: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.csv");
        std::fs::write(&path, text).unwrap();
        let (sheet, _) = TextSheet::open(&path, &TextOpts::default()).unwrap();

        // One reader over the whole stream, record by record.
        let mut want: Lines = Vec::new();
        sheet
            .head(&path, usize::MAX, &mut |rows| {
                for r in rows.iter().filter(|r| r.number() > 3) {
                    want.push((
                        r.number(),
                        (0..3).map(|c| r.cell(c).text.into_owned()).collect(),
                    ));
                }
            })
            .unwrap();
        let (got, spans) = scanned(&sheet, &path).unwrap();
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);

        // The second pass meets the same records where the first found them.
        let mut again: Lines = Vec::new();
        sheet
            .rescan(&path, &spans, &mut |rows| {
                for r in rows {
                    again.push((
                        r.number(),
                        (0..3).map(|c| r.cell(c).text.into_owned()).collect(),
                    ));
                }
                Ok(())
            })
            .unwrap();
        assert_eq!(again, want);
    }

    #[test]
    fn an_unclosed_quote_far_down_names_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("broken.csv");
        let mut text = piecemeal_file(30_000);
        let line = text.bytes().filter(|&b| b == b'\n').count() + 1;
        text.push_str("77,\"never closed,x\n");
        std::fs::write(&path, &text).unwrap();
        let (sheet, _) = TextSheet::open(&path, &TextOpts::default()).unwrap();
        let err = scanned(&sheet, &path).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "line {line}: a quote opened on this record is never closed"
            )),
            "{err}"
        );
    }

    fn open_quote_at_end(s: &str, chunk: usize) -> bool {
        let mut t = QuoteTracker::new(s.as_bytes(), b',');
        for part in s.as_bytes().chunks(chunk) {
            t.track(part);
        }
        t.in_quote()
    }

    #[test]
    fn quote_tracking_across_chunks() {
        for chunk in [1, 2, 3, 7, 100] {
            assert!(
                !open_quote_at_end("a,b\n\"x, y\",z\n", chunk),
                "chunk {chunk}"
            );
            assert!(
                !open_quote_at_end("a,\"say \"\"hi\"\"\",c\n", chunk),
                "chunk {chunk}"
            );
            assert!(!open_quote_at_end("a,5\" tall,c\n", chunk), "chunk {chunk}");
            assert!(
                open_quote_at_end("a,\"unclosed,c\nd,e,f\n", chunk),
                "chunk {chunk}"
            );
            assert!(open_quote_at_end("a,b\n\"", chunk), "chunk {chunk}");
            assert!(
                !open_quote_at_end("a,\"multi\nline\",c\n", chunk),
                "chunk {chunk}"
            );
            assert!(!open_quote_at_end("a,\"ends\"\"\"", chunk), "chunk {chunk}");
        }
    }

    fn crlf(input: &[u8], chunk: usize) -> Vec<u8> {
        struct Chunks<'a>(&'a [u8], usize);
        impl Read for Chunks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(self.1).min(buf.len());
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        LfLineEnds::new(Chunks(input, chunk))
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn line_ends_become_lf_across_reads() {
        for chunk in [1, 2, 3, 5, 64] {
            assert_eq!(
                crlf(b"a,b\r\nc,d\r\n", chunk),
                b"a,b\nc,d\n",
                "chunk {chunk}"
            );
            assert_eq!(crlf(b"a\rb\r\n\r", chunk), b"a\nb\n\n", "chunk {chunk}");
            assert_eq!(crlf(b"a\r\rb\r", chunk), b"a\n\nb\n", "chunk {chunk}");
            assert_eq!(crlf(b"\"x\ry\"\r", chunk), b"\"x\ny\"\n", "chunk {chunk}");
            assert_eq!(
                crlf(b"no newline at end", chunk),
                b"no newline at end\n",
                "chunk {chunk}"
            );
            assert_eq!(
                crlf(b"\"x\r\ny\"\r\n", chunk),
                b"\"x\ny\"\n",
                "chunk {chunk}"
            );
            assert_eq!(crlf(b"plain\n", chunk), b"plain\n", "chunk {chunk}");
        }
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

    /// Whether a stream ends inside a quoted cell, a byte at a time: the
    /// plain statement of what [`QuoteTracker`] decides.
    fn in_quote_byte_by_byte(s: &[u8], delimiter: u8) -> bool {
        let (mut in_quote, mut prev, mut i) = (false, b'\n', 0);
        while i < s.len() {
            let b = s[i];
            if in_quote && b == b'"' {
                match s.get(i + 1) {
                    Some(b'"') => {
                        (prev, i) = (b'"', i + 2);
                        continue;
                    }
                    Some(_) => in_quote = false,
                    None => return false, // a closing quote, last
                }
            } else if !in_quote && b == b'"' && matches!(prev, b'\n' | b'\r') | (prev == delimiter)
            {
                in_quote = true;
            }
            (prev, i) = (b, i + 1);
        }
        in_quote
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The tracker decides as the byte-by-byte statement does, however
        /// the stream is cut into reads.
        #[test]
        fn quote_tracking_decides_as_byte_by_byte(
            text in "[a,\"\n\r]{0,40}",
            chunk in 1usize..9,
        ) {
            proptest::prop_assert_eq!(
                open_quote_at_end(&text, chunk),
                in_quote_byte_by_byte(text.as_bytes(), b','),
                "{:?}", text
            );
        }
    }

    proptest::proptest! {
        /// Fed in pieces cut anywhere, a [`Utf8Scan`] decides what a look
        /// at the whole gives.
        #[test]
        fn utf8_scan_in_pieces_sees_the_whole(
            text in "[a-z\u{e9}\u{20ac}\u{1F4B3}]{0,40}",
            junk in proptest::option::of((0usize..64, proptest::prop_oneof![
                proptest::strategy::Just(0u8), proptest::strategy::Just(0xE9u8),
                proptest::strategy::Just(0x80u8), proptest::strategy::Just(0xF0u8),
            ])),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut bytes = text.into_bytes();
            if let Some((at, b)) = junk {
                bytes.insert(at.min(bytes.len()), b);
            }
            let whole = match std::str::from_utf8(&bytes) {
                Ok(s) if s.contains('\0') => TextVerdict::Other,
                Ok(s) if s.is_ascii() => TextVerdict::Ascii,
                Ok(_) => TextVerdict::Utf8,
                Err(_) => TextVerdict::Other,
            };
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(bytes.len())).collect();
            cuts.sort_unstable();
            let mut scan = Utf8Scan::default();
            let mut from = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                scan.feed(&bytes[from..c]);
                from = c;
            }
            proptest::prop_assert_eq!(scan.finish(), whole);
        }
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
