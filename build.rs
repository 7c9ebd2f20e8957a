//! Names the commit the binary is built from, for `dcms-bulk --version`:
//! the clone's commit (with `-modified` when the tree has changes not
//! committed), or `DCMS_BULK_COMMIT` when the source is not a git clone (a
//! tarball), or `unknown`.

use std::path::Path;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=DCMS_BULK_COMMIT");
    for path in ["src", "Cargo.toml", "Cargo.lock", "build.rs"] {
        println!("cargo:rerun-if-changed={path}");
    }
    let commit = match std::env::var("DCMS_BULK_COMMIT") {
        Ok(given) if !given.is_empty() => given,
        _ => from_git().unwrap_or_else(|| "unknown".to_owned()),
    };
    println!("cargo:rustc-env=BUILD_COMMIT={commit}");
}

fn from_git() -> Option<String> {
    // Only this source's own clone: not a repository the source was
    // unpacked inside.
    let top = git(&["rev-parse", "--show-toplevel"])?;
    let here = std::env::var("CARGO_MANIFEST_DIR").ok()?;
    if Path::new(&top).canonicalize().ok()? != Path::new(&here).canonicalize().ok()? {
        return None;
    }
    let git_dir = git(&["rev-parse", "--absolute-git-dir"])?;
    // A new commit or checkout moves HEAD or the index; so rebuild then.
    for file in ["HEAD", "index"] {
        let path = Path::new(&git_dir).join(file);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let modified =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if modified {
        format!("{commit}-modified")
    } else {
        commit
    })
}
