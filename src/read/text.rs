//! CSV/TSV input. The file's bytes are read once: their encoding is told
//! from all of them, they are decoded to UTF-8 with LF line ends, and the
//! delimiter is told from the first records. A pass over the rows, as often
//! as a later stage asks, reads the text with the csv crate on one thread
//! while the pool maps the records in batches, without going back to the
//! file; a record can also be read alone again from where it lies.

use std::path::Path;
use std::sync::OnceLock;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, WINDOWS_1252};
use rayon::prelude::*;

use super::Row;
use crate::error::{Error, Result};
use crate::stage;

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
}

/// A CSV file, decoded, with where its chunks of records lie once a first
/// pass has found them.
pub(super) struct TextSheet {
    /// The file's text from byte `skip` on (past a UTF-8 BOM): UTF-8 unless
    /// a forced `--encoding utf-8` says so wrongly (the csv crate then
    /// names the record), LF line ends, the last line ended.
    text: Vec<u8>,
    skip: usize,
    delimiter: u8,
    /// The SHA-256 (hex) of the file's bytes: for a file read as it is,
    /// its first `file_len` bytes of `text`, hashed while the first pass
    /// reads the rows.
    sha256: OnceLock<String>,
    file_len: usize,
}

/// Records read before the pool maps them: large enough to keep rayon
/// busy, small enough that a batch of wide rows stays a few megabytes.
const BATCH_RECORDS: usize = 4096;

/// Records read, waiting to be mapped: each with its line, its cells and
/// where its bytes lie.
type Batch = Vec<(u64, csv::StringRecord, super::Span)>;

const DELIMITERS: [u8; 4] = [b',', b';', b'\t', b'|'];

impl TextSheet {
    /// Decodes the file's bytes; the notes say which encoding and
    /// delimiter were detected or given.
    pub(super) fn open(
        path: &Path,
        bytes: Vec<u8>,
        opts: &TextOpts,
    ) -> Result<(Self, Vec<String>)> {
        let mut notes = Vec::new();
        let encoding = match opts.encoding {
            Some(e) => {
                notes.push(format!("encoding {e:?} (given)"));
                e.encoding()
            }
            None => detect_encoding(path, &bytes, &mut notes)?,
        };
        let file_len = bytes.len();
        let sha256 = OnceLock::new();
        let (mut text, skip) = if encoding.is_none() && memchr::memchr(b'\r', &bytes).is_none() {
            // UTF-8 with LF line ends: read as it is, past a BOM.
            let skip = if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
                3
            } else {
                0
            };
            (bytes, skip)
        } else {
            let (sha, mut text) = rayon::join(
                || crate::files::sha256_hex(&bytes),
                || decode(&bytes, encoding),
            );
            let _ = sha256.set(sha);
            lf_line_ends(&mut text);
            (text, 0)
        };
        if text.last().is_some_and(|&b| b != b'\n') {
            text.push(b'\n');
        }
        let delimiter = match opts.delimiter {
            Some(d) => {
                notes.push(format!("delimiter {} (given)", show_delimiter(d)));
                d
            }
            None => {
                let sample = &text[skip..];
                let d = sniff_delimiter(&sample[..sample.len().min(256 * 1024)]);
                notes.push(format!("delimiter {} (detected)", show_delimiter(d)));
                d
            }
        };
        let sheet = TextSheet {
            text,
            skip,
            delimiter,
            sha256,
            file_len,
        };
        Ok((sheet, notes))
    }

    /// The SHA-256 (hex) of the file's bytes.
    pub(super) fn sha256(&self) -> &str {
        self.sha256
            .get_or_init(|| crate::files::sha256_hex(&self.text[..self.file_len]))
    }

    pub(super) fn text(&self) -> &[u8] {
        &self.text
    }

    pub(super) fn delimiter(&self) -> u8 {
        self.delimiter
    }

    /// Hands the first rows (blank ones included) to `f`, to find the header.
    pub(super) fn head(&self, max_rows: usize, f: &mut dyn FnMut(&[Row<'_>])) {
        let mut rdr = csv_reader(self.delimiter, &self.text[self.skip..]);
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

    /// Maps every record below `header_row` with `map`, in parallel, and
    /// hands the results to `sink` in order, a batch at a time. One thread
    /// reads the records with the csv crate while the pool maps the batch
    /// before and the sink takes the one before that. `header_width` tells
    /// a quote that swallowed lines from a legitimate cell over several
    /// lines.
    pub(super) fn scan_map<T: Send>(
        &self,
        path: &Path,
        header_row: u64,
        header_width: usize,
        map: &(dyn Fn(&Row<'_>) -> T + Sync),
        sink: &mut super::Sink<'_, T>,
    ) -> Result<()> {
        let scan = Scan {
            path,
            header_row,
            header_width,
        };
        let map_batch = |batch: &Batch| -> Vec<T> {
            batch
                .par_iter()
                .map(|(number, record, span)| {
                    map(&Row::Text {
                        number: *number,
                        record,
                        span: Some(*span),
                    })
                })
                .collect()
        };
        std::thread::scope(|s| {
            let (tx, rx) = stage::bounded::<Result<Batch>>(2);
            // Batches mapped go back to be read into again: their records
            // keep their room.
            let (used_tx, used) = stage::unbounded::<Batch>();
            stage::beside(s, "csv reader", move || {
                self.read_batches(&scan, &tx, &used)
            })
            .map_err(|e| Error::io(path, e))?;
            stage::beside(s, "sha256", || self.sha256()).map_err(|e| Error::io(path, e))?;
            let mut pending: Option<Vec<T>> = None;
            for batch in rx {
                let batch = batch?;
                let mapped = match pending.take() {
                    None => map_batch(&batch),
                    Some(before) => {
                        // The sink takes the batch before on this thread
                        // (it may wait, say for a report writer) while the
                        // pool maps this one.
                        let mut mapped = Vec::new();
                        rayon::in_place_scope(|s| {
                            s.spawn(|_| mapped = map_batch(&batch));
                            sink(before)
                        })?;
                        mapped
                    }
                };
                pending = Some(mapped);
                let _ = used_tx.send(batch);
            }
            match pending {
                Some(rest) => sink(rest),
                None => Ok(()),
            }
        })
    }

    /// Reads the records below the header into batches and sends them on
    /// (until the receiver is gone), or the first problem.
    fn read_batches(
        &self,
        scan: &Scan<'_>,
        out: &stage::Sender<Result<Batch>>,
        used: &stage::Receiver<Batch>,
    ) {
        let text = &self.text[self.skip..];
        let mut rdr = csv_reader(self.delimiter, text);
        let mut batch: Batch = Vec::with_capacity(BATCH_RECORDS);
        let mut spare: Batch = Vec::new();
        let (mut last_line, mut last_start) = (scan.header_row, 0);
        loop {
            let from = rdr.position().byte() as usize;
            let mut rec = spare
                .pop()
                .map_or_else(csv::StringRecord::new, |(_, rec, _)| rec);
            let line = match read_numbered(&mut rdr, &mut rec) {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(e) => {
                    let _ = out.send(Err(csv_error(scan.path, e, 0)));
                    return;
                }
            };
            (last_line, last_start) = (line, from);
            if line <= scan.header_row {
                continue;
            }
            if let Err(e) = scan.whole_record(line, rdr.position().line(), &rec) {
                let _ = out.send(Err(e));
                return;
            }
            // The record's bytes: past the blank lines before it, without
            // its line end.
            let to = rdr.position().byte() as usize;
            let blank = text[from..to].iter().take_while(|&&b| b == b'\n').count();
            let span = (self.skip + from + blank, self.skip + to - 1);
            batch.push((line, rec, span));
            if batch.len() == BATCH_RECORDS {
                spare = used
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(BATCH_RECORDS));
                let next = Vec::with_capacity(BATCH_RECORDS);
                if out.send(Ok(std::mem::replace(&mut batch, next))).is_err() {
                    return;
                }
            }
        }
        if !batch.is_empty() && out.send(Ok(batch)).is_err() {
            return;
        }
        if ends_in_quotes(&text[last_start..], self.delimiter) {
            let _ = out.send(Err(scan.unclosed(last_line)));
        }
    }
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
        loop {
            let (read, nin, o, e) =
                self.parser
                    .read_record(input, &mut self.out[nout..], &mut self.ends[nends..]);
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

/// Reads records again, one at a time, from where a first pass found
/// them: one csv-core parser, reset for each, parses exactly the bytes the
/// first pass parsed, so a record comes back with the cells it had.
pub struct Rereader<'s> {
    path: &'s Path,
    text: &'s [u8],
    parser: RecordParser,
    record: csv::StringRecord,
}

impl<'s> Rereader<'s> {
    pub(super) fn new(path: &'s Path, sheet: &'s TextSheet) -> Self {
        Rereader {
            path,
            text: &sheet.text,
            parser: RecordParser::new(sheet.delimiter),
            record: csv::StringRecord::new(),
        }
    }

    /// The record whose bytes are `span` (see [`Row::span`]), as row
    /// `number`.
    pub fn row(&mut self, number: u64, span: super::Span) -> Result<Row<'_>> {
        let input = self.text.get(span.0..span.1).unwrap_or_default();
        self.parser
            .parse(input, &mut self.record)
            .map_err(|_| Error::input(self.path, format!("line {number}: not valid UTF-8")))?;
        Ok(Row::Text {
            number,
            record: &self.record,
            span: Some(span),
        })
    }
}

/// What a pass over the records needs to know besides their bytes.
struct Scan<'a> {
    path: &'a Path,
    header_row: u64,
    header_width: usize,
}

impl Scan<'_> {
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

fn csv_reader(delimiter: u8, bytes: &[u8]) -> csv::Reader<&[u8]> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(bytes)
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
/// [`lf_line_ends`]), less the newlines inside its quoted cells.
fn read_numbered(
    rdr: &mut csv::Reader<&[u8]>,
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

/// Chooses between UTF-8 and Windows-1252 by all of the file's bytes, and
/// refuses bytes that are not text at all; a UTF-8 or UTF-16 BOM decides at
/// once. `None`: UTF-8.
fn detect_encoding(
    path: &Path,
    bytes: &[u8],
    notes: &mut Vec<String>,
) -> Result<Option<&'static Encoding>> {
    if bytes.starts_with(&[0xEF, 0xBB, 0xBF]) {
        notes.push("encoding UTF-8 with BOM".into());
        return Ok(None);
    }
    if bytes.starts_with(&[0xFF, 0xFE]) {
        notes.push("encoding UTF-16LE (BOM)".into());
        return Ok(Some(UTF_16LE));
    }
    if bytes.starts_with(&[0xFE, 0xFF]) {
        notes.push("encoding UTF-16BE (BOM)".into());
        return Ok(Some(UTF_16BE));
    }
    let line_at = |at: usize| memchr::memchr_iter(b'\n', &bytes[..at]).count() + 1;
    if let Some(at) = memchr::memchr(0, bytes) {
        return Err(Error::input(
            path,
            format!(
                "line {}: the file holds NUL bytes, so it is not a text file (if it is UTF-16 \
                 without a BOM, pass --encoding utf-16le)",
                line_at(at)
            ),
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(s) if s.is_ascii() => notes.push("encoding ASCII (read as UTF-8)".into()),
        Ok(_) => notes.push("encoding UTF-8".into()),
        Err(e) if e.error_len().is_none() => {
            notes.push("encoding Windows-1252 (the file ends inside a UTF-8 character)".into());
            return Ok(Some(WINDOWS_1252));
        }
        Err(e) => {
            let at = e.valid_up_to();
            if !bytes[..at].is_ascii() {
                return Err(Error::input(
                    path,
                    format!(
                        "line {}: byte 0x{:02X} is not valid UTF-8, though earlier lines are UTF-8: the \
                         file mixes encodings; save it as UTF-8 (CSV UTF-8 in Excel)",
                        line_at(at),
                        bytes[at]
                    ),
                ));
            }
            notes.push(format!(
                "encoding Windows-1252 (line {} is not UTF-8 and nothing before it is)",
                line_at(at)
            ));
            return Ok(Some(WINDOWS_1252));
        }
    }
    Ok(None)
}

/// The text of the file's bytes in `encoding` (`None`: UTF-8, as it is),
/// without a BOM.
fn decode(bytes: &[u8], encoding: Option<&'static Encoding>) -> Vec<u8> {
    match encoding {
        None => bytes
            .strip_prefix(&[0xEF, 0xBB, 0xBF])
            .unwrap_or(bytes)
            .to_vec(),
        Some(e) => e.decode_with_bom_removal(bytes).0.into_owned().into_bytes(),
    }
}

/// Turns every line end into LF, in place: CRLF (Windows) and a CR alone
/// (old Mac files, or a stray one), in quoted cells too; and ends the last
/// line. The csv crate counts a record's line before it skips the LF of a
/// CRLF, and does not count a CR alone at all; with LF alone its line
/// numbers are exact.
fn lf_line_ends(text: &mut Vec<u8>) {
    if let Some(first) = memchr::memchr(b'\r', text) {
        let mut w = first;
        for r in first..text.len() {
            let b = text[r];
            if b == b'\r' && text.get(r + 1) == Some(&b'\n') {
                continue; // the LF comes next
            }
            text[w] = if b == b'\r' { b'\n' } else { b };
            w += 1;
        }
        text.truncate(w);
    }
    if text.last().is_some_and(|&b| b != b'\n') {
        text.push(b'\n');
    }
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
        TextSheet::open(
            Path::new("t.csv"),
            text.as_bytes().to_vec(),
            &TextOpts::default(),
        )
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
        sheet.scan_map(Path::new("t.csv"), header_row, 3, &cells, &mut |rows| {
            got.extend(rows);
            Ok(())
        })?;
        Ok(got)
    }

    #[test]
    fn batches_read_as_one_reader_reads() {
        let text = piecemeal_file(60_000);
        both_passes_read_as_one_reader_reads(&text);
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
        assert!(got.len() > 2 * BATCH_RECORDS, "several batches");
        assert_eq!(got.len(), want.len());
        assert_eq!(got, want);
        assert_eq!(
            scanned(&sheet).unwrap(),
            got,
            "a second pass reads the same"
        );
        // Each record read alone again from its span reads the same.
        let mut spans = Vec::new();
        let span = |r: &Row<'_>| (r.number(), r.span().unwrap());
        sheet
            .scan_map(Path::new("t.csv"), 3, 3, &span, &mut |rows| {
                spans.extend(rows);
                Ok(())
            })
            .unwrap();
        let mut again = Rereader::new(Path::new("t.csv"), &sheet);
        let reread: Lines = spans
            .iter()
            .map(|&(number, span)| {
                let r = again.row(number, span).unwrap();
                (
                    number,
                    (0..3).map(|c| r.cell(c).text.into_owned()).collect(),
                )
            })
            .collect();
        assert_eq!(reread, want, "read alone again");
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
    fn line_ends_become_lf() {
        for (input, want) in [
            (&b"a\r\nb\r\n"[..], &b"a\nb\n"[..]),
            (b"a\rb\r", b"a\nb\n"),
            (b"a\r\r\nb", b"a\n\nb\n"),
            (b"\"x\r\ny\"\r", b"\"x\ny\"\n"),
            (b"", b""),
            (b"no end", b"no end\n"),
        ] {
            let mut text = input.to_vec();
            lf_line_ends(&mut text);
            assert_eq!(text, want, "{}", String::from_utf8_lossy(input));
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

    #[test]
    fn encodings_are_told_from_the_whole_file() {
        let detect = |bytes: &[u8]| {
            let mut notes = Vec::new();
            detect_encoding(Path::new("t.csv"), bytes, &mut notes).map(|e| (e, notes))
        };
        // UTF-8 far down a file of ASCII is still UTF-8 ...
        let mut late = vec![b'a'; 3 << 20];
        late.extend_from_slice("caf\u{e9}\n".as_bytes());
        assert_eq!(detect(&late).unwrap().0, None);
        // ... and a Windows-1252 byte far down is Windows-1252.
        let mut w = vec![b'a'; 3 << 20];
        w.extend_from_slice(b"caf\xe9\n");
        assert_eq!(detect(&w).unwrap().0, Some(WINDOWS_1252));
        // UTF-8 then a byte that is not: mixed, refused.
        let mut mixed = "caf\u{e9}\n".as_bytes().to_vec();
        mixed.extend_from_slice(b"x\xe9\n");
        let err = detect(&mixed).unwrap_err().to_string();
        assert!(err.contains("line 2: byte 0xE9"), "{err}");
        let err = detect(b"a\nb\0c").unwrap_err().to_string();
        assert!(err.contains("line 2: the file holds NUL bytes"), "{err}");
        assert_eq!(detect(b"\xff\xfea\0").unwrap().0, Some(UTF_16LE));
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
