//! What the desk gives to take away: the sheet as corrected, the rows the
//! branch must fix, the report of the sheet as it is, and the report of
//! its run.

use std::path::Path;

use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::guard::refused;
use super::{Shared, lock, sheets};

/// A file for the branch or the record: the sheet as it is now
/// (`corrected`), its rows to fix (`to-fix`), or its report
/// (`report.xlsx`, `report.csv`).
pub(super) async fn download(
    State(desk): State<Shared>,
    UrlPath((id, what)): UrlPath<(u64, String)>,
) -> Response {
    let dropped = match sheets::found(&desk, id).await {
        Ok(d) => d,
        Err(refusal) => return refusal,
    };
    let dir = desk.work.path().join(format!("{id}-out"));
    let made = tokio::task::spawn_blocking(move || made(&lock(&dropped), &what, &dir)).await;
    match made {
        Ok(Ok((name, bytes))) => given(&name, bytes),
        Ok(Err(why)) if why == "no such download" => {
            refused(StatusCode::NOT_FOUND, "No such download.")
        }
        Ok(Err(why)) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("The file could not be made: {why}"),
        ),
        Err(_) => refused(
            StatusCode::INTERNAL_SERVER_ERROR,
            "The file could not be made.",
        ),
    }
}

/// The file at `path` to take away, under its own name.
pub(super) fn attachment(path: &Path) -> Response {
    match std::fs::read(path) {
        Ok(bytes) => {
            let name = path
                .file_name()
                .map_or("report".into(), |n| n.to_string_lossy().into_owned());
            given(&name, bytes)
        }
        Err(_) => refused(
            StatusCode::NOT_FOUND,
            "The file is no longer where it was written.",
        ),
    }
}

/// `bytes` to take away as a file called `name`.
fn given(name: &str, bytes: Vec<u8>) -> Response {
    let kind = match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("csv") => "text/csv; charset=utf-8",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    };
    let disposition = format!(
        "attachment; filename=\"{}\"",
        name.replace(['"', '\\'], "_")
    );
    (
        [
            (header::CONTENT_TYPE, kind.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        bytes,
    )
        .into_response()
}

/// Makes the file `what` of sheet `d` in `dir`: its name and bytes.
fn made(d: &super::Dropped, what: &str, dir: &Path) -> Result<(String, Vec<u8>), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    let stem = Path::new(&d.name)
        .file_stem()
        .map_or("sheet".into(), |s| s.to_string_lossy().into_owned());
    let ext = if d.job.is_workbook() { "xlsx" } else { "csv" };
    let name = match what {
        "corrected" => format!("{stem}.corrected.{ext}"),
        "to-fix" => format!("{stem}.to-fix.{ext}"),
        "report.xlsx" => format!("{stem}.report.xlsx"),
        "sent-report" => {
            let sent = d.run.as_ref().and_then(|r| r.now().report);
            let Some(sent) = sent else {
                return Err("no such download".into());
            };
            let bytes = std::fs::read(&sent).map_err(|e| e.to_string())?;
            let name = sent
                .file_name()
                .map_or("report".into(), |n| n.to_string_lossy().into_owned());
            return Ok((name, bytes));
        }
        "report.csv" => format!("{stem}.report.csv"),
        _ => return Err("no such download".into()),
    };
    let path = dir.join(&name);
    let written = match what {
        "corrected" => d.job.export(crate::job::Rows::All, &path),
        "to-fix" => d.job.export(crate::job::Rows::ToFix, &path),
        _ => crate::report::Target::at(&path).and_then(|target| {
            let mut facts =
                d.job
                    .checked()
                    .facts("desk", serde_json::json!({}), crate::report::now());
            d.job.report(&target, false, &mut facts).map(|_| ())
        }),
    };
    written.map_err(|e| e.to_string())?;
    let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
    Ok((name, bytes))
}
