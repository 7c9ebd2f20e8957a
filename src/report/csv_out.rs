//! The CSV report: formatted in parallel, written in order, with every
//! cell a spreadsheet would execute neutralised.

use std::path::Path;

use rayon::prelude::*;

use super::{HashedFile, RESULT_COLUMNS, ReportHeader, ReportRow, RunFacts, Sink, neutralize};
use crate::error::{Error, Result};

pub(super) struct CsvSink {
    out: HashedFile,
}

impl CsvSink {
    pub(super) fn create(path: &Path, header: &ReportHeader) -> Result<Self> {
        let mut sink = CsvSink {
            out: HashedFile::create(path)?,
        };
        let mut w = csv::Writer::from_writer(Vec::new());
        let names = ["source_file", "sheet", "row"]
            .into_iter()
            .map(String::from)
            .chain(header.columns.iter().map(|c| neutralize(c).into_owned()))
            .chain(RESULT_COLUMNS.iter().map(|c| c.to_string()));
        w.write_record(names).map_err(|e| Error::report(path, e))?;
        let bytes = w.into_inner().map_err(|e| Error::report(path, e.error()))?;
        sink.out.write_all(&bytes)?;
        Ok(sink)
    }
}

fn format_rows(header: &ReportHeader, rows: &[ReportRow<'_>]) -> std::io::Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::with_capacity(rows.len() * 256));
    let file = neutralize(&header.source_file);
    let sheet = neutralize(&header.sheet);
    let mut num = itoa_buf();
    for r in rows {
        w.write_field(file.as_bytes())?;
        w.write_field(sheet.as_bytes())?;
        w.write_field(num.format(r.number))?;
        for c in &r.cells {
            w.write_field(neutralize(c).as_bytes())?;
        }
        w.write_field(r.status.as_str())?;
        w.write_field(r.order_id)?;
        w.write_field(neutralize(&r.errors_text()).as_bytes())?;
        w.write_record(None::<&[u8]>)?;
    }
    w.into_inner()
        .map_err(|e| std::io::Error::other(e.to_string()))
}

/// A small integer formatter that reuses its buffer.
struct NumBuf(String);

fn itoa_buf() -> NumBuf {
    NumBuf(String::with_capacity(20))
}

impl NumBuf {
    fn format(&mut self, n: u64) -> &str {
        use std::fmt::Write as _;
        self.0.clear();
        let _ = write!(self.0, "{n}");
        &self.0
    }
}

impl Sink for CsvSink {
    fn rows(&mut self, header: &ReportHeader, rows: &[ReportRow<'_>]) -> Result<()> {
        let chunks: Vec<std::io::Result<Vec<u8>>> = rows
            .par_chunks(512)
            .map(|c| format_rows(header, c))
            .collect();
        for chunk in chunks {
            let bytes = chunk.map_err(|e| Error::report(&self.out.file.path, e))?;
            self.out.write_all(&bytes)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, _header: &ReportHeader, _facts: &RunFacts) -> Result<String> {
        self.out.commit()
    }
}
