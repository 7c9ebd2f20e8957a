//! The sheets on the desk. The access database holds each sheet as it was
//! dropped and its saves (see [`crate::access::DeskSheet`]), so every desk
//! in front of one database shows the same sheets at the same version; a
//! desk keeps the sheets it has opened in memory, checked, and opens one
//! again when another desk has changed it since.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::http::StatusCode;
use axum::response::Response;

use super::guard::refused;
use super::{Desk, MAX_SHEETS, Shared, lock, send};
use crate::access::DeskSheet;
use crate::error::{Error, Result};
use crate::job::{Edit, Job};

/// A sheet open on this desk.
pub(super) struct Dropped {
    /// Its name as it was dropped.
    pub name: String,
    /// The SHA-256 of the file as it came.
    pub sha256: String,
    /// Shared with its run while it is sent (it cannot change then).
    pub job: Arc<Job>,
    /// Its run from this desk, once it was sent from here.
    pub run: Option<Arc<send::Run>>,
    /// Who dropped it and who changed it: none of them may approve it.
    pub editors: BTreeSet<String>,
    /// The version of the sheet in the database this job is.
    pub revision: i64,
    /// The folder it is kept in, with its runs' reports.
    pub dir: PathBuf,
    /// The desk (its host) sending it, where that is another desk.
    pub sending_elsewhere: Option<String>,
}

/// The sheets this desk has open, by id.
pub(super) type Open = Mutex<BTreeMap<u64, Arc<Mutex<Dropped>>>>;

impl Dropped {
    /// Whether a run of it from this desk is going on.
    pub fn sending_here(&self) -> bool {
        self.run.as_ref().is_some_and(|r| !r.now().finished)
    }
}

impl Desk {
    /// What an approval of sheet `id` is asked for (the sheet, whatever
    /// its version: the approval binds the version by its fingerprints).
    pub(super) fn subject(&self, id: u64) -> String {
        format!("desk sheet {id}")
    }

    /// The sheet that approval `subject` was asked for.
    pub(super) fn id_asked(subject: &str) -> Option<u64> {
        subject.strip_prefix("desk sheet ")?.parse().ok()
    }

    /// The folder where sheet `sheet` and its runs' reports are kept: the
    /// same name on every desk.
    fn kept(&self, sheet: &DeskSheet) -> PathBuf {
        self.opts.keep.join(format!(
            "{}-{}",
            crate::clock::in_name(&sheet.dropped_at),
            sheet.id
        ))
    }

    /// The host this desk tells other desks it is.
    pub(super) fn host(&self) -> String {
        self.opts
            .sending
            .as_ref()
            .and_then(|s| s.api.host_id.clone())
            .or_else(crate::host::name)
            .unwrap_or_else(|| "a desk".into())
    }

    /// The open sheets, as the database lists them.
    pub(super) fn sheets_open(&self) -> Result<Vec<DeskSheet>> {
        lock(&self.access).sheets_open().map_err(Error::from)
    }

    /// This desk's copy of sheet `id` dropped (closed, or changed by
    /// another desk): the next look opens it again.
    pub(super) fn forget(&self, id: u64) {
        lock(&self.sheets).remove(&id);
    }
}

/// Sheet `id` as the database has it now: this desk's copy, opened again
/// if another desk changed it since. `Ok(None)`: there is no such open
/// sheet.
pub(super) async fn sheet(
    desk: &Shared,
    id: u64,
) -> std::result::Result<Option<Arc<Mutex<Dropped>>>, Response> {
    let failed =
        |e: &dyn std::fmt::Display| refused(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string());
    let found = lock(&desk.access).sheet(id as i64);
    let record = match found {
        Ok(Some(r)) => r,
        Ok(None) => {
            desk.forget(id);
            return Ok(None);
        }
        Err(e) => return Err(failed(&e)),
    };
    let held = lock(&desk.sheets).get(&id).cloned();
    if let Some(held) = held {
        let mut d = lock(&held);
        if d.revision == record.revision || d.sending_here() {
            d.sending_elsewhere = record.sending_by.filter(|_| !d.sending_here());
            drop(d);
            return Ok(Some(held));
        }
    }
    let at = desk.clone();
    let opened = tokio::task::spawn_blocking(move || open(&at, &record)).await;
    match opened {
        Ok(Ok(dropped)) => {
            let dropped = Arc::new(Mutex::new(dropped));
            let mut sheets = lock(&desk.sheets);
            sheets.insert(id, dropped.clone());
            put_away(&mut sheets, id);
            Ok(Some(dropped))
        }
        Ok(Err(e)) => Err(failed(&e)),
        Err(_) => Err(failed(&"the sheet could not be opened")),
    }
}

/// Sheet `record` opened from the database: its file kept on this
/// machine as it came, checked, and its saves laid over it.
fn open(desk: &Desk, record: &DeskSheet) -> Result<Dropped> {
    let (content, saves, editors) = lock(&desk.access).sheet_content(record.id)?;
    let dir = desk.kept(record);
    let path = dir.join(&record.name);
    let same = crate::files::sha256_file(&path).is_ok_and(|(s, _)| s == record.sha256);
    if !same {
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::write(&path, &content))
            .map_err(|e| Error::io(&path, e))?;
    }
    drop(content);
    let mut job = Job::open_to_edit(&path, desk.opts.check.clone())?;
    let saves = saves
        .iter()
        .map(|s| serde_json::from_str::<Vec<Edit>>(s))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Internal(format!("a save of sheet {}: {e}", record.id)))?;
    job.restore(&saves, record.can_undo)?;
    Ok(Dropped {
        name: record.name.clone(),
        sha256: record.sha256.clone(),
        job: Arc::new(job),
        run: None,
        editors: editors.into_iter().collect(),
        revision: record.revision,
        dir,
        sending_elsewhere: record.sending_by.clone(),
    })
}

/// Keeps a dropped file (already written to `staged`, in a folder of its
/// own under the desk's keep folder) and opens it as a job: its id.
pub(super) fn keep(
    desk: &Desk,
    staged: &std::path::Path,
    name: &str,
    bytes: &[u8],
    by: &str,
) -> Result<(u64, Dropped)> {
    let sha256 = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(bytes))
    };
    let mut job = Job::open_to_edit(staged, desk.opts.check.clone())?;
    let counts = job.checked().grouping.counts;
    let record = lock(&desk.access).sheet_add(
        name,
        bytes,
        &sha256,
        by,
        (counts.rows, counts.invalid),
        MAX_SHEETS,
    )?;
    let dir = desk.kept(&record);
    let folder = staged.parent().unwrap_or(staged);
    std::fs::rename(folder, &dir).map_err(|e| Error::io(&dir, e))?;
    job.name_input(dir.join(name));
    Ok((
        record.id as u64,
        Dropped {
            name: name.to_owned(),
            sha256,
            job: Arc::new(job),
            run: None,
            editors: std::iter::once(by.to_owned()).collect(),
            revision: record.revision,
            dir,
            sending_elsewhere: None,
        },
    ))
}

/// Beyond [`MAX_SHEETS`] in memory, the sheets not being sent from here
/// are let go (the database keeps them; `keep` is the one just opened).
pub(super) fn put_away(sheets: &mut BTreeMap<u64, Arc<Mutex<Dropped>>>, keep: u64) {
    while sheets.len() > MAX_SHEETS {
        let idle = sheets
            .iter()
            .find(|(id, d)| **id != keep && !lock(d).sending_here())
            .map(|(id, _)| *id);
        match idle {
            Some(id) => sheets.remove(&id),
            None => break,
        };
    }
}

/// Renews, while they last, this desk's claims on the sheets it sends
/// (a desk that dies lets them go when its claims run out).
pub(super) async fn keep_claims(desk: Shared) {
    let every = crate::access::SENDING_LEASE / 3;
    loop {
        tokio::time::sleep(every).await;
        let sending: Vec<i64> = lock(&desk.sheets)
            .iter()
            .filter(|(_, d)| lock(d).sending_here())
            .map(|(id, _)| *id as i64)
            .collect();
        if !sending.is_empty() {
            let _ = lock(&desk.access).sheets_still_sending(&sending);
        }
    }
}

/// Sheet `id`, or the page that says there is no such sheet.
pub(super) async fn found(
    desk: &Shared,
    id: u64,
) -> std::result::Result<Arc<Mutex<Dropped>>, Response> {
    sheet(desk, id)
        .await?
        .ok_or_else(|| refused(StatusCode::NOT_FOUND, "No such sheet on this desk."))
}
