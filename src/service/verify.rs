//! `verify`'s checks, for any face: a report against its run facts and
//! input (see [`audit`]), and against the ledger: every ACCEPTED or
//! SKIPPED row's order recorded as accepted, the report as the ledger
//! recorded its run, the ledger's chain of runs, and people's decisions.

use std::path::{Path, PathBuf};

use crate::error::Result;
use crate::report::audit::{self, Audit};
use crate::submit::ledger;

/// The report at `report` checked: against its run facts (`facts`, else
/// beside it), its input, and the ledger (`ledger`, else the one the run
/// facts name).
pub fn verify(report: &Path, facts: Option<&Path>, ledger: Option<PathBuf>) -> Result<Audit> {
    let mut audit = audit::audit(report, facts)?;
    ledger_check(&mut audit, ledger, report);
    Ok(audit)
}

/// Every ACCEPTED or SKIPPED row's order (or item) recorded as accepted in
/// the ledger, for a run that sent; then the report against what the
/// ledger recorded of its run, and the ledger's chain of runs.
fn ledger_check(audit: &mut Audit, ledger: Option<PathBuf>, report: &std::path::Path) {
    const CHECK: &str = "accepted in the ledger";
    let kind = match audit.facts["command"].as_str() {
        Some("submit" | "desk") => "order",
        Some("cancel") => "cancel",
        Some("upgrade") => "upgrade",
        _ => return,
    };
    let Some(mut path) =
        ledger.or_else(|| audit.facts["api"]["ledger"].as_str().map(PathBuf::from))
    else {
        return;
    };
    // A database named without its schema: the run's destination's.
    let named = path.to_string_lossy().into_owned();
    if crate::db::PgTarget::is_url(&named) && !named.contains('#') {
        let api = &audit.facts["api"];
        let dest = crate::submit::Destination::new(
            api["tenant"].as_str().unwrap_or_default(),
            api["base_url"].as_str().unwrap_or_default(),
        );
        path = PathBuf::from(format!("{named}#{}", dest.schema()));
    }
    if !ledger::at_hand(&path) {
        let detail = format!(
            "{} is not at hand: not checked (nor the report's SHA-256, counts, rows, statuses and \
             product lines against the run the ledger recorded, nor its chain of runs); \
             pass --ledger FILE (or the ledger database's URL)",
            path.display()
        );
        audit.say(CHECK, None, detail);
        return;
    }
    let keys = audit.done.iter().map(|(_, k)| k.as_str());
    match ledger::accepted_among(&path, kind, keys) {
        Ok(accepted) => {
            let missing: Vec<String> = audit
                .done
                .iter()
                .filter(|(_, k)| !accepted.contains(k))
                .map(|(row, k)| format!("row {row} ({k})"))
                .collect();
            let detail = if missing.is_empty() {
                format!(
                    "the {} accepted or skipped rows' {kind}s, each recorded as accepted in {}",
                    audit.done.len(),
                    path.display()
                )
            } else {
                let shown: Vec<&str> = missing.iter().take(10).map(String::as_str).collect();
                format!(
                    "{} say their {kind} was accepted, the ledger does not: {}{}",
                    crate::quote::count(missing.len() as u64, "row"),
                    shown.join(", "),
                    if missing.len() > 10 { ", ..." } else { "" }
                )
            };
            audit.say(CHECK, Some(missing.is_empty()), detail);
        }
        Err(e) => audit.say(CHECK, Some(false), e.to_string()),
    }
    decisions_check(audit, &path, kind);
    run_check(audit, &path, report);
    chain_check(audit, &path);
    four_eyes_check(audit, &path);
}

/// A run sent under four eyes: its approval, in the access database beside
/// the ledger, given by a checker who neither made nor changed the sheet,
/// and used for this run; and the audit trail's chain.
fn four_eyes_check(audit: &mut Audit, ledger: &Path) {
    const CHECK: &str = "approved by a second person";
    let approval = audit.facts["options"]["approval"].clone();
    if approval.is_null() {
        return;
    }
    // The access database is beside the ledger: in its folder, or in the
    // same database.
    let named = ledger.to_string_lossy().into_owned();
    let store = match named.split_once('#') {
        Some((url, _)) if crate::db::PgTarget::is_url(url) => {
            match crate::db::PgTarget::parse_with_env(url) {
                Ok(t) => crate::submit::ledger::Store::Server(t),
                Err(e) => return audit.say(CHECK, Some(false), e),
            }
        }
        _ => {
            let dir = ledger.parent().unwrap_or(Path::new("."));
            if !dir.join("access.sqlite").is_file() {
                let detail = format!(
                    "the run names approval {}; the access database is not at hand in {}: not checked",
                    approval["id"],
                    dir.display()
                );
                audit.say(CHECK, None, detail);
                return;
            }
            crate::submit::ledger::Store::Dir(dir.to_owned())
        }
    };
    let access = match crate::access::Access::open_in(&store) {
        Ok(a) => a,
        Err(e) => return audit.say(CHECK, Some(false), e.to_string()),
    };
    let found = approval["id"]
        .as_i64()
        .map(|id| access.approval(id))
        .transpose();
    let (ok, detail) = match found {
        Ok(Some(Some(a))) => {
            let wrong = approval_problems(&a, &approval);
            let checker = a.checker.clone().unwrap_or_default();
            if wrong.is_empty() {
                (
                    true,
                    format!(
                        "approval #{} of {}: asked by {} at {}, approved by {} at {}",
                        a.id,
                        a.sheet,
                        a.maker,
                        a.asked_at,
                        checker,
                        a.decided_at.as_deref().unwrap_or("?")
                    ),
                )
            } else {
                (false, format!("approval #{}: {}", a.id, wrong.join("; ")))
            }
        }
        Ok(_) => (
            false,
            format!(
                "the run names approval {}, which the access database does not hold",
                approval["id"]
            ),
        ),
        Err(e) => (false, e.to_string()),
    };
    audit.say(CHECK, Some(ok), detail);
    trail_check(audit, &access);
}

/// The audit trail's records, each chained to the one before.
fn trail_check(audit: &mut Audit, access: &crate::access::Access) {
    const TRAIL: &str = "the audit trail's chain";
    match access.check_trail() {
        Ok(problems) if problems.is_empty() => audit.say(
            TRAIL,
            Some(true),
            "every record chained to the one before: none changed or removed".into(),
        ),
        Ok(problems) => {
            let said: Vec<String> = problems
                .iter()
                .take(10)
                .map(|p| format!("record #{}: {}", p.seq, p.problem))
                .collect();
            audit.say(TRAIL, Some(false), said.join("; "));
        }
        Err(e) => audit.say(TRAIL, Some(false), e.to_string()),
    }
}

/// What is wrong with approval `a` as the run facts name it (`named`).
fn approval_problems(a: &crate::access::Approval, named: &serde_json::Value) -> Vec<String> {
    let checker = a.checker.clone().unwrap_or_default();
    let mut wrong = Vec::new();
    if a.state != crate::access::ApprovalState::Sent {
        wrong.push(format!("it is {}, not sent", a.state.as_str()));
    }
    if checker.is_empty() || !a.may_decide(&checker) {
        wrong.push(format!("its checker `{checker}` made or changed the sheet"));
    }
    if named["checker"].as_str() != Some(checker.as_str())
        || named["maker"].as_str() != Some(a.maker.as_str())
    {
        wrong.push("the run facts name another maker or checker".into());
    }
    wrong
}

/// The report against what the ledger recorded of its run: the report's
/// SHA-256, the counts, and every row both ways (missing, added, another
/// status or order id, another product line).
fn run_check(audit: &mut Audit, path: &std::path::Path, report: &std::path::Path) {
    const CHECK: &str = "the run in the ledger";
    let Some(run) = audit.facts["api"]["ledger_run"].as_i64() else {
        audit.say(
            CHECK,
            Some(false),
            "the run facts name no ledger run".into(),
        );
        return;
    };
    let recorded = match ledger::run_ledger(path, run) {
        Ok(Some(r)) => r,
        Ok(None) => {
            return audit.say(
                CHECK,
                Some(false),
                format!(
                    "{} has no run {run}: the ledger never wrote this report",
                    path.display()
                ),
            );
        }
        Err(e) => return audit.say(CHECK, Some(false), e.to_string()),
    };
    if !recorded.chained {
        return audit.say(
            CHECK,
            None,
            format!(
                "run {run} left no row records (it never ended, or an earlier version ran it): \
                 its rows are not checked against the ledger"
            ),
        );
    }
    let rows = match audit::report_rows(report, &recorded.line_columns) {
        Ok(rows) => rows,
        Err(e) => return audit.say(CHECK, Some(false), e.to_string()),
    };
    let mut wrong = whole_run(audit, report, &recorded, run);
    let rows_wrong = rows_unlike(&rows, &recorded);
    let n = rows_wrong.len();
    wrong.extend(rows_wrong.into_iter().take(10));
    if n > 10 {
        wrong.push(format!("… and {} more rows", n - 10));
    }
    if wrong.is_empty() {
        audit.say(
            CHECK,
            Some(true),
            format!(
                "run {run}: the report's SHA-256, the counts and the {} rows (status, order, product line) as the ledger recorded them",
                recorded.rows.len()
            ),
        );
    } else {
        audit.say(CHECK, Some(false), wrong.join("; "));
    }
}

/// Where the report as a whole is not what the ledger recorded of run
/// `run`: its SHA-256, its run facts' counts.
fn whole_run(
    audit: &Audit,
    report: &std::path::Path,
    recorded: &ledger::RunLedger,
    run: i64,
) -> Vec<String> {
    let mut wrong = Vec::new();
    match audit::sha256_of(report) {
        Ok(sha) if Some(&sha) == recorded.report_sha256.as_ref() => {}
        Ok(sha) => wrong.push(format!(
            "the report's SHA-256 is {sha}, the ledger recorded {} for run {run}: the ledger never wrote this report",
            recorded.report_sha256.as_deref().unwrap_or("none")
        )),
        Err(e) => wrong.push(e.to_string()),
    }
    let facts_counts = serde_json::json!({
        "counts": audit.facts["counts"],
        "sent": audit.facts["sent"],
    });
    if recorded.counts.as_ref() != Some(&facts_counts) {
        wrong.push(format!(
            "the run facts count {}, the ledger recorded {}",
            short_counts(&facts_counts),
            recorded
                .counts
                .as_ref()
                .map_or("nothing".into(), short_counts)
        ));
    }
    wrong
}

/// Where the report's rows are not the ones the ledger recorded.
fn rows_unlike(rows: &[audit::ReportRow], recorded: &ledger::RunLedger) -> Vec<String> {
    let mut rows_wrong = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for r in rows {
        seen.insert(r.row);
        match recorded.rows.get(&r.row) {
            None => rows_wrong.push(format!(
                "row {} is not in the ledger's record of the run",
                r.row
            )),
            Some(l) if l.status != r.status => rows_wrong.push(format!(
                "row {} is {} in the report, {} in the ledger",
                r.row, r.status, l.status
            )),
            Some(l) if l.key != r.key => rows_wrong.push(format!(
                "row {}'s order is {} in the report, {} in the ledger",
                r.row, r.key, l.key
            )),
            Some(l) if l.line != r.line => rows_wrong.push(format!(
                "row {}'s product line ({}) is not the one the ledger recorded",
                r.row,
                recorded.line_columns.join(", ")
            )),
            Some(_) => {}
        }
    }
    for (row, l) in &recorded.rows {
        if !seen.contains(row) {
            rows_wrong.push(format!(
                "row {row} ({} {}) is in the ledger, not in the report",
                l.status, l.key
            ));
        }
    }
    rows_wrong
}

/// Counts in short: `rows 10, valid 9, accepted 9`.
fn short_counts(v: &serde_json::Value) -> String {
    let mut parts = Vec::new();
    for part in ["counts", "sent"] {
        if let Some(o) = v[part].as_object() {
            for (k, n) in o {
                if n.as_u64().is_some_and(|n| n > 0) && !k.starts_with("orders_") {
                    parts.push(format!("{k} {n}"));
                }
            }
        }
    }
    parts.join(", ")
}

/// The ledger's runs, each chained to the one before: none deleted or
/// changed since.
fn chain_check(audit: &mut Audit, path: &std::path::Path) {
    const CHECK: &str = "the ledger's chain of runs";
    match ledger::check_chain(path) {
        Ok((n, broken)) if broken.is_empty() => audit.say(
            CHECK,
            Some(true),
            format!(
                "{}, each chained to the one before: none deleted or changed",
                crate::quote::count(n, "ended run")
            ),
        ),
        Ok((_, broken)) => audit.say(CHECK, Some(false), broken.join("; ")),
        Err(e) => audit.say(CHECK, Some(false), e.to_string()),
    }
}

/// Every ACCEPTED_BY_DECISION row's order has a person's decision in the
/// ledger: who, where, when and why, said.
fn decisions_check(audit: &mut Audit, path: &std::path::Path, kind: &str) {
    const CHECK: &str = "decided by a person";
    if audit.decided.is_empty() {
        return;
    }
    let keys = audit.decided.iter().map(|(_, k)| k.as_str());
    match ledger::decisions_among(path, kind, keys) {
        Ok(found) => {
            let mut said = Vec::new();
            let mut missing = Vec::new();
            for (row, key) in &audit.decided {
                match found
                    .get(key)
                    .and_then(|d| d.iter().rev().find(|d| d.decision == "sent"))
                {
                    Some(d) => said.push(format!(
                        "row {row} ({key}): decided sent by {} on {} at {}: {}",
                        d.by, d.host, d.at, d.reason
                    )),
                    None => missing.push(format!("row {row} ({key})")),
                }
            }
            if missing.is_empty() {
                audit.say(CHECK, Some(true), said.join("; "));
            } else {
                audit.say(
                    CHECK,
                    Some(false),
                    format!(
                        "reported ACCEPTED_BY_DECISION, no decision in the ledger: {}",
                        missing.join(", ")
                    ),
                );
            }
        }
        Err(e) => audit.say(CHECK, Some(false), e.to_string()),
    }
}
