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

    /// A line of cells written one by one (csv-core quotes them where
    /// needed), added to `out`.
    fn write(&self, out: &mut Vec<u8>, line: &Line<'_>, cells: &csv::StringRecord) {
        let mut fields = Fields::new(out);
        fields.field(self.lead[0].as_bytes());
        fields.field(self.lead[1].as_bytes());
        fields.field(itoa::Buffer::new().format(line.number).as_bytes());
        for c in cells.iter() {
            fields.field(neutralize(c).as_bytes());
        }
        for v in &line.results {
            fields.field(neutralize(&v.text()).as_bytes());
        }
        fields.end();
    }
}

/// CSV fields written into a growing buffer by csv-core's writer, which
/// decides whether each needs quotes, as the csv crate's writer does (it
/// is that writer's core): the same bytes.
struct Fields<'o> {
    core: csv_core::Writer,
    out: &'o mut Vec<u8>,
    first: bool,
}

impl<'o> Fields<'o> {
    fn new(out: &'o mut Vec<u8>) -> Self {
        Fields {
            core: csv_core::Writer::new(),
            out,
            first: true,
        }
    }

    /// The next field, after a delimiter unless it is the first.
    fn field(&mut self, field: &[u8]) {
        if !std::mem::take(&mut self.first) {
            // An end quote and the delimiter, at most.
            self.put(2, |core, room| core.delimiter(room).1);
        }
        // The whole field in one call, which csv-core needs to decide on
        // quotes: room for every byte a doubled quote, and the quotes.
        self.put(2 + 2 * field.len(), |core, room| core.field(field, room).2);
    }

    /// The line's end (and an end quote before it).
    fn end(mut self) {
        self.put(3, |core, room| core.terminator(room).1);
    }

    /// Lets `write` add up to `room` bytes to the buffer; it says how many.
    fn put(&mut self, room: usize, write: impl FnOnce(&mut csv_core::Writer, &mut [u8]) -> usize) {
        let len = self.out.len();
        self.out.resize(len + room, 0);
        let n = write(&mut self.core, &mut self.out[len..]);
        self.out.truncate(len + n);
    }
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
    fn line(&self, out: &mut Vec<u8>, line: &Line<'_>) -> io::Result<()> {
        let bytes = match &line.cells {
            Cells::Csv(bytes) => bytes,
            Cells::List(cells) => {
                self.write(out, line, cells);
                return Ok(());
            }
        };
        out.extend_from_slice(&self.lead_line);
        out.extend_from_slice(itoa::Buffer::new().format(line.number).as_bytes());
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
            let mut fields = Fields::new(out);
            for v in &line.results {
                fields.field(neutralize(&v.text()).as_bytes());
            }
            fields.end();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::report::Value;

    /// Cells that need quotes, and cells that do not.
    const CELLS: [&str; 12] = [
        "",
        "plain",
        "a,b",
        "say \"hi\"",
        "\"",
        "\"\"\"",
        "two\nlines",
        "cr\rhere",
        " spaced ",
        "ünïcödé",
        "=1+2",
        "x;y",
    ];

    fn header() -> Header {
        Header {
            source_file: "in, \"the\" file.csv".into(),
            sheet: "=sheet".into(),
            columns: vec!["a".into(), "b".into(), "c".into()],
            results: vec!["status", "errors"],
            json_order: vec![0, 1],
            rows: 1,
            csv_bom: false,
        }
    }

    /// What the csv crate's writer writes for a line's fields.
    fn written(header: &Header, number: u64, cells: &[&str], results: &[&str]) -> Vec<u8> {
        let number = number.to_string();
        let fields = [header.source_file.as_str(), &header.sheet, &number]
            .into_iter()
            .chain(cells.iter().copied())
            .chain(results.iter().copied())
            .map(|f| neutralize(f).into_owned());
        record(fields).unwrap()
    }

    #[test]
    fn a_line_is_what_the_csv_writer_writes() {
        let header = header();
        let (csv, _) = Csv::new(&header).unwrap();
        let big = "\"a,\n".repeat(50_000);
        let mut cells: Vec<&str> = CELLS.to_vec();
        cells.push(&big);
        for (i, &a) in cells.iter().enumerate() {
            let b = cells[(i * 5 + 3) % cells.len()];
            let c = cells[(i * 7 + 1) % cells.len()];
            let results = [c, a];
            let line = |cells: Cells<'static>| Line {
                number: i as u64 + 2,
                cells,
                results: results
                    .iter()
                    .map(|r| Value::Text(Cow::Owned(r.to_string())))
                    .collect(),
                flagged: Vec::new(),
                warned: Vec::new(),
            };
            let want = written(&header, i as u64 + 2, &[a, b, c], &results);
            // Cells one by one.
            let list = Cells::List(csv::StringRecord::from(vec![a, b, c]));
            let mut got = Vec::new();
            csv.line(&mut got, &line(list)).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&got),
                String::from_utf8_lossy(&want),
                "{a:?} {b:?} {c:?}"
            );
            // A record copied as it is (of cells that need no neutralising).
            if [a, b, c].iter().all(|c| is_inert(c)) {
                let bytes = record([a, b, c]).unwrap();
                let bytes = bytes[..bytes.len() - 1].to_vec();
                let mut got = Vec::new();
                csv.line(&mut got, &line(Cells::Csv(Cow::Owned(bytes))))
                    .unwrap();
                assert_eq!(got, want, "{a:?} {b:?} {c:?} copied");
            }
        }
    }
}
