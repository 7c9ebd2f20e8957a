//! Drop folders: which files in a folder are finished order sheets, and
//! which are passed over, and why. A sheet still being copied in is not
//! taken: a file is taken once its size and modification time have stood
//! still for the settle time.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

/// The extensions of the sheets a folder is read for.
const SHEETS: [&str; 8] = ["csv", "tsv", "txt", "xlsx", "xlsm", "xlsb", "xls", "ods"];

/// Endings of files still being written by a download or a copy.
const TEMPORARY: [&str; 7] = [
    ".part",
    ".partial",
    ".tmp",
    ".temp",
    ".crdownload",
    ".download",
    "~",
];

/// A file of the folder not taken, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Passed {
    pub path: PathBuf,
    pub why: String,
}

/// What a folder holds: its order sheets (sorted by name), and the rest.
#[derive(Debug, Default)]
pub struct Found {
    pub sheets: Vec<PathBuf>,
    pub passed: Vec<Passed>,
}

/// Sorts a folder's entries into order sheets and files passed over.
pub fn scan(dir: &Path) -> std::io::Result<Found> {
    let mut found = Found::default();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        match passed_over(&path) {
            Some(why) => found.passed.push(Passed { path, why }),
            None => found.sheets.push(path),
        }
    }
    found.sheets.sort();
    found.passed.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found)
}

/// Why a folder's entry is not an order sheet to take, if it is not.
fn passed_over(path: &Path) -> Option<String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let lower = name.to_ascii_lowercase();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let why = if !path.is_file() {
        "not a regular file (folders inside are not read)".to_string()
    } else if name.starts_with('.') {
        "a hidden file".to_string()
    } else if name.starts_with("~$") {
        "an Excel lock file (the workbook is open somewhere)".to_string()
    } else if let Some(t) = TEMPORARY.iter().find(|t| lower.ends_with(*t)) {
        format!("a temporary name (`{t}`: still being copied or downloaded?)")
    } else if lower.ends_with(".run.json") {
        "the run facts of an earlier run".to_string()
    } else if lower.contains(".report.") {
        "the report of an earlier run".to_string()
    } else if lower.contains(".to-fix.") {
        "the rows to fix of an earlier run".to_string()
    } else if !SHEETS.contains(&ext.as_str()) {
        format!("not an order sheet (.{ext})")
    } else {
        return None;
    };
    Some(why)
}

/// How long a file may keep changing before it is left for the next run.
pub fn settle_limit(settle: Duration) -> Duration {
    (settle * 10).max(Duration::from_secs(300))
}

/// The files of `files` whose size and modification time have not changed
/// for `settle`, waiting for those that are still changing; a file still
/// changing after [`settle_limit`], or gone, is passed over. `waiting` is
/// told of each file waited for, once; `stopped` ends the wait (the files
/// not settled are then passed over).
pub fn settled(
    files: Vec<PathBuf>,
    settle: Duration,
    waiting: &mut dyn FnMut(&Path, Duration),
    stopped: &dyn Fn() -> bool,
) -> (Vec<PathBuf>, Vec<Passed>) {
    if settle.is_zero() {
        return (files, Vec::new());
    }
    let began = Instant::now();
    let mut settling = Settling::new(settle);
    let mut open: Vec<(usize, PathBuf)> = files.into_iter().enumerate().collect();
    let (mut taken, mut passed) = (Vec::new(), Vec::new());
    loop {
        let mut still = Vec::new();
        for (at, path) in open {
            match settling.look(&path) {
                Settle::Ready => taken.push((at, path)),
                Settle::Gone => passed.push(Passed {
                    path,
                    why: "gone, or not readable, while it was waited for".into(),
                }),
                Settle::Waiting { first, unchanged } => {
                    if first {
                        waiting(&path, unchanged);
                    }
                    still.push((at, path));
                }
            }
        }
        open = still;
        if open.is_empty() || stopped() || began.elapsed() >= settle_limit(settle) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200).min(settle));
    }
    for (_, path) in open {
        let why = if stopped() {
            "still changing when the run was stopped".to_string()
        } else {
            format!(
                "still changing after {}: left for the next run",
                humantime::format_duration(settle_limit(settle))
            )
        };
        passed.push(Passed { path, why });
    }
    // In the order given.
    taken.sort();
    (taken.into_iter().map(|(_, p)| p).collect(), passed)
}

/// What a look at a file waited for found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// Unchanged for the settle time: take it.
    Ready,
    /// Still changing, or not unchanged for long enough; `first` on the
    /// first look.
    Waiting { first: bool, unchanged: Duration },
    /// Gone, or its size and time cannot be read.
    Gone,
}

/// Files waited for until their size and modification time have stood
/// still for the settle time, one look at a time (a loop that does other
/// things between looks, like `watch`, keeps one).
pub struct Settling {
    settle: Duration,
    files: std::collections::HashMap<PathBuf, Watched>,
}

/// A file waited for: what it looked like, and since when (on this clock)
/// it has looked so: from its modification time at the first look.
struct Watched {
    look: Look,
    since: Instant,
}

impl Settling {
    pub fn new(settle: Duration) -> Settling {
        Settling {
            settle,
            files: Default::default(),
        }
    }

    /// Looks at `path` again. A file found ready or gone is forgotten.
    pub fn look(&mut self, path: &Path) -> Settle {
        let Some(now) = Look::of(path) else {
            self.files.remove(path);
            return Settle::Gone;
        };
        let first = !self.files.contains_key(path);
        let file = self.files.entry(path.to_path_buf()).or_insert_with(|| {
            let at = Instant::now();
            Watched {
                look: now,
                since: at.checked_sub(now.age).unwrap_or(at),
            }
        });
        if !file.look.same_as(&now) {
            (file.look, file.since) = (now, Instant::now());
        }
        let unchanged = file.since.elapsed();
        if unchanged >= self.settle {
            self.files.remove(path);
            return Settle::Ready;
        }
        Settle::Waiting { first, unchanged }
    }

    /// Files waited for now.
    pub fn waiting(&self) -> usize {
        self.files.len()
    }
}

/// Moves a processed input and what its run wrote (its report, its run
/// facts) into `dir`, by renaming (so `dir` must be on the same file
/// system). Nothing is overwritten: if any of them clashes with a file
/// there, all of them get `tag` (the run id) after the input's name's
/// stem, so they stay together (`orders.run-42.csv`,
/// `orders.run-42.report.csv`). Returns where each went (`None`: it was
/// not there).
pub fn file_away(dir: &Path, paths: &[&Path], tag: &str) -> std::io::Result<Vec<Option<PathBuf>>> {
    std::fs::create_dir_all(dir)?;
    let plain = |p: &Path| dir.join(p.file_name().unwrap_or_default());
    let clash = paths.iter().any(|p| p.exists() && plain(p).exists());
    let mut moved = Vec::new();
    for p in paths {
        if !p.exists() {
            moved.push(None);
            continue;
        }
        let to = if clash {
            crate::files::with_tag(&plain(p), tag)
        } else {
            plain(p)
        };
        if to.exists() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                format!("{} is there already", to.display()),
            ));
        }
        std::fs::rename(p, &to)?;
        moved.push(Some(to));
    }
    Ok(moved)
}

/// A file's size and modification time, and how long ago that was.
#[derive(Debug, Clone, Copy)]
pub struct Look {
    len: u64,
    modified: SystemTime,
    age: Duration,
}

impl Look {
    /// Whether the file has the same size and modification time.
    pub fn same_as(&self, other: &Look) -> bool {
        self.len == other.len && self.modified == other.modified
    }

    pub fn of(path: &Path) -> Option<Look> {
        let meta = std::fs::metadata(path).ok()?;
        let modified = meta.modified().ok()?;
        Some(Look {
            len: meta.len(),
            modified,
            // A time in the future (a clock ahead) counts as just now.
            age: SystemTime::now()
                .duration_since(modified)
                .unwrap_or(Duration::ZERO),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_sheets_are_taken_and_the_rest_say_why() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "a.csv",
            "B.XLSX",
            "c.csv.part",
            "d.xlsx.crdownload",
            "e.tmp",
            "~$f.xlsx",
            ".g.csv",
            "h.report.csv",
            "h.report.csv.run.json",
            "notes.pdf",
        ] {
            std::fs::write(dir.path().join(name), "x").unwrap();
        }
        std::fs::create_dir(dir.path().join("old")).unwrap();
        let found = scan(dir.path()).unwrap();
        let names = |paths: Vec<&Path>| -> Vec<String> {
            paths
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
                .collect()
        };
        assert_eq!(
            names(found.sheets.iter().map(PathBuf::as_path).collect()),
            ["B.XLSX", "a.csv"]
        );
        let why: Vec<(String, String)> = found
            .passed
            .iter()
            .map(|p| (names(vec![&p.path])[0].clone(), p.why.clone()))
            .collect();
        let why_of = |n: &str| &why.iter().find(|(name, _)| name == n).unwrap().1;
        assert!(why_of("c.csv.part").contains("temporary name"));
        assert!(why_of("d.xlsx.crdownload").contains("temporary name"));
        assert!(why_of("e.tmp").contains("temporary name"));
        assert!(why_of("~$f.xlsx").contains("lock file"));
        assert!(why_of(".g.csv").contains("hidden"));
        assert!(why_of("h.report.csv").contains("report of an earlier run"));
        assert!(why_of("h.report.csv.run.json").contains("run facts"));
        assert!(why_of("notes.pdf").contains("not an order sheet (.pdf)"));
        assert!(why_of("old").contains("not a regular file"));
        assert_eq!(why.len(), 9);
    }

    #[test]
    fn filed_away_together_and_nothing_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let write = |name: &str, text: &str| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        };
        let file = |names: [&str; 3], text: &str| names.map(|n| write(n, text));
        let first = file(
            [
                "orders.csv",
                "orders.report.csv",
                "orders.report.csv.run.json",
            ],
            "1",
        );
        let refs: Vec<&Path> = first.iter().map(PathBuf::as_path).collect();
        let moved = file_away(&done, &refs, "run-1").unwrap();
        assert_eq!(moved[0], Some(done.join("orders.csv")));
        assert!(first.iter().all(|p| !p.exists()));
        // The same names again: all three take the run id, none replaces.
        let second = file(
            [
                "orders.csv",
                "orders.report.csv",
                "orders.report.csv.run.json",
            ],
            "2",
        );
        let refs: Vec<&Path> = second.iter().map(PathBuf::as_path).collect();
        let moved = file_away(&done, &refs, "run-2").unwrap();
        assert_eq!(
            moved,
            [
                Some(done.join("orders.run-2.csv")),
                Some(done.join("orders.run-2.report.csv")),
                Some(done.join("orders.run-2.report.csv.run.json")),
            ]
        );
        assert_eq!(std::fs::read(done.join("orders.csv")).unwrap(), b"1");
        assert_eq!(std::fs::read(done.join("orders.run-2.csv")).unwrap(), b"2");
        // A file that is not there (no report) is left out.
        let lone = write("lone.csv", "3");
        let moved = file_away(&done, &[&lone, &dir.path().join("lone.report.csv")], "x").unwrap();
        assert_eq!(moved, [Some(done.join("lone.csv")), None]);
    }

    #[test]
    fn a_file_still_growing_is_waited_for_and_an_old_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("old.csv");
        std::fs::write(&old, "x").unwrap();
        let growing = dir.path().join("growing.csv");
        std::fs::write(&growing, "a").unwrap();
        // A file last changed well before: taken at once.
        let start = Instant::now();
        let (taken, passed) = settled(
            vec![old.clone()],
            Duration::ZERO,
            &mut |_, _| panic!("no wait"),
            &|| false,
        );
        assert_eq!((taken, passed), (vec![old.clone()], vec![]));
        let writer = {
            let growing = growing.clone();
            std::thread::spawn(move || {
                for _ in 0..4 {
                    std::thread::sleep(Duration::from_millis(300));
                    let mut text = std::fs::read(&growing).unwrap();
                    text.push(b'a');
                    std::fs::write(&growing, text).unwrap();
                }
            })
        };
        let mut waited = Vec::new();
        let (taken, passed) = settled(
            vec![growing.clone()],
            Duration::from_millis(700),
            &mut |p, _| waited.push(p.to_path_buf()),
            &|| false,
        );
        assert!(writer.is_finished(), "taken only once no longer written");
        writer.join().unwrap();
        assert_eq!(taken, vec![growing.clone()]);
        assert!(passed.is_empty());
        assert_eq!(waited, vec![growing.clone()]);
        assert!(start.elapsed() >= Duration::from_millis(1900), "waited");
        // Stopped while it changes: passed over, with why.
        let (taken, passed) = settled(
            vec![growing.clone()],
            Duration::from_secs(3600),
            &mut |_, _| {},
            &|| true,
        );
        assert!(taken.is_empty());
        assert!(passed[0].why.contains("stopped"), "{passed:?}");
    }
}
