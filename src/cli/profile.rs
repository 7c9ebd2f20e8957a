//! The config file's profiles, and secrets read from files or the
//! environment (never printed).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::Console;
use crate::dcms::{CreateFields, Secret};
use crate::error::{Error, Result};
use crate::submit::Tier;

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConfigFile {
    pub(super) default_profile: Option<String>,
    #[serde(default)]
    pub(super) profiles: BTreeMap<String, Profile>,
}

#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Profile {
    pub(super) base_url: Option<String>,
    pub(super) tenant: Option<String>,
    pub(super) token_file: Option<PathBuf>,
    pub(super) username: Option<String>,
    pub(super) password_file: Option<PathBuf>,
    pub(super) login_url: Option<String>,
    pub(super) ca_file: Option<PathBuf>,
    pub(super) client_cert: Option<PathBuf>,
    pub(super) client_key: Option<PathBuf>,
    pub(super) proxy: Option<String>,
    #[serde(default)]
    pub(super) headers: BTreeMap<String, String>,
    /// The tenant's rate tier.
    pub(super) tier: Option<Tier>,
    /// The create body's undocumented field names.
    pub(super) create_fields: Option<CreateFields>,
    /// Order statuses `status --wait` takes as final.
    pub(super) final_statuses: Option<Vec<String>>,
    /// Ask the API which orders it holds before sending (default true).
    pub(super) precheck: Option<bool>,
    /// `refuse`: every warning refuses its row, as `--strict` does.
    pub(super) warnings: Option<crate::rules::Warnings>,
    /// `required`: no order leaves without a second person's approval.
    pub(super) approval: Option<ApprovalSetting>,
    /// How long an approval holds (`24h` by default).
    pub(super) approval_valid_for: Option<String>,
    /// Where notices of a run's end go.
    pub(super) notify: Option<NotifyProfile>,
    /// The ledger database hosts share (a PostgreSQL URL).
    pub(super) ledger: Option<String>,
    /// A file holding the ledger database's password (else
    /// `DCMS_LEDGER_PASSWORD`).
    pub(super) ledger_password_file: Option<PathBuf>,
    /// The profile's name (not a setting).
    #[serde(skip)]
    pub(super) name: Option<String>,
}

/// The profile's notification settings.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifyProfile {
    /// A file holding the webhook's URL (else `DCMS_WEBHOOK_URL`).
    pub(super) webhook_url_file: Option<PathBuf>,
    pub(super) webhook_format: Option<crate::notify::WebhookFormat>,
    pub(super) email_to: Option<Vec<String>>,
    pub(super) email_from: Option<String>,
    pub(super) smtp_host: Option<String>,
    pub(super) smtp_port: Option<u16>,
    pub(super) smtp_tls: Option<crate::notify::SmtpTls>,
    pub(super) smtp_ca_file: Option<PathBuf>,
    pub(super) smtp_username: Option<String>,
    /// A file holding the mail server's password (else
    /// `DCMS_SMTP_PASSWORD`).
    pub(super) smtp_password_file: Option<PathBuf>,
    pub(super) attach_reports: Option<bool>,
    /// `HH:MM`: a watch's summary of what it did since the last one.
    pub(super) summary_at: Option<String>,
    /// A watch's notice for each file it files (default true).
    pub(super) each_file: Option<bool>,
    pub(super) tries: Option<u32>,
    pub(super) timeout: Option<String>,
}

/// A profile's `approval`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum ApprovalSetting {
    /// Four eyes: a checker who is not the maker approves first.
    Required,
    /// Sent at once (the default).
    None,
}

/// The access database's folder: the one given, else the ledgers' usual
/// folder (never the built-in sandbox's temporary one).
pub fn access_dir(given: Option<&std::path::Path>) -> PathBuf {
    given.map_or_else(
        || {
            xdg("XDG_STATE_HOME", ".local/state").map_or_else(
                || PathBuf::from(".dcms-bulk/journals"),
                |d| d.join("dcms-bulk").join("journals"),
            )
        },
        std::path::Path::to_path_buf,
    )
}

/// Where the access database is, beside the ledgers in `store`: the
/// shared database's, else the one of the folder given (never the
/// built-in sandbox's temporary one).
pub fn access_of(
    store: &crate::submit::ledger::Store,
    journal_dir: Option<&std::path::Path>,
) -> crate::submit::ledger::Store {
    use crate::submit::ledger::Store;
    match store {
        Store::Server(_) => store.clone(),
        Store::Dir(_) => Store::Dir(access_dir(journal_dir)),
    }
}

pub(super) fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

pub(super) fn xdg(var: &str, fallback: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| home().map(|h| h.join(fallback)))
}

/// The create body's field names of a profile (defaults without one), for
/// `validate --print-orders` and the sandbox.
pub fn create_fields(config: Option<&Path>, profile: Option<&str>) -> Result<CreateFields> {
    let (p, _) = read_profile(config, profile)?;
    Ok(p.create_fields.unwrap_or_default())
}

/// The profile in use, and where it came from (for `doctor`).
pub(super) fn read_profile(
    config: Option<&Path>,
    profile: Option<&str>,
) -> Result<(Profile, String)> {
    let (path, explicit) = match config {
        Some(p) => (p.to_path_buf(), true),
        None => match xdg("XDG_CONFIG_HOME", ".config") {
            Some(dir) => (dir.join("dcms-bulk").join("config.toml"), false),
            None => return Ok((Profile::default(), "no config file (no home folder)".into())),
        },
    };
    if !explicit && !path.exists() {
        if let Some(name) = profile {
            return Err(Error::Usage(format!(
                "--profile {name}: there is no config file ({} does not exist)",
                path.display()
            )));
        }
        return Ok((
            Profile::default(),
            format!("no config file ({} does not exist)", path.display()),
        ));
    }
    let text = crate::files::read_small(&path, 1 << 20)
        .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
    let config: ConfigFile = toml::from_str(&text)
        .map_err(|e| Error::Usage(format!("config file {}: {e}", path.display())))?;
    let name = profile
        .map(str::to_owned)
        .or(config.default_profile.clone());
    let Some(name) = name else {
        return Ok((
            Profile::default(),
            format!("{}, no profile chosen", path.display()),
        ));
    };
    let found = config.profiles.get(&name).cloned().ok_or_else(|| {
        Error::Usage(format!(
            "config file {}: no profile `{name}` (profiles: {})",
            path.display(),
            config
                .profiles
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    let found = Profile {
        name: Some(name.clone()),
        ..found
    };
    Ok((found, format!("{}, profile {name}", path.display())))
}

/// A token or password from a file: trimmed, not empty, bounded, a
/// regular file. Readable by other users: a warning.
pub(super) fn read_secret_file(path: &Path, what: &str, console: Console) -> Result<Secret> {
    let problem = |e: std::io::Error| Error::Usage(format!("{what} file {}: {e}", path.display()));
    let meta = crate::files::regular(path).map_err(problem)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 && !console.quiet {
            tracing::warn!(
                event = "secret_readable",
                "dcms-bulk: warning: {what} file {} can be read by other users (mode {mode:03o}); chmod 600 it",
                path.display()
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (meta, console);
    let text = crate::files::read_small(path, 64 * 1024).map_err(problem)?;
    let secret = text.trim();
    if secret.is_empty() {
        return Err(Error::Usage(format!(
            "{what} file {}: the file is empty",
            path.display()
        )));
    }
    Ok(Secret::new(secret))
}

/// The first setting given, by flag, environment or profile, with where
/// it came from.
pub(super) fn first<T>(
    options: impl IntoIterator<Item = (Option<T>, &'static str)>,
) -> Option<(T, &'static str)> {
    options
        .into_iter()
        .find_map(|(v, from)| v.map(|v| (v, from)))
}

pub(super) fn env_text(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|t| !t.trim().is_empty())
}

pub(super) fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|f| !f.is_empty())
        .map(PathBuf::from)
}

/// `Name: value` of `--header`.
pub(super) fn parse_header(text: &str) -> Result<(String, String)> {
    match text.split_once(':') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.trim().to_owned()))
        }
        _ => Err(Error::Usage(format!(
            "--header `{text}`: expected 'Name: value'"
        ))),
    }
}
