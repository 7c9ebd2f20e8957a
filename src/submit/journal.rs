//! The durable journal of one batch: each order planned → sent → done,
//! one JSON line per event, on disk (fsync) before a request goes out and
//! after its answer. A re-run reads it back to skip what was accepted and
//! to look up what may have been created. A lock file stops two runs of
//! the same batch at once.
//!
//! Writes go through one thread that commits in groups: every record that
//! arrives while a sync runs is written and synced with the next one, so
//! many workers share each fsync.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{SendStatus, Sent};

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "e", rename_all = "snake_case")]
pub enum Record {
    /// The first line: which batch, which API.
    Batch {
        v: u32,
        batch_id: String,
        tenant: String,
        base_url: String,
        input: String,
        input_sha256: String,
        at: String,
    },
    /// The order will be sent.
    Planned { order: String, at: String },
    /// A request for the order is about to go out.
    Sent {
        order: String,
        attempt: u32,
        at: String,
    },
    /// The order's outcome in this run.
    Done { order: String, sent: Sent },
}

/// What an earlier run left for one order.
#[derive(Debug, Clone, PartialEq)]
pub enum Past {
    /// Accepted (or confirmed) earlier: skip it.
    Accepted(Sent),
    /// Refused for good earlier: report it again, do not send.
    Rejected(Sent),
    /// A request went out and no final answer was recorded: the order may
    /// exist; look it up before sending again.
    Unknown { attempts: u32 },
}

/// Which batch a journal belongs to.
#[derive(Debug, Clone)]
pub struct BatchKey {
    pub batch_id: String,
    pub tenant: String,
    pub base_url: String,
}

impl BatchKey {
    /// The journal's file name: a hash of batch, tenant and API, so one
    /// sheet sent to two tenants (or two APIs) has two journals.
    pub fn file_name(&self) -> String {
        let digest = Sha256::new()
            .chain_update(self.batch_id.as_bytes())
            .chain_update([0])
            .chain_update(self.tenant.as_bytes())
            .chain_update([0])
            .chain_update(self.base_url.trim_end_matches('/').as_bytes())
            .finalize();
        format!("{}.journal", &hex::encode(digest)[..32])
    }
}

/// Why a journal cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another dcms-bulk run is submitting this batch now (lock {}); wait for it to end",
        path.display()
    )]
    Locked { path: PathBuf },
    #[error(
        "journal {} is damaged at line {line}: {message}; it is the only record of what was sent, so nothing is sent until it is repaired or moved away (moving it away may send orders again)",
        path.display()
    )]
    Damaged {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("journal {} belongs to another batch ({found})", path.display())]
    Mismatch { path: PathBuf, found: String },
}

enum Job {
    Write(
        Vec<u8>,
        Option<tokio::sync::oneshot::Sender<Result<(), String>>>,
    ),
}

/// An open journal; the lock is held until it is dropped.
pub struct Journal {
    path: PathBuf,
    tx: Option<mpsc::Sender<Job>>,
    writer: Option<std::thread::JoinHandle<()>>,
    _lock: File,
}

impl Journal {
    /// Opens (or starts) the journal of `key` in `dir`, locks it, and
    /// returns what earlier runs recorded per order id.
    pub fn open(
        dir: &Path,
        key: &BatchKey,
        first: Record,
    ) -> Result<(Journal, HashMap<String, Past>), JournalError> {
        let path = dir.join(key.file_name());
        let io = |source| JournalError::Io {
            path: path.clone(),
            source,
        };
        create_private_dir(dir).map_err(io)?;
        let lock_path = path.with_extension("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(io)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(JournalError::Locked { path: lock_path });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io)?;
        let (past, good_len, had_batch) = read_back(&path, &file, key)?;
        // A torn last record (the process died mid-write) is cut off.
        let len = file.metadata().map_err(io)?.len();
        if good_len < len {
            file.set_len(good_len).map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        if !had_batch {
            let mut line = serde_json::to_vec(&first).map_err(|e| io(std::io::Error::other(e)))?;
            line.push(b'\n');
            file.write_all(&line).map_err(io)?;
            file.sync_all().map_err(io)?;
            sync_dir(dir);
        }
        let (tx, rx) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("dcms-journal".into())
            .spawn(move || write_behind(file, rx))
            .map_err(io)?;
        Ok((
            Journal {
                path,
                tx: Some(tx),
                writer: Some(writer),
                _lock: lock,
            },
            past,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes records and waits until they are on disk.
    pub async fn record(&self, records: &[Record]) -> Result<(), JournalError> {
        let mut bytes = Vec::with_capacity(records.len() * 96);
        for r in records {
            serde_json::to_writer(&mut bytes, r).map_err(|e| self.io(std::io::Error::other(e)))?;
            bytes.push(b'\n');
        }
        let (ack, done) = tokio::sync::oneshot::channel();
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.send(Job::Write(bytes, Some(ack))).is_ok());
        if sent != Some(true) {
            return Err(self.io(std::io::Error::other("the journal writer has stopped")));
        }
        match done.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(self.io(std::io::Error::other(message))),
            Err(_) => Err(self.io(std::io::Error::other("the journal writer has stopped"))),
        }
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }
}

impl Drop for Journal {
    fn drop(&mut self) {
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: write what has arrived, sync once, acknowledge all.
fn write_behind(mut file: File, rx: mpsc::Receiver<Job>) {
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        jobs.extend(rx.try_iter());
        let mut result: std::io::Result<()> = Ok(());
        let mut acks = Vec::new();
        for Job::Write(bytes, ack) in jobs {
            if result.is_ok() {
                result = file.write_all(&bytes);
            }
            acks.extend(ack);
        }
        let result = result
            .and_then(|()| file.sync_data())
            .map_err(|e| e.to_string());
        for ack in acks {
            let _ = ack.send(result.clone());
        }
    }
}

/// Reads the journal: each order's last state, the length of the part that
/// parsed, and whether the batch line is there.
fn read_back(
    path: &Path,
    file: &File,
    key: &BatchKey,
) -> Result<(HashMap<String, Past>, u64, bool), JournalError> {
    let mut past: HashMap<String, Past> = HashMap::new();
    let mut reader = BufReader::new(file);
    let mut good = 0u64;
    let mut had_batch = false;
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let n = reader
            .read_until(b'\n', &mut line)
            .map_err(|source| JournalError::Io {
                path: path.to_owned(),
                source,
            })?;
        if n == 0 {
            break;
        }
        number += 1;
        let complete = line.last() == Some(&b'\n');
        let record = serde_json::from_slice::<Record>(&line);
        let record = match (record, complete) {
            (Ok(r), true) => r,
            // The last line, cut short by a crash: dropped.
            (_, false) => break,
            (Err(e), true) => {
                // A bad line that is followed by nothing is a torn write too.
                let rest_empty = reader.fill_buf().map(|b| b.is_empty()).unwrap_or(false);
                if rest_empty {
                    break;
                }
                return Err(JournalError::Damaged {
                    path: path.to_owned(),
                    line: number,
                    message: e.to_string(),
                });
            }
        };
        good += n as u64;
        match record {
            Record::Batch {
                batch_id,
                tenant,
                base_url,
                ..
            } => {
                if batch_id != key.batch_id || tenant != key.tenant {
                    return Err(JournalError::Mismatch {
                        path: path.to_owned(),
                        found: format!("batch {batch_id}, tenant {tenant}, API {base_url}"),
                    });
                }
                had_batch = true;
            }
            Record::Planned { .. } => {}
            Record::Sent { order, attempt, .. } => match past.get_mut(&order) {
                Some(Past::Unknown { attempts }) => *attempts = (*attempts).max(attempt),
                Some(_) => {}
                None => {
                    past.insert(order, Past::Unknown { attempts: attempt });
                }
            },
            Record::Done { order, sent } => {
                let state = match sent.status {
                    SendStatus::Accepted | SendStatus::Skipped => Some(Past::Accepted(sent)),
                    SendStatus::Rejected => Some(Past::Rejected(sent)),
                    // Failed: it stays Unknown if a request went out.
                    SendStatus::Failed => None,
                };
                if let Some(state) = state {
                    past.insert(order, state);
                }
            }
        }
    }
    Ok((past, good, had_batch))
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Makes a new file's name durable (Unix); elsewhere a no-op.
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> BatchKey {
        BatchKey {
            batch_id: "B1".into(),
            tenant: "ACME".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
        }
    }

    fn first() -> Record {
        Record::Batch {
            v: 1,
            batch_id: "B1".into(),
            tenant: "ACME".into(),
            base_url: "http://127.0.0.1:1/v1".into(),
            input: "orders.csv".into(),
            input_sha256: "ab".into(),
            at: "now".into(),
        }
    }

    fn done(order: &str, status: SendStatus) -> Record {
        Record::Done {
            order: order.into(),
            sent: Sent {
                status,
                attempts: 1,
                ..Sent::default()
            },
        }
    }

    fn sent(order: &str, attempt: u32) -> Record {
        Record::Sent {
            order: order.into(),
            attempt,
            at: "now".into(),
        }
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn a_rerun_reads_back_each_orders_last_state() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (j, past) = Journal::open(dir.path(), &key(), first()).unwrap();
            assert!(past.is_empty());
            block_on(j.record(&[
                sent("A", 1),
                done("A", SendStatus::Accepted),
                sent("B", 1),
                sent("B", 2),
                sent("C", 1),
                done("C", SendStatus::Rejected),
                sent("D", 1),
                done("D", SendStatus::Failed),
            ]))
            .unwrap();
        }
        let (_j, past) = Journal::open(dir.path(), &key(), first()).unwrap();
        assert!(matches!(past["A"], Past::Accepted(_)));
        assert_eq!(past["B"], Past::Unknown { attempts: 2 });
        assert!(matches!(past["C"], Past::Rejected(_)));
        assert_eq!(past["D"], Past::Unknown { attempts: 1 });
        assert_eq!(past.len(), 4);
    }

    #[test]
    fn a_torn_last_record_is_dropped_and_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = {
            let (j, _) = Journal::open(dir.path(), &key(), first()).unwrap();
            block_on(j.record(&[sent("A", 1)])).unwrap();
            j.path().to_owned()
        };
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"e\":\"done\",\"order\":\"A\",\"sent\":{\"sta")
            .unwrap();
        drop(f);
        let (j, past) = Journal::open(dir.path(), &key(), first()).unwrap();
        assert_eq!(past["A"], Past::Unknown { attempts: 1 });
        block_on(j.record(&[done("A", SendStatus::Accepted)])).unwrap();
        drop(j);
        let (_j, past) = Journal::open(dir.path(), &key(), first()).unwrap();
        assert!(matches!(past["A"], Past::Accepted(_)));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.lines()
                .all(|l| serde_json::from_str::<Record>(l).is_ok()),
            "{text}"
        );
    }

    #[test]
    fn damage_in_the_middle_stops_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = {
            let (j, _) = Journal::open(dir.path(), &key(), first()).unwrap();
            j.path().to_owned()
        };
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"garbage\n{\"e\":\"planned\",\"order\":\"A\",\"at\":\"x\"}\n")
            .unwrap();
        drop(f);
        let err = Journal::open(dir.path(), &key(), first()).err().unwrap();
        assert!(
            matches!(err, JournalError::Damaged { line: 2, .. }),
            "{err}"
        );
    }

    #[test]
    fn a_second_run_of_the_batch_is_locked_out() {
        let dir = tempfile::tempdir().unwrap();
        let (_held, _) = Journal::open(dir.path(), &key(), first()).unwrap();
        let err = Journal::open(dir.path(), &key(), first()).err().unwrap();
        assert!(matches!(err, JournalError::Locked { .. }), "{err}");
        // Another tenant is another batch, with its own journal.
        let other = BatchKey {
            tenant: "OTHER".into(),
            ..key()
        };
        assert_ne!(other.file_name(), key().file_name());
    }
}
