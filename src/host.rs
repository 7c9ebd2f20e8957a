//! This machine's name, as run facts, the ledger and the audit trail
//! record it.

/// The host name (`uname -n`); `None` where it cannot be told.
pub fn name() -> Option<String> {
    #[cfg(unix)]
    {
        let name = rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned();
        Some(name).filter(|n| !n.is_empty())
    }
    #[cfg(not(unix))]
    std::env::var("COMPUTERNAME").ok()
}
