//! The JSON Lines report: one object per row, the original cells under
//! `cells` (in column order), then the result columns in the header's JSON
//! order, an empty one left out; problems as objects with cell, field and
//! message.

use std::io;

use serde::ser::{Serialize, SerializeMap, Serializer};

use super::{Header, Line, TextFormat, Value};

pub(super) struct Jsonl {
    header: Header,
}

impl Jsonl {
    pub(super) fn new(header: &Header) -> Self {
        Jsonl {
            header: header.clone(),
        }
    }
}

/// One line as a JSON object.
struct Object<'a> {
    header: &'a Header,
    line: &'a Line<'a>,
}

/// The original cells, by column name.
struct Cells<'a>(&'a Header, &'a csv::StringRecord);

impl Serialize for Cells<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.columns.len()))?;
        for (k, v) in self.0.columns.iter().zip(self.1.iter()) {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}

impl Serialize for Object<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let (h, line) = (self.header, self.line);
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("source_file", &h.source_file)?;
        m.serialize_entry("sheet", &h.sheet)?;
        m.serialize_entry("row", &line.number)?;
        m.serialize_entry("cells", &Cells(h, &line.cells.list()))?;
        for &i in &h.json_order {
            let (Some(name), Some(value)) = (h.results.get(i), line.results.get(i)) else {
                continue;
            };
            match value {
                Value::None => {}
                Value::Text(t) => m.serialize_entry(name, t)?,
                Value::Number(n) => m.serialize_entry(name, n)?,
                Value::Errors(items) => m.serialize_entry(name, items)?,
            }
        }
        m.end()
    }
}

impl TextFormat for Jsonl {
    fn line(&self, out: &mut Vec<u8>, line: &Line<'_>) -> io::Result<()> {
        let object = Object {
            header: &self.header,
            line,
        };
        serde_json::to_writer(&mut *out, &object)?;
        out.push(b'\n');
        Ok(())
    }
}
