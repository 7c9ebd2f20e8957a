//! The CSV report: the csv crate's writer, every cell a spreadsheet would
//! execute neutralised. A line whose cells come as one CSV record (see
//! [`Cells::Csv`]) and whose results need no quotes copies that record.

use std::io;

use super::{Cells, Header, Line, TextFormat, column_names, is_inert, neutralize};

pub(super) struct Csv {
    /// `source_file` and `sheet`, neutralised, the same on every line.
    lead: [String; 2],
    /// The same as the start of a CSV line, with the comma after.
    lead_line: Vec<u8>,
}

impl Csv {
    /// The format, and the header line.
    pub(super) fn new(header: &Header) -> io::Result<(Self, Vec<u8>)> {
        let names = record(column_names(header).map(|c| neutralize(c).into_owned()))?;
        let lead = [
            neutralize(&header.source_file).into_owned(),
            neutralize(&header.sheet).into_owned(),
        ];
        let mut lead_line = record(&lead)?;
        lead_line.pop(); // the line end
        lead_line.push(b',');
        Ok((Csv { lead, lead_line }, names))
    }

    /// Lines through the csv writer, cell by cell, added to `out`.
    fn write(&self, out: &mut Vec<u8>, lines: &[Line<'_>]) -> csv::Result<()> {
        // The writer's buffer holds the longest line quoted (every byte a
        // doubled quote at worst): csv-core looks for quotes in the rest of
        // a field each time its buffer fills, which for a cell of
        // megabytes in a small buffer is quadratic.
        let longest = lines.iter().map(line_len).max().unwrap_or(0);
        let mut w = csv::WriterBuilder::new()
            .buffer_capacity((8 << 10).max(longest.saturating_mul(2).saturating_add(64)))
            .from_writer(out);
        let mut number = itoa::Buffer::new();
        for line in lines {
            w.write_field(&self.lead[0])?;
            w.write_field(&self.lead[1])?;
            w.write_field(number.format(line.number))?;
            for c in line.cells.list().iter() {
                w.write_field(neutralize(c).as_bytes())?;
            }
            for v in &line.results {
                w.write_field(neutralize(&v.text()).as_bytes())?;
            }
            w.write_record(None::<&[u8]>)?;
        }
        w.flush()?;
        Ok(())
    }
}

/// About how long a line is, in bytes.
fn line_len(line: &Line<'_>) -> usize {
    let cells = match &line.cells {
        Cells::List(record) => record.as_slice().len(),
        Cells::Csv(bytes) => bytes.len(),
    };
    cells + line.results.iter().map(|v| v.text().len()).sum::<usize>()
}

/// A report read back and extended (see [`super::write_table`]): its
/// cells written as they are.
pub(super) fn table(headers: &[String], rows: &[Vec<String>]) -> io::Result<Vec<u8>> {
    let mut w = writer(Vec::new());
    w.write_record(headers)?;
    for r in rows {
        w.write_record(r)?;
    }
    w.into_inner().map_err(|e| e.into_error())
}

/// One CSV line.
fn record<I, T>(fields: I) -> io::Result<Vec<u8>>
where
    I: IntoIterator<Item = T>,
    T: AsRef<[u8]>,
{
    let mut w = writer(Vec::new());
    w.write_record(fields)?;
    w.into_inner().map_err(|e| e.into_error())
}

fn writer(out: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new().from_writer(out)
}

/// A result cell that goes into a line as it is: no quotes needed, inert.
fn plain(text: &str) -> bool {
    // Result cells are short: a look at each byte beats a search.
    is_inert(text)
        && !text
            .bytes()
            .any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r'))
}

impl TextFormat for Csv {
    fn format(&self, lines: &[Line<'_>]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(lines.len() * 256);
        let mut number = itoa::Buffer::new();
        let mut rest = lines;
        while let Some(line) = rest.first() {
            let Cells::Csv(bytes) = &line.cells else {
                // The lines up to the next record copied as it is.
                let n = rest
                    .iter()
                    .position(|l| matches!(l.cells, Cells::Csv(_)))
                    .unwrap_or(rest.len());
                self.write(&mut out, &rest[..n])?;
                rest = &rest[n..];
                continue;
            };
            rest = &rest[1..];
            out.extend_from_slice(&self.lead_line);
            out.extend_from_slice(number.format(line.number).as_bytes());
            out.push(b',');
            out.extend_from_slice(bytes);
            if line.results.iter().all(|v| plain(&v.text())) {
                for v in &line.results {
                    out.push(b',');
                    out.extend_from_slice(v.text().as_bytes());
                }
                out.push(b'\n');
            } else {
                out.push(b',');
                let results = line
                    .results
                    .iter()
                    .map(|v| neutralize(&v.text()).into_owned());
                out.extend_from_slice(&record(results)?);
            }
        }
        Ok(out)
    }
}
