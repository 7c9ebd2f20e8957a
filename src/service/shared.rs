//! A drop folder shared by watches on several hosts, one ledger database
//! between them: each file is taken by one watch at a time (a lease in
//! the database, kept alive by a heartbeat while the watch lives), and
//! runs to the destination take turns. A watch that dies lets its file go
//! when its lease runs out; another takes it over and resumes it as a
//! re-run would, nothing sent twice.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Event, Service};
use crate::job::Job;
use crate::submit::ledger::{Claim, LeaseKeeper};

/// What a watch keeps to share its folders: who it is, its leases'
/// heartbeat, and the files it told were another's.
pub struct Sharing {
    holder: String,
    host: String,
    lease: Duration,
    _keeper: LeaseKeeper,
    told: HashSet<PathBuf>,
}

/// Whether this watch may send a file now.
pub enum Turn {
    /// Go: the file's lease is this watch's (and its name and content,
    /// to let it go after).
    Go(Option<(String, String)>),
    /// Another host's watch holds it: looked at again after this while.
    Elsewhere(Duration),
}

impl Sharing {
    /// Sharing for a watch whose ledger is a database; `None` for a
    /// folder's ledger (one host's alone). The turn is let go until a
    /// file is sent.
    pub fn start(service: &Service<'_>, lease: Duration) -> crate::error::Result<Option<Sharing>> {
        let ledger = &service.engine.ledger;
        if !ledger.shared() {
            return Ok(None);
        }
        let holder = format!("{}/{}", ledger.host(), uuid::Uuid::new_v4());
        let keeper = ledger.lease_keeper(&holder, lease)?;
        ledger.let_go()?;
        Ok(Some(Sharing {
            holder,
            host: ledger.host().to_owned(),
            lease,
            _keeper: keeper,
            told: HashSet::new(),
        }))
    }

    /// Takes `path` (checked as `job`) for this watch, then the
    /// destination's turn; or says another host holds it.
    pub fn take(
        &mut self,
        service: &Service<'_>,
        path: &Path,
        job: &crate::error::Result<Job>,
    ) -> crate::error::Result<Turn> {
        let ledger = &service.engine.ledger;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let sha = match job {
            Ok(job) => job.checked().sheet.sha256().to_owned(),
            Err(_) => String::new(),
        };
        let claim = ledger.claim_file(&name, &sha, &self.holder, &self.host, self.lease)?;
        match &claim {
            Claim::Held(host) => {
                if self.told.insert(path.to_owned()) {
                    (service.on)(Event::Elsewhere {
                        file: path,
                        host,
                        taken_over: false,
                    });
                }
                return Ok(Turn::Elsewhere(self.lease / 2));
            }
            Claim::TakenOver(host) => (service.on)(Event::Elsewhere {
                file: path,
                host,
                taken_over: true,
            }),
            Claim::Ours => {}
        }
        self.told.remove(path);
        ledger.take_turn(|_| {})?;
        Ok(Turn::Go(Some((name, sha))))
    }

    /// Lets the file and the destination's turn go after its run.
    pub fn done(&self, service: &Service<'_>, file: Option<(String, String)>) {
        let ledger = &service.engine.ledger;
        if let Some((name, sha)) = file {
            let _ = ledger.release_file(&name, &sha, &self.holder);
        }
        let _ = ledger.let_go();
    }
}
