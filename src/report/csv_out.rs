//! The CSV report: formatted in parallel, written in order, with every
//! cell a spreadsheet would execute neutralised.
//!
//! Most rows of a large CSV input are plain: no cell needs quoting,
//! trimming or neutralising, and the row is valid. Such a row's line is the
//! input record copied as it is between the leading and the result
//! columns; every other row goes through the csv writer, cell by cell.

use std::path::Path;

use rayon::prelude::*;

use super::{HashedFile, ReportHeader, ReportRow, RunFacts, Sink, neutralize};
use crate::error::{Error, Result};

pub(super) struct CsvSink {
    out: HashedFile,
    /// `source_file,sheet,` as CSV, the start of every plain line.
    lead: Vec<u8>,
}

impl CsvSink {
    pub(super) fn create(path: &Path, header: &ReportHeader) -> Result<Self> {
        let mut out = HashedFile::create(path)?;
        let names = ["source_file", "sheet", "row"]
            .into_iter()
            .map(String::from)
            .chain(header.columns.iter().map(|c| neutralize(c).into_owned()))
            .chain(header.result_columns().iter().map(|c| c.to_string()));
        out.write_all(&record_line(names).map_err(|e| Error::report(path, e))?)?;
        let (file, sheet) = (neutralize(&header.source_file), neutralize(&header.sheet));
        let mut lead =
            record_line([file.as_bytes(), sheet.as_bytes()]).map_err(|e| Error::report(path, e))?;
        lead.pop(); // the line end
        lead.push(b',');
        Ok(CsvSink { out, lead })
    }
}

/// A csv writer buffer that holds a field of `longest` bytes quoted (every
/// byte a doubled quote at worst), so that csv-core writes it in one call.
pub(super) fn quoted_capacity(longest: usize) -> usize {
    256.max(longest.saturating_mul(2).saturating_add(2))
}

/// One CSV line.
fn record_line<I, T>(fields: I) -> std::io::Result<Vec<u8>>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = csv::Writer::from_writer(Vec::with_capacity(256));
    w.write_record(fields)?;
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// Whether a comma-separated record's bytes are exactly what the csv
/// writer writes for its cells in the report: `ncols` cells, each trimmed,
/// none a formula nor holding a CR, quoted (quotes doubled) when and only
/// when it holds a comma, quote or line break. Then a valid row's report
/// line can copy them instead of writing cell by cell. The order id must
/// need no quoting or neutralising either.
pub(super) fn verbatim(raw: &[u8], order_id: &str, ncols: usize) -> bool {
    if !plain(order_id.as_bytes()) || needs_quotes(order_id.as_bytes()) {
        return false;
    }
    // Only the bytes that bound or quote a cell matter, found 16 at a time;
    // between them, only each cell's first and last byte.
    #[derive(Clone, Copy)]
    enum In {
        /// An unquoted cell, or the start of any cell.
        Cell,
        /// Inside quotes; `needed`: the cell holds a comma, line break or
        /// (doubled) quote, so the writer quotes it too.
        Quotes { needed: bool },
        /// Just past a closing quote: a comma must follow.
        Closed,
    }
    let (mut state, mut start, mut cells, mut skip) = (In::Cell, 0, 1, 0);
    for at in Specials::new(raw) {
        if at < skip {
            continue; // the second quote of a doubled pair
        }
        state = match (state, raw[at]) {
            (In::Cell, b',') if plain(&raw[start..at]) => {
                (cells, start) = (cells + 1, at + 1);
                In::Cell
            }
            (In::Cell, b'"') if at == start => In::Quotes { needed: false },
            (In::Quotes { .. }, b'"') if raw.get(at + 1) == Some(&b'"') => {
                skip = at + 2;
                In::Quotes { needed: true }
            }
            (In::Quotes { needed: true }, b'"') if plain(&raw[start + 1..at]) => In::Closed,
            (In::Quotes { .. }, b',' | b'\n') => In::Quotes { needed: true },
            // Nothing between the closing quote and the comma.
            (In::Closed, b',') if raw[at - 1] == b'"' => {
                (cells, start) = (cells + 1, at + 1);
                In::Cell
            }
            _ => return false,
        };
        if cells > ncols {
            return false;
        }
    }
    cells == ncols
        && match state {
            In::Cell => plain(&raw[start..]),
            In::Quotes { .. } => false,
            In::Closed => raw.last() == Some(&b'"'),
        }
}

/// The positions of the commas, quotes, CRs and LFs of a record, in order.
struct Specials<'a> {
    raw: &'a [u8],
    /// Where the next 16 bytes start.
    next: usize,
    /// Where the 16 bytes `mask` covers start.
    base: usize,
    /// Bit `i`: the byte at `base + i` is one of them (and not yet handed out).
    mask: u32,
}

impl<'a> Specials<'a> {
    fn new(raw: &'a [u8]) -> Self {
        Specials {
            raw,
            next: 0,
            base: 0,
            mask: 0,
        }
    }
}

impl Iterator for Specials<'_> {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        while self.mask == 0 {
            let rest = self.raw.get(self.next..).filter(|r| !r.is_empty())?;
            self.mask = match rest.first_chunk::<16>() {
                Some(chunk) => specials16(chunk),
                // The last bytes, padded (a NUL is none of them).
                None => {
                    let mut chunk = [0u8; 16];
                    chunk[..rest.len()].copy_from_slice(rest);
                    specials16(&chunk)
                }
            };
            self.base = self.next;
            self.next += 16;
        }
        let at = self.base + self.mask.trailing_zeros() as usize;
        self.mask &= self.mask - 1;
        Some(at)
    }
}

/// Bit `i` set where `chunk[i]` is `,` `"` CR or LF: with SSE2 (which every
/// x86-64 processor has), one compare per byte value for all 16 bytes.
#[cfg(target_arch = "x86_64")]
fn specials16(chunk: &[u8; 16]) -> u32 {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    // SAFETY: SSE2 is part of x86-64, and the load reads the 16 bytes of
    // `chunk`, unaligned, which `_mm_loadu_si128` allows.
    unsafe {
        let v = _mm_loadu_si128(chunk.as_ptr().cast());
        let is = |b: u8| _mm_cmpeq_epi8(v, _mm_set1_epi8(b as i8));
        let any = _mm_or_si128(
            _mm_or_si128(is(b','), is(b'"')),
            _mm_or_si128(is(b'\r'), is(b'\n')),
        );
        _mm_movemask_epi8(any) as u32
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn specials16(chunk: &[u8; 16]) -> u32 {
    chunk.iter().enumerate().fold(0, |m, (i, &b)| {
        m | u32::from(matches!(b, b',' | b'"' | b'\r' | b'\n')) << i
    })
}

/// [`verbatim`]'s test of the cells, one byte at a time: the plain
/// statement of what it decides, for the tests to hold it to.
#[cfg(test)]
fn verbatim_cell_by_cell(raw: &[u8], ncols: usize) -> bool {
    let mut i = 0;
    for c in 0..ncols {
        if c > 0 {
            if raw.get(i) != Some(&b',') {
                return false;
            }
            i += 1;
        }
        let start = i;
        if raw.get(i) == Some(&b'"') {
            i += 1;
            let mut needed = false;
            loop {
                match raw.get(i) {
                    None | Some(b'\r') => return false,
                    Some(b'"') if raw.get(i + 1) == Some(&b'"') => {
                        needed = true;
                        i += 2;
                    }
                    Some(b'"') => break,
                    Some(b',' | b'\n') => {
                        needed = true;
                        i += 1;
                    }
                    Some(_) => i += 1,
                }
            }
            // The cell (its quotes still doubled) starts and ends as the
            // unquoted one would.
            if !needed || !plain(&raw[start + 1..i]) {
                return false;
            }
            i += 1; // the closing quote
        } else {
            while let Some(&b) = raw.get(i) {
                match b {
                    b',' => break,
                    b'"' | b'\r' | b'\n' => return false,
                    _ => i += 1,
                }
            }
            if !plain(&raw[start..i]) {
                return false;
            }
        }
    }
    i == raw.len()
}

/// The bytes the csv writer quotes a cell for. One look at every byte
/// (no stop at the first), which the compiler does many at a time: the
/// cells asked about are short, such as order ids.
fn needs_quotes(cell: &[u8]) -> bool {
    cell.iter().fold(false, |any, b| {
        any | matches!(b, b',' | b'"' | b'\r' | b'\n')
    })
}

/// No whitespace (nor any non-ASCII byte, which might be Unicode
/// whitespace) at either end, and nothing a spreadsheet runs first.
fn plain(cell: &[u8]) -> bool {
    let (Some(first), Some(last)) = (cell.first(), cell.last()) else {
        return true;
    };
    !(first.is_ascii_whitespace()
        || last.is_ascii_whitespace()
        || !first.is_ascii()
        || !last.is_ascii()
        || matches!(first, b'=' | b'+' | b'-' | b'@'))
}

fn format_rows(
    lead: &[u8],
    header: &ReportHeader,
    rows: &[ReportRow<'_>],
) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(rows.len() * 256);
    let mut num = itoa::Buffer::new();
    let mut tail = Vec::with_capacity(8);
    for r in rows {
        r.result_cells_into(header.submitted, &mut tail);
        // The order id was checked with the cells; the other result cells
        // are codes, numbers and times, but an API's code could be anything.
        let plain_tail = || {
            tail.iter()
                .all(|c| plain(c.as_bytes()) && !needs_quotes(c.as_bytes()))
        };
        match r.verbatim {
            Some(raw) if plain_tail() => {
                out.extend_from_slice(lead);
                out.extend_from_slice(num.format(r.number).as_bytes());
                out.push(b',');
                out.extend_from_slice(raw);
                for v in &tail {
                    out.push(b',');
                    out.extend_from_slice(v.as_bytes());
                }
                out.push(b'\n');
            }
            _ => cell_by_cell(&mut out, header, r, &tail, &mut num)?,
        }
    }
    Ok(out)
}

/// A report line through the csv writer, every cell neutralised, added to
/// `out`.
fn cell_by_cell(
    out: &mut Vec<u8>,
    header: &ReportHeader,
    r: &ReportRow<'_>,
    tail: &[std::borrow::Cow<'_, str>],
    num: &mut itoa::Buffer,
) -> std::io::Result<()> {
    // A writer a line: its buffer is small, as it is zeroed each time, but
    // holds the longest cell quoted: csv-core looks for quotes in the rest
    // of a field each time its buffer fills, which for a cell of megabytes
    // in a small buffer is quadratic.
    let longest = r
        .cells
        .iter()
        .chain(tail)
        .map(|c| c.len())
        .max()
        .unwrap_or(0);
    let mut w = csv::WriterBuilder::new()
        .buffer_capacity(quoted_capacity(longest))
        .from_writer(out);
    w.write_field(neutralize(&header.source_file).as_bytes())?;
    w.write_field(neutralize(&header.sheet).as_bytes())?;
    w.write_field(num.format(r.number))?;
    for c in &r.cells {
        w.write_field(neutralize(c).as_bytes())?;
    }
    for c in tail {
        w.write_field(neutralize(c).as_bytes())?;
    }
    w.write_record(None::<&[u8]>)?;
    w.flush()
}

impl CsvSink {
    /// Formats report rows as CSV lines (on any thread).
    pub(super) fn format(&self, header: &ReportHeader, rows: &[ReportRow<'_>]) -> Result<Vec<u8>> {
        format_rows(&self.lead, header, rows).map_err(|e| Error::report(self.out.path(), e))
    }

    /// Writes lines [`format`](Self::format) made, in order.
    pub(super) fn write(&mut self, lines: Vec<u8>) -> Result<()> {
        self.out.write_vec(lines)
    }
}

impl Sink for CsvSink {
    fn rows(&mut self, header: &ReportHeader, rows: &[ReportRow<'_>]) -> Result<()> {
        let parts: Vec<Vec<u8>> = rows
            .par_chunks(512)
            .map(|c| self.format(header, c))
            .collect::<Result<_>>()?;
        parts.into_iter().try_for_each(|part| self.write(part))
    }

    fn finish(self: Box<Self>, _header: &ReportHeader, _facts: &RunFacts) -> Result<String> {
        self.out.commit()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// The test that looks only at the bytes that bound cells decides as
        /// the byte-by-byte one does, quotes, line breaks and all.
        #[test]
        fn verbatim_decides_as_cell_by_cell(raw in "[a, =@+\t\u{e9}1\"\r\n-]{0,40}", ncols in 1usize..6) {
            let quick = verbatim(raw.as_bytes(), "DCB-1", ncols);
            proptest::prop_assert_eq!(quick, verbatim_cell_by_cell(raw.as_bytes(), ncols));
        }

        /// The same, on records built of cells, some quoted: the shapes
        /// real records have, well formed or not.
        #[test]
        fn verbatim_decides_as_cell_by_cell_on_records(
            cells in proptest::collection::vec(("[a ,=\"\r\n1-]{0,6}", proptest::bool::ANY), 1..6),
            ncols in 1usize..6,
        ) {
            let raw = cells
                .iter()
                .map(|(c, quoted)| if *quoted { format!("\"{c}\"") } else { c.clone() })
                .collect::<Vec<_>>()
                .join(",");
            let quick = verbatim(raw.as_bytes(), "DCB-1", ncols);
            proptest::prop_assert_eq!(quick, verbatim_cell_by_cell(raw.as_bytes(), ncols), "{:?}", raw);
        }
    }

    #[test]
    fn verbatim_only_when_the_writer_would_write_the_same() {
        for (raw, ok) in [
            (&b"a,b,c"[..], true),
            (b"a,,c", true),
            (b",,", true),
            (b"a,\"b,1\",c", true),
            (b"a,\"say \"\"hi\"\", x\",c", true),
            (b"a,\"two\nlines\",c", true),
            (b"a,\"b\",c", false), // quoted, needlessly
            (b"a,b", false),       // too few cells
            (b"a,b,c,d", false),   // too many
            (b"a, b,c", false),    // padded
            (b"a,b ,c", false),
            (b"a,=1+1,c", false), // a formula
            (b"a,-5,c", false),
            (b"a,+91,c", false),
            (b"@x,b,c", false),
            (b"a,\tb,c", false),
            (b"a,b\rx,c", false),
            (b"a,b\"x,c", false),                // a bare quote
            ("a,caf\u{e9},c".as_bytes(), false), // non-ASCII at an end
            ("a,d\u{e9}j\u{e0}vu!,c".as_bytes(), true),
            (b"a,1-2,c", true),
            (b"a,\"b,1\"x,c", false), // text after the closing quote
            (b"a,\"b,1", false),      // a quote never closed
            (b"a,\"b\r,1\",c", false),
            (b"a,\" b,1\",c", false), // padded inside the quotes
            (b"a,\"=1,2\",c", false),
        ] {
            let shown = String::from_utf8_lossy(raw);
            assert_eq!(verbatim(raw, "DCB-1", 3), ok, "{shown}");
            if ok {
                let mut rdr = csv::ReaderBuilder::new()
                    .has_headers(false)
                    .from_reader(raw);
                let mut record = csv::StringRecord::new();
                rdr.read_record(&mut record).unwrap();
                // What the fast path copies is what the writer writes.
                let cells: Vec<_> = record.iter().collect();
                let mut line = record_line(cells).unwrap();
                assert_eq!(line.pop(), Some(b'\n'));
                assert_eq!(line, raw, "{shown}");
            }
        }
        assert!(verbatim(b"a,b,c", "DCB-1", 3));
        assert!(!verbatim(b"a,b,c", "=HYPERLINK(1)", 3));
        assert!(!verbatim(b"a,b,c", "ref, 1", 3));
    }
}
