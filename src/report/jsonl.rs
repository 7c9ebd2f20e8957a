//! The JSON Lines report: one object per row, the original cells under
//! `cells` (in column order), problems as objects with cell, field, message.

use std::path::Path;

use rayon::prelude::*;
use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{ErrorItem, HashedFile, ReportHeader, ReportRow, RunFacts, Sink};
use crate::error::Result;

pub(super) struct JsonlSink {
    out: HashedFile,
}

impl JsonlSink {
    pub(super) fn create(path: &Path) -> Result<Self> {
        Ok(JsonlSink {
            out: HashedFile::create(path)?,
        })
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
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    http_status: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    attempts: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    submitted_at: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_ms: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    request_id: Option<&'a str>,
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
                        status: r.status_text(),
                        order_id: r.order_id,
                        errors: &r.errors,
                        error_code: r.sent.and_then(|s| s.error_code.as_deref()),
                        http_status: r.sent.and_then(|s| s.http_status),
                        attempts: r.sent.map(|s| s.attempts),
                        submitted_at: r.sent.and_then(|s| s.submitted_at.as_deref()),
                        latency_ms: r.sent.and_then(|s| s.latency_ms),
                        request_id: r.sent.and_then(|s| s.request_id.as_deref()),
                    };
                    // Serialising strings and numbers into memory cannot fail.
                    let _ = serde_json::to_writer(&mut buf, &line);
                    buf.push(b'\n');
                }
                buf
            })
            .collect();
        for c in chunks {
            self.out.write_all(&c)?;
        }
        Ok(())
    }

    fn finish(self: Box<Self>, _header: &ReportHeader, _facts: &RunFacts) -> Result<String> {
        self.out.commit()
    }
}
