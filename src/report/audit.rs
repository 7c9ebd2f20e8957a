//! What `dcms-bulk verify` checks of a report and its run facts, weeks
//! later: the report is the one the run wrote (its SHA-256), the input is
//! the one it read (when at hand), every row is in it once, and its
//! statuses add up to the run facts' counts. The ledger's part (every
//! ACCEPTED row's order recorded as accepted) is the caller's: this stage
//! reads reports, not ledgers.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Format, facts_path};
use crate::error::{Error, Result};

/// One check and how it came out.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub check: &'static str,
    /// `None`: it could not be made (the input is not at hand).
    pub ok: Option<bool>,
    pub detail: String,
}

/// A report looked over: the findings, the run facts, and the rows whose
/// order (or item) the run took as done, for the ledger's check.
#[derive(Debug)]
pub struct Audit {
    pub findings: Vec<Finding>,
    pub facts: Value,
    /// `(row, order id or kit number)` of each ACCEPTED or SKIPPED row.
    pub done: Vec<(u64, String)>,
    /// `(row, order id)` of each ACCEPTED_BY_DECISION row.
    pub decided: Vec<(u64, String)>,
}

impl Audit {
    pub fn all_hold(&self) -> bool {
        self.findings.iter().all(|f| f.ok != Some(false))
    }

    pub fn say(&mut self, check: &'static str, ok: Option<bool>, detail: String) {
        self.findings.push(Finding { check, ok, detail });
    }
}

/// Looks over the report at `report` with the run facts at `facts`
/// [default: beside it].
pub fn audit(report: &Path, facts: Option<&Path>) -> Result<Audit> {
    let facts_at = facts.map_or_else(|| facts_path(report), Path::to_path_buf);
    let text =
        crate::files::read_small(&facts_at, 16 << 20).map_err(|e| Error::io(&facts_at, e))?;
    let facts: Value = serde_json::from_str(&text)
        .map_err(|e| Error::input(&facts_at, format!("not run facts ({e})")))?;
    let mut audit = Audit {
        findings: Vec::new(),
        facts,
        done: Vec::new(),
        decided: Vec::new(),
    };
    if audit.facts["report"].is_null() {
        let why = audit.facts["error"]
            .as_str()
            .unwrap_or("no report recorded");
        audit.say(
            "report",
            Some(false),
            format!("the run facts record no report: {why}"),
        );
        return Ok(audit);
    }

    let recorded = audit.facts["report"]["sha256"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let sha = sha256_of(report)?;
    audit.say(
        "report SHA-256",
        Some(sha == recorded),
        if sha == recorded {
            format!("{sha}, as the run facts record")
        } else {
            format!("{sha}, the run facts record {recorded}: the report was changed after the run")
        },
    );

    input_check(&mut audit, report);
    rows_check(&mut audit, report)?;
    Ok(audit)
}

/// The input's SHA-256, if the input is at hand: at its recorded path (as
/// given, then absolute), or beside the report (a done folder).
fn input_check(audit: &mut Audit, report: &Path) {
    let input = &audit.facts["input"];
    let recorded = input["sha256"].as_str().unwrap_or_default().to_owned();
    let path = PathBuf::from(input["path"].as_str().unwrap_or_default());
    let mut candidates = vec![path.clone()];
    if let Some(abs) = input["absolute_path"].as_str() {
        candidates.push(PathBuf::from(abs));
    }
    if let (Some(name), Some(dir)) = (path.file_name(), report.parent()) {
        candidates.push(dir.join(name));
    }
    let Some(found) = candidates.into_iter().find(|p| p.is_file()) else {
        audit.say(
            "input SHA-256",
            None,
            format!("{} is not at hand: not checked", path.display()),
        );
        return;
    };
    match sha256_of(&found) {
        Ok(sha) if sha == recorded => audit.say(
            "input SHA-256",
            Some(true),
            format!("{}: {sha}, as the run facts record", found.display()),
        ),
        Ok(sha) => audit.say(
            "input SHA-256",
            Some(false),
            format!(
                "{}: {sha}, the run facts record {recorded}: this is not the file the run read",
                found.display()
            ),
        ),
        Err(e) => audit.say("input SHA-256", Some(false), e.to_string()),
    }
}

/// Every row once, and the statuses adding up to the run facts' counts.
fn rows_check(audit: &mut Audit, report: &Path) -> Result<()> {
    let mut seen: Vec<bool> = Vec::new();
    let mut twice = Vec::new();
    let mut by_status: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = 0u64;
    let mut done = Vec::new();
    let mut decided = Vec::new();
    for_each_row(report, &[], &mut |r| {
        let ReportRow {
            row, status, key, ..
        } = r;
        let (status, key) = (status.as_str(), key.as_str());
        rows += 1;
        let at = row as usize;
        if seen.len() <= at {
            seen.resize(at + 1, false);
        }
        if std::mem::replace(&mut seen[at], true) && twice.len() < 10 {
            twice.push(row);
        }
        *by_status.entry(status.to_owned()).or_default() += 1;
        if status == "ACCEPTED" || status == "SKIPPED" {
            done.push((row, key.to_owned()));
        } else if status == "ACCEPTED_BY_DECISION" {
            decided.push((row, key.to_owned()));
        }
    })?;
    audit.done = done;
    audit.decided = decided;
    let counts = audit.facts["counts"].clone();
    let want = counts["rows"].as_u64().unwrap_or(0);
    audit.say(
        "every row once",
        Some(rows == want && twice.is_empty()),
        if !twice.is_empty() {
            format!("rows appearing more than once: {twice:?}")
        } else if rows != want {
            format!(
                "{rows} rows in the report, the run facts count {want}: rows were removed or added"
            )
        } else {
            format!("{rows} rows, each once")
        },
    );
    statuses_check(audit, by_status);
    Ok(())
}

/// The report's statuses against the run facts' counts, and the sent
/// counts against the valid rows.
fn statuses_check(audit: &mut Audit, mut by_status: BTreeMap<String, u64>) {
    let counts = audit.facts["counts"].clone();
    let sent = audit.facts["sent"].clone();
    let mut expected: Vec<(&str, u64)> = vec![
        ("INVALID", counts["invalid"].as_u64().unwrap_or(0)),
        ("HELD", counts["held"].as_u64().unwrap_or(0)),
    ];
    if sent.is_object() {
        for (status, key) in [
            ("ACCEPTED", "accepted"),
            ("REJECTED", "rejected"),
            ("FAILED", "failed"),
            ("SKIPPED", "skipped"),
            ("CONFLICT", "conflict"),
            ("ACCEPTED_BY_DECISION", "decided"),
        ] {
            expected.push((status, sent[key].as_u64().unwrap_or(0)));
        }
        let split: u64 = expected[2..].iter().map(|(_, n)| n).sum();
        let valid = counts["valid"].as_u64().unwrap_or(0);
        audit.say(
            "counts add up",
            Some(split == valid),
            format!(
                "{valid} valid rows, {split} accepted + rejected + failed + skipped + conflict + decided"
            ),
        );
    } else {
        expected.push(("VALID", counts["valid"].as_u64().unwrap_or(0)));
    }
    let mut wrong = Vec::new();
    for (status, want) in &expected {
        let got = by_status.remove(*status).unwrap_or(0);
        if got != *want {
            wrong.push(format!(
                "{status}: {got} in the report, {want} in the run facts"
            ));
        }
    }
    for (status, got) in by_status {
        wrong.push(format!(
            "{status}: {got} in the report, a status the run facts do not count"
        ));
    }
    audit.say(
        "statuses match the counts",
        Some(wrong.is_empty()),
        if wrong.is_empty() {
            "every status as counted".into()
        } else {
            wrong.join("; ")
        },
    );
}

/// One line of a report, as `verify` reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportRow {
    pub row: u64,
    pub status: String,
    /// The order id (or the cancelled order's, or the kit number); may be
    /// empty.
    pub key: String,
    /// The fingerprint of its product line, from the cells of the columns
    /// asked for (empty for an INVALID row, or when none are asked for).
    pub line: String,
}

/// Every line of a report (CSV, JSONL or XLSX), in its order; `line_columns`
/// name the input columns of a product line (see
/// [`super::line_fingerprint`]).
pub fn report_rows(report: &Path, line_columns: &[String]) -> Result<Vec<ReportRow>> {
    let mut out = Vec::new();
    for_each_row(report, line_columns, &mut |r| out.push(r))?;
    Ok(out)
}

/// The fingerprint of a row's product line from its cells, by column;
/// empty for an INVALID row or without columns.
fn line_of(status: &str, line_columns: &[String], cell: impl Fn(&str) -> String) -> String {
    if status == "INVALID" || line_columns.is_empty() {
        return String::new();
    }
    let cells: Vec<String> = line_columns.iter().map(|c| cell(c)).collect();
    super::line_fingerprint(cells.iter().map(String::as_str))
}

/// Calls `each` for every line of a report (CSV, JSONL or XLSX).
fn for_each_row(
    report: &Path,
    line_columns: &[String],
    each: &mut dyn FnMut(ReportRow),
) -> Result<()> {
    let (format, headers) = super::read::for_each(report, &mut |entry| {
        let text = |t: Option<std::borrow::Cow<'_, str>>| t.unwrap_or_default().into_owned();
        let status = text(entry.field("status"));
        let line = line_of(&status, line_columns, |name| text(entry.cell(name)));
        each(ReportRow {
            row: entry.row(),
            key: text(entry.field("order_id").or_else(|| entry.field("kit_no"))),
            status,
            line,
        });
        Ok(())
    })?;
    let has = |name: &str| headers.iter().any(|h| h == name);
    if format != Format::Jsonl && !(has("row") && has("status")) {
        return Err(Error::input(
            report,
            "not a dcms-bulk report (no row and status columns)",
        ));
    }
    Ok(())
}

/// A file's SHA-256, hex.
pub fn sha256_of(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hash = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
    }
    Ok(hex::encode(hash.finalize()))
}
