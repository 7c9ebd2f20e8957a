//! The JSON Lines report: one object per row, the original cells under
//! `cells` (in column order), problems as objects with cell, field, message.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rayon::prelude::*;
use serde::ser::{Serialize, SerializeMap, Serializer};
use sha2::{Digest, Sha256};

use super::{AtomicFile, ErrorItem, HashingWriter, ReportHeader, ReportRow, RunFacts, Sink};
use crate::error::{Error, Result};

pub(super) struct JsonlSink {
    file: AtomicFile,
    out: BufWriter<HashingWriter<File>>,
}

impl JsonlSink {
    pub(super) fn create(path: &Path) -> Result<Self> {
        let file = AtomicFile::create(path)?;
        let handle = file
            .tmp
            .as_file()
            .try_clone()
            .map_err(|e| Error::report(path, e))?;
        let out = BufWriter::with_capacity(
            1 << 20,
            HashingWriter {
                inner: handle,
                hash: Sha256::new(),
            },
        );
        Ok(JsonlSink { file, out })
    }
}

#[derive(serde::Serialize)]
struct Line<'a> {
    source_file: &'a str,
    sheet: &'a str,
    row: u64,
    cells: Cells<'a>,
    status: &'a str,
    order_id: &'a str,
    errors: &'a [ErrorItem],
}

struct Cells<'a> {
    names: &'a [String],
    values: &'a [std::borrow::Cow<'a, str>],
}

impl Serialize for Cells<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.names.len()))?;
        for (k, v) in self.names.iter().zip(self.values) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Sink for JsonlSink {
    fn rows(&mut self, header: &ReportHeader, rows: &[ReportRow<'_>]) -> Result<()> {
        let chunks: Vec<Vec<u8>> = rows
            .par_chunks(512)
            .map(|chunk| {
                let mut buf = Vec::with_capacity(chunk.len() * 400);
                for r in chunk {
                    let line = Line {
                        source_file: &header.source_file,
                        sheet: &header.sheet,
                        row: r.number,
                        cells: Cells {
                            names: &header.columns,
                            values: &r.cells,
                        },
                        status: r.status.as_str(),
                        order_id: r.order_id,
                        errors: &r.errors,
                    };
                    // Serialising strings and numbers into memory cannot fail.
                    let _ = serde_json::to_writer(&mut buf, &line);
                    buf.push(b'\n');
                }
                buf
            })
            .collect();
        for c in chunks {
            self.out
                .write_all(&c)
                .map_err(|e| Error::report(&self.file.path, e))?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, _header: &ReportHeader, _facts: &RunFacts) -> Result<String> {
        let JsonlSink { file, out } = *self;
        let hw = out
            .into_inner()
            .map_err(|e| Error::report(&file.path, e.error()))?;
        let sha = hex::encode(hw.hash.finalize());
        drop(hw.inner);
        file.commit()?;
        Ok(sha)
    }
}
