//! The number formats of an XLSX sheet that pad a number with zeros: a
//! cell holding the number 456 formatted `00000` shows `00456`, and is read
//! as it shows. calamine gives the numbers, not their formats, so the
//! workbook's styles and the sheet's cells are looked at here: the styles
//! first (small), and the sheet only when a style pads.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;

use quick_xml::events::{BytesStart, Event};

/// The cells of `sheet` (0-based row, column) whose format pads numbers
/// with zeros, and to how many digits. Empty when none does, or when the
/// parts cannot be read (calamine then says what is wrong).
pub(super) fn zero_padded(path: &Path, sheet: &str) -> HashMap<(u32, u32), usize> {
    zero_padded_or(path, sheet).unwrap_or_default()
}

fn zero_padded_or(path: &Path, sheet: &str) -> Option<HashMap<(u32, u32), usize>> {
    let file = std::fs::File::open(path).ok()?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).ok()?;
    let widths = padding_styles(&small_part(&mut zip, "xl/styles.xml")?);
    if widths.is_empty() {
        return Some(HashMap::new());
    }
    let part = sheet_part(&mut zip, sheet)?;
    let mut xml = quick_xml::Reader::from_reader(BufReader::new(zip.by_name(&part).ok()?));
    let mut cells = HashMap::new();
    let mut buf = Vec::new();
    loop {
        match xml.read_event_into(&mut buf).ok()? {
            Event::Start(e) | Event::Empty(e) if e.local_name().as_ref() == "c" => {
                let style = attr(&e, "s").and_then(|s| s.parse::<usize>().ok());
                let numeric = attr(&e, "t").is_none_or(|t| t == "n");
                if let (Some(w), true) = (style.and_then(|s| widths.get(&s)), numeric)
                    && let Some(at) = attr(&e, "r").and_then(|r| position(&r))
                {
                    cells.insert(at, *w);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    Some(cells)
}

/// A part of at most 16 MiB, as text.
fn small_part(zip: &mut zip::ZipArchive<BufReader<std::fs::File>>, name: &str) -> Option<String> {
    let mut text = String::new();
    zip.by_name(name)
        .ok()?
        .take(16 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// The cell styles (indexes into `cellXfs`) whose number format is all
/// zeros (`00000`), with its width.
fn padding_styles(styles: &str) -> HashMap<usize, usize> {
    let mut xml = quick_xml::Reader::from_str(styles);
    let mut codes: HashMap<u32, usize> = HashMap::new();
    let mut widths = HashMap::new();
    let (mut in_cell_xfs, mut xf) = (false, 0usize);
    loop {
        match xml.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                "numFmt" => {
                    let id = attr(&e, "numFmtId").and_then(|i| i.parse().ok());
                    let code = attr(&e, "formatCode").unwrap_or_default();
                    if let Some(id) = id
                        && code.len() >= 2
                        && code.bytes().all(|b| b == b'0')
                    {
                        codes.insert(id, code.len());
                    }
                }
                "cellXfs" => in_cell_xfs = true,
                "xf" if in_cell_xfs => {
                    let id = attr(&e, "numFmtId").and_then(|i| i.parse::<u32>().ok());
                    if let Some(w) = id.and_then(|id| codes.get(&id)) {
                        widths.insert(xf, *w);
                    }
                    xf += 1;
                }
                _ => {}
            },
            Ok(Event::End(e)) if e.local_name().as_ref() == "cellXfs" => in_cell_xfs = false,
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    widths
}

/// The part holding the sheet named `sheet`: from the workbook's sheet
/// list and its relationships.
fn sheet_part(zip: &mut zip::ZipArchive<BufReader<std::fs::File>>, sheet: &str) -> Option<String> {
    let workbook = small_part(zip, "xl/workbook.xml")?;
    let mut xml = quick_xml::Reader::from_str(&workbook);
    let mut id = None;
    loop {
        match xml.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e))
                if e.local_name().as_ref() == "sheet"
                    && attr(&e, "name").as_deref() == Some(sheet) =>
            {
                id = attr(&e, "r:id");
                break;
            }
            Ok(Event::Eof) | Err(_) => break,
            _ => {}
        }
    }
    let id = id?;
    let rels = small_part(zip, "xl/_rels/workbook.xml.rels")?;
    let mut xml = quick_xml::Reader::from_str(&rels);
    loop {
        match xml.read_event() {
            Ok(Event::Start(e)) | Ok(Event::Empty(e))
                if e.local_name().as_ref() == "Relationship"
                    && attr(&e, "Id").as_deref() == Some(id.as_str()) =>
            {
                let target = attr(&e, "Target")?;
                return Some(match target.strip_prefix('/') {
                    Some(absolute) => absolute.to_string(),
                    None => format!("xl/{target}"),
                });
            }
            Ok(Event::Eof) | Err(_) => return None,
            _ => {}
        }
    }
}

/// An attribute's value, unescaped.
fn attr(e: &BytesStart<'_>, name: &str) -> Option<String> {
    let a = e.try_get_attribute(name).ok().flatten()?;
    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
        .ok()
        .map(|v| v.into_owned())
}

/// `D5` → (4, 3).
fn position(r: &str) -> Option<(u32, u32)> {
    let letters = r.bytes().take_while(u8::is_ascii_alphabetic).count();
    let (col, row) = r.split_at(letters);
    let mut c = 0u32;
    for b in col.bytes() {
        c = c
            .checked_mul(26)?
            .checked_add(u32::from(b.to_ascii_uppercase() - b'A') + 1)?;
    }
    let row: u32 = row.parse().ok()?;
    Some((row.checked_sub(1)?, c.checked_sub(1)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_and_padding_styles_are_read() {
        assert_eq!(position("A1"), Some((0, 0)));
        assert_eq!(position("D5"), Some((4, 3)));
        assert_eq!(position("AA10"), Some((9, 26)));
        let styles = r##"<styleSheet><numFmts count="2"><numFmt numFmtId="164" formatCode="00000"/><numFmt numFmtId="165" formatCode="#,##0"/></numFmts>
            <cellStyleXfs count="1"><xf numFmtId="164"/></cellStyleXfs>
            <cellXfs count="3"><xf numFmtId="0"/><xf numFmtId="165"/><xf numFmtId="164"/></cellXfs></styleSheet>"##;
        assert_eq!(padding_styles(styles), HashMap::from([(2, 5)]));
    }
}
