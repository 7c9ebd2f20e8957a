//! What this process may take in memory, and whether a CSV file of a given
//! size fits in it. What is kept of every row grows with the file; an
//! allocation that fails aborts the process, which no caller can catch. So a file that
//! would not fit is refused before it is read, naming the limit: the
//! address space the process may map (`ulimit -v`, `prlimit --as`) and the
//! memory its cgroup may use (systemd's `MemoryMax=`, a container's limit).

use std::path::Path;

use crate::error::{Error, Result};

const MIB: u64 = 1 << 20;

/// A limit on the process's memory: how much, and what sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub bytes: u64,
    pub what: &'static str,
}

/// The limits that hold for this process now.
pub fn limits() -> Vec<Limit> {
    let mut out = Vec::new();
    if let Some(bytes) = rustix::process::getrlimit(rustix::process::Resource::As).current {
        out.push(Limit {
            bytes,
            what: "its address space (ulimit -v)",
        });
    }
    if let Some(bytes) = cgroup_max() {
        out.push(Limit {
            bytes,
            what: "its cgroup's memory.max (MemoryMax=)",
        });
    }
    out
}

/// The memory this process's cgroup (v2) may use, if it is limited.
fn cgroup_max() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = own.lines().find_map(|l| l.strip_prefix("0::"))?;
    let file = Path::new("/sys/fs/cgroup")
        .join(path.trim_start_matches('/'))
        .join("memory.max");
    std::fs::read_to_string(file).ok()?.trim().parse().ok()
}

/// About the most a check of a CSV file of `bytes` takes of `limit`'s
/// kind, measured on generated order sheets with room to spare. The
/// file's text is not held in memory (it is read from a private copy in
/// pieces), but what is kept of every row is: about as much as the file,
/// measured under `ulimit -v` (the 1.6 MB, 16 MB and 159 MiB sheets
/// checked within 79, 184 and 304 MiB of address space and no less), and
/// the threads' own room. The address space counts every thread's
/// reserved heap and stack, used or not.
fn need(bytes: u64, limit: &Limit) -> u64 {
    // The threads' room is taken only by a file large enough to be read
    // in parallel.
    if limit.what.starts_with("its address space") {
        bytes
            .saturating_add((256 * MIB).min(bytes.saturating_mul(16)))
            .saturating_add(96 * MIB)
    } else {
        bytes
            .saturating_add((64 * MIB).min(bytes.saturating_mul(8)))
            .saturating_add(32 * MIB)
    }
}

/// Refuses a CSV file of `bytes` at `path` that `limits` leave no room
/// for.
pub fn check_fits(path: &Path, bytes: u64, limits: &[Limit]) -> Result<()> {
    for limit in limits {
        let need = need(bytes, limit);
        if need > limit.bytes {
            return Err(Error::input(
                path,
                format!(
                    "the file is {}; checking it takes about {} of memory, more than this process may use \
                     ({} is {}): split the file, or give the process more memory",
                    size(bytes),
                    size(need),
                    limit.what,
                    size(limit.bytes)
                ),
            ));
        }
    }
    Ok(())
}

/// `n` bytes for a person: MiB below a GiB, else GiB.
fn size(n: u64) -> String {
    if n >= 1 << 30 {
        format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64)
    } else {
        format!("{} MiB", n.div_ceil(MIB))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_refused_only_past_the_limit_naming_it() {
        let ulimit = [Limit {
            bytes: 2 << 30,
            what: "its address space (ulimit -v)",
        }];
        let p = Path::new("big.csv");
        assert!(check_fits(p, 500 * MIB, &ulimit).is_ok());
        assert!(check_fits(p, 1300 * MIB, &ulimit).is_ok());
        let e = check_fits(p, 1800 * MIB, &ulimit).unwrap_err().to_string();
        assert!(e.contains("1.8 GiB"), "{e}");
        assert!(e.contains("ulimit -v") && e.contains("2.0 GiB"), "{e}");
        let cgroup = [Limit {
            bytes: 1 << 30,
            what: "its cgroup's memory.max (MemoryMax=)",
        }];
        assert!(check_fits(p, 400 * MIB, &cgroup).is_ok());
        assert!(check_fits(p, 900 * MIB, &cgroup).is_ok());
        assert!(check_fits(p, 1000 * MIB, &cgroup).is_err());
        assert!(check_fits(p, u64::MAX, &[]).is_ok(), "no limit");
    }
}
