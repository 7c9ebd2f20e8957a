//! A profile's `[profiles.NAME.notify]`: where notices of a run's end go
//! (a webhook, e-mail, or both), read into the notifier's settings, the
//! secrets from the environment or a file; and what each delivery says in
//! the log.

use std::time::Duration;

use super::Console;
use super::profile::{NotifyProfile, env_text, read_secret_file};
use crate::error::{Error, Result};
use crate::notify::{Mail, Notifier, Settings, SmtpTls, Told, Webhook};

impl NotifyProfile {
    /// The notifier's settings; nothing to send to without a webhook or
    /// a mail server.
    pub(super) fn settings(&self, console: Console) -> Result<Settings> {
        let bad = |what: &str, why: String| Error::Usage(format!("profile notify.{what}: {why}"));
        let webhook = self.webhook(console)?;
        let mail = self.mail(console)?;
        let timeout = match &self.timeout {
            Some(t) => humantime::parse_duration(t).map_err(|e| bad("timeout", e.to_string()))?,
            None => Duration::from_secs(10),
        };
        let summary_at = match &self.summary_at {
            Some(t) => Some(
                chrono::NaiveTime::parse_from_str(t, "%H:%M")
                    .map_err(|_| bad("summary_at", format!("{t:?} is not a time of day HH:MM")))?,
            ),
            None => None,
        };
        Ok(Settings {
            webhook,
            mail,
            tries: self.tries.unwrap_or(3).clamp(1, 10),
            timeout,
            summary_at,
            each_file: self.each_file.unwrap_or(true),
        })
    }

    fn webhook(&self, console: Console) -> Result<Option<Webhook>> {
        let url = match (&self.webhook_url_file, env_text("DCMS_WEBHOOK_URL")) {
            (Some(file), _) => Some(read_secret_file(file, "webhook URL", console)?),
            (None, Some(url)) => Some(crate::dcms::Secret::new(url)),
            (None, None) => None,
        };
        let Some(url) = url else {
            return Ok(None);
        };
        // Never the URL in a message: it may hold a token.
        let url = url::Url::parse(url.expose().trim())
            .map_err(|e| Error::Usage(format!("the webhook URL cannot be read as one: {e}")))?;
        if !matches!(url.scheme(), "https" | "http") {
            return Err(Error::Usage(
                "the webhook URL must be https (or http on this machine)".into(),
            ));
        }
        if url.scheme() == "http" && !crate::dcms::is_loopback(&url) {
            return Err(Error::Usage(format!(
                "the webhook at {} is plain http: only a receiver on this machine may be; use https",
                url.host_str().unwrap_or("?")
            )));
        }
        Ok(Some(Webhook {
            url,
            format: self.webhook_format.unwrap_or_default(),
        }))
    }

    fn mail(&self, console: Console) -> Result<Option<Mail>> {
        let Some(host) = &self.smtp_host else {
            if self.email_to.is_some() {
                return Err(Error::Usage(
                    "profile notify.email_to needs smtp_host (the mail server)".into(),
                ));
            }
            return Ok(None);
        };
        let password = match (&self.smtp_password_file, env_text("DCMS_SMTP_PASSWORD")) {
            (Some(file), _) => Some(read_secret_file(file, "mail server password", console)?),
            (None, Some(p)) => Some(crate::dcms::Secret::new(p)),
            (None, None) => None,
        };
        if self.smtp_username.is_some() != password.is_some() {
            return Err(Error::Usage(
                "profile notify: smtp_username and a password (smtp_password_file or DCMS_SMTP_PASSWORD) go together".into(),
            ));
        }
        let tls = self.smtp_tls.unwrap_or_default();
        if tls == SmtpTls::None && self.smtp_username.is_some() {
            return Err(Error::Usage(
                "profile notify: a mail server login is never sent without TLS (smtp_tls = \"none\")".into(),
            ));
        }
        let mail = Mail {
            host: host.clone(),
            port: self.smtp_port,
            tls,
            ca_file: self.smtp_ca_file.clone(),
            username: self.smtp_username.clone(),
            password,
            from: self.email_from.clone().unwrap_or_else(|| {
                format!(
                    "dcms-bulk@{}",
                    crate::report::host().unwrap_or_else(|| "localhost".into())
                )
            }),
            to: self.email_to.clone().unwrap_or_default(),
            attach: self.attach_reports.unwrap_or(true),
        };
        mail.check()
            .map_err(|e| Error::Usage(format!("profile notify: {e}")))?;
        Ok(Some(mail))
    }
}

/// A notifier for `settings`, its deliveries told in the log; `None`
/// when there is nowhere to send, or its thread cannot start (said).
pub(super) fn notifier(settings: Settings) -> Option<Notifier> {
    if !settings.any() {
        return None;
    }
    let host = crate::report::host().unwrap_or_else(|| "this machine".into());
    let told = Box::new(|t: Told<'_>| match t {
        Told::Delivered { to, tries } => tracing::info!(
            event = "notified",
            to,
            tries,
            "dcms-bulk: notice sent to {to}"
        ),
        Told::NotDelivered { to, why } => tracing::warn!(
            event = "not_notified",
            to,
            "dcms-bulk: warning: the notice to {to} could not be sent: {why}; the run is not affected"
        ),
    });
    match Notifier::start(settings, host, told) {
        Ok(n) => Some(n),
        Err(e) => {
            tracing::warn!(
                event = "not_notified",
                "dcms-bulk: warning: no notices this run: {e}"
            );
            None
        }
    }
}
