//! The CSV report: the csv crate's writer, every cell a spreadsheet would
//! execute neutralised.

use std::io;

use super::{Header, Line, TextFormat, column_names, neutralize};

pub(super) struct Csv {
    /// `source_file` and `sheet`, neutralised, the same on every line.
    lead: [String; 2],
}

impl Csv {
    /// The format, and the header line.
    pub(super) fn new(header: &Header) -> io::Result<(Self, Vec<u8>)> {
        let mut names = writer(Vec::new());
        names.write_record(column_names(header).map(|c| neutralize(c).into_owned()))?;
        let names = names.into_inner().map_err(|e| e.into_error())?;
        let lead = [
            neutralize(&header.source_file).into_owned(),
            neutralize(&header.sheet).into_owned(),
        ];
        Ok((Csv { lead }, names))
    }
}

fn writer(out: Vec<u8>) -> csv::Writer<Vec<u8>> {
    csv::WriterBuilder::new()
        .buffer_capacity(64 << 10)
        .from_writer(out)
}

impl TextFormat for Csv {
    fn format(&self, lines: &[Line<'_>]) -> io::Result<Vec<u8>> {
        let mut w = writer(Vec::with_capacity(lines.len() * 256));
        let mut number = itoa::Buffer::new();
        for line in lines {
            w.write_field(&self.lead[0])?;
            w.write_field(&self.lead[1])?;
            w.write_field(number.format(line.number))?;
            for c in &line.cells {
                w.write_field(neutralize(c).as_bytes())?;
            }
            for v in &line.results {
                w.write_field(neutralize(&v.text()).as_bytes())?;
            }
            w.write_record(None::<&[u8]>)?;
        }
        w.into_inner().map_err(|e| e.into_error())
    }
}
