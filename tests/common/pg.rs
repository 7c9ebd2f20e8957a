//! A throwaway PostgreSQL cluster for one test: `initdb` into a temporary
//! folder, `pg_ctl start` on a free loopback port (its socket in the same
//! folder), a `dcms` user with a password, and `pg_ctl stop` plus the
//! folder's removal when dropped. Run as the `postgres` user when the
//! tests run as root (the server refuses root).
//!
//! Where Debian's `postgresql` package is not installed the test says so
//! and passes, unless `DCMS_POSTGRES_TESTS=required` (as `.ci/run` sets
//! it).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The password of the `dcms` user of every test cluster.
pub const PASSWORD: &str = "test-ledger-password";

pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    /// `postgres://dcms@127.0.0.1:PORT/ledger`: no password in it.
    pub url: String,
}

/// The folder of `initdb` and `pg_ctl`: on the PATH, or Debian's newest
/// under /usr/lib/postgresql.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(path) = std::env::var("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").is_file() && dir.join("pg_ctl").is_file() {
                return Some(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, b)| b)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Postgres {
    /// A new cluster, or `None` (said) where PostgreSQL is not installed.
    pub fn start_or_skip() -> Option<Postgres> {
        let Some(bin) = bin_dir() else {
            let required = std::env::var("DCMS_POSTGRES_TESTS").is_ok_and(|v| v == "required");
            assert!(
                !required,
                "no initdb/pg_ctl: install Debian's postgresql package"
            );
            eprintln!("skipped: no PostgreSQL on this machine (.ci/run installs it)");
            return None;
        };
        Some(Postgres::start(bin))
    }

    fn start(bin: PathBuf) -> Postgres {
        let dir = tempfile::Builder::new()
            .prefix("dcms-pg-")
            .tempdir()
            .unwrap();
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let pg = Postgres {
            url: format!("postgres://dcms@127.0.0.1:{port}/ledger"),
            dir,
            bin,
            port,
        };
        if is_root() {
            let o = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(pg.dir.path())
                .output()
                .unwrap();
            assert!(o.status.success(), "chown: {o:?}");
        }
        std::fs::write(pg.dir.path().join("pw"), "superuser-password\n").unwrap();
        pg.own(&pg.dir.path().join("pw"));
        let data = pg.data();
        pg.tool(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                "postgres",
                "--pwfile",
                &pg.path("pw"),
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--no-locale",
            ],
        );
        pg.start_server();
        pg.psql_in(
            "postgres",
            &format!("CREATE USER dcms PASSWORD '{PASSWORD}'"),
        );
        pg.psql_in("postgres", "CREATE DATABASE ledger OWNER dcms");
        pg
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    fn data(&self) -> String {
        self.path("data")
    }

    fn own(&self, path: &Path) {
        if is_root() {
            Command::new("chown")
                .args(["postgres:postgres"])
                .arg(path)
                .output()
                .unwrap();
        }
    }

    /// Runs one of the server's tools (as `postgres` when root).
    fn tool(&self, name: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(name);
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let o = cmd
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{name} {args:?}: {}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        o
    }

    /// Starts the server (again, after [`Postgres::stop_now`]).
    pub fn start_server(&self) {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=60",
            self.port,
            self.dir.path().display()
        );
        self.tool(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &self.path("server.log"),
                "-o",
                &options,
                "-w",
                "start",
            ],
        );
    }

    /// Turns TLS on with this certificate and key (PEM); the server keeps
    /// taking connections without it too, as its `host` lines allow.
    pub fn enable_tls(&self, cert_pem: &str, key_pem: &str) {
        use std::os::unix::fs::PermissionsExt;
        for (name, pem) in [("server.crt", cert_pem), ("server.key", key_pem)] {
            let path = self.dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            self.own(&path);
        }
        self.psql(&format!(
            "ALTER SYSTEM SET ssl_cert_file = '{}'",
            self.path("server.crt")
        ));
        self.psql(&format!(
            "ALTER SYSTEM SET ssl_key_file = '{}'",
            self.path("server.key")
        ));
        self.psql("ALTER SYSTEM SET ssl = on");
        self.psql("SELECT pg_reload_conf()");
        let on = (0..50).any(|_| {
            std::thread::sleep(std::time::Duration::from_millis(100));
            self.psql("SHOW ssl") == "on"
        });
        assert!(on, "the server's TLS did not come on");
    }

    /// Stops the server at once, as a crash would (`-m immediate`).
    pub fn stop_now(&self) {
        self.tool(
            "pg_ctl",
            &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
        );
    }

    /// Runs SQL as the superuser in the ledger's database, over the
    /// socket; returns what it printed.
    pub fn psql(&self, sql: &str) -> String {
        self.psql_in("ledger", sql)
    }

    fn psql_in(&self, db: &str, sql: &str) -> String {
        let psql = self.bin.join("psql");
        let psql = if psql.is_file() {
            psql
        } else {
            PathBuf::from("psql")
        };
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&psql);
            c
        } else {
            Command::new(&psql)
        };
        let o = cmd
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(self.dir.path())
            .args(["-p", &self.port.to_string(), "-U", "postgres", "-d"])
            .arg(db)
            .args(["-c", sql])
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "psql {sql}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).trim().to_owned()
    }
}

impl Postgres {
    /// Adds user `name` with `roles` (password "a long password") to the
    /// shared database from `desk`'s command line.
    pub fn add_user(&self, desk: &super::Desk, name: &str, roles: &str) {
        use std::io::Write;
        let mut add = desk
            .command(&[
                "users",
                "add",
                name,
                "--roles",
                roles,
                "--password-stdin",
                "--ledger",
                &self.url,
            ])
            .env("DCMS_LEDGER_PASSWORD", PASSWORD)
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(add.stdin.take().unwrap(), "a long password").unwrap();
        assert!(add.wait().unwrap().success(), "users add {name}");
    }

    /// `dcms-bulk serve` from `env` (its log in `serve.log`, its sheets
    /// kept in `kept`) sending to `base` as tenant ACME through the shared
    /// database, with `extra` arguments; the child and the desk's URL.
    pub fn serve(
        &self,
        env: &super::Desk,
        base: &str,
        extra: &[&str],
    ) -> (std::process::Child, String) {
        use std::io::BufRead;
        let kept = env.path("kept").display().to_string();
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "-q",
            "--ledger",
            &self.url,
            "--keep-dir",
            &kept,
        ];
        args.extend_from_slice(extra);
        let mut child = env
            .command_at(base, &args)
            .env("DCMS_LEDGER_PASSWORD", PASSWORD)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(env.path("serve.log")).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert!(
            line.starts_with("http://127.0.0.1:"),
            "{line:?}: {}",
            std::fs::read_to_string(env.path("serve.log")).unwrap_or_default()
        );
        (child, line.trim().trim_end_matches('/').to_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if is_root() {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd
            .args(["-D", &self.data(), "-m", "immediate", "stop"])
            .output();
    }
}
