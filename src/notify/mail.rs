//! A notice by e-mail: SMTP through `lettre`, with STARTTLS (the default)
//! or TLS from the first byte, a login when one is given, the reports
//! attached while they are small. Plain SMTP is only for a server on this
//! machine (a local relay).

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{Message, SmtpTransport, Transport};

use super::Notice;

/// How the mail server is reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain first, then STARTTLS, required (port 587 by default).
    #[default]
    Starttls,
    /// TLS from the first byte (port 465 by default).
    Tls,
    /// No TLS: only for a server on this machine (port 25 by default).
    None,
}

/// Reports attached to one e-mail, at most (larger ones are named, not
/// attached).
const ATTACH_AT_MOST: u64 = 10 << 20;

/// A mail server, the sender and the receivers.
#[derive(Clone)]
pub struct Mail {
    pub host: String,
    pub port: Option<u16>,
    pub tls: SmtpTls,
    /// Trusted besides the platform's roots (a bank's private CA).
    pub ca_file: Option<PathBuf>,
    pub username: Option<String>,
    pub password: Option<crate::dcms::Secret>,
    pub from: String,
    pub to: Vec<String>,
    /// Attach the reports and rows to fix.
    pub attach: bool,
}

/// Never the password.
impl std::fmt::Debug for Mail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Mail {
    /// How a line names it: `e-mail to a@b, c@d via HOST`.
    pub fn shown(&self) -> String {
        format!("e-mail to {} via {}", self.to.join(", "), self.host)
    }

    /// Checks what can be checked before anything is sent: the addresses,
    /// plain SMTP only on this machine, a login only over TLS.
    pub fn check(&self) -> Result<(), String> {
        self.from
            .parse::<Mailbox>()
            .map_err(|e| format!("email_from `{}`: {e}", self.from))?;
        if self.to.is_empty() {
            return Err("email_to names no one".into());
        }
        for to in &self.to {
            to.parse::<Mailbox>()
                .map_err(|e| format!("email_to `{to}`: {e}"))?;
        }
        let local = matches!(self.host.as_str(), "localhost" | "::1")
            || self
                .host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if self.tls == SmtpTls::None && !local {
            return Err(format!(
                "smtp_tls = \"none\" is only for a mail server on this machine, not {}: use starttls or tls",
                self.host
            ));
        }
        Ok(())
    }

    /// The e-mail of `notice`: its text, and the reports attached while
    /// they fit.
    pub fn message(&self, notice: &Notice) -> Result<Message, String> {
        let mut builder = Message::builder()
            .from(self.from.parse().map_err(|e| format!("email_from: {e}"))?)
            .subject(notice.subject.clone());
        for to in &self.to {
            builder = builder.to(to.parse().map_err(|e| format!("email_to `{to}`: {e}"))?);
        }
        let mut text = notice.text.clone();
        let mut files = Vec::new();
        let mut attached = 0u64;
        for path in notice.attachments.iter().filter(|_| self.attach) {
            let Ok(bytes) = std::fs::read(path) else {
                continue;
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if attached + bytes.len() as u64 > ATTACH_AT_MOST {
                text += &format!("\n(not attached, too large: {name})");
                continue;
            }
            attached += bytes.len() as u64;
            let kind = if name.ends_with(".xlsx") {
                "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
            } else {
                "text/csv"
            };
            let kind = ContentType::parse(kind).map_err(|e| e.to_string())?;
            files.push(Attachment::new(name).body(bytes, kind));
        }
        let message = if files.is_empty() {
            builder.body(text)
        } else {
            let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(text));
            for file in files {
                parts = parts.singlepart(file);
            }
            builder.multipart(parts)
        };
        message.map_err(|e| format!("cannot build the e-mail: {e}"))
    }

    /// One try: the e-mail handed to the server within `timeout`.
    pub fn send(&self, notice: &Notice, timeout: Duration) -> Result<(), String> {
        let message = self.message(notice)?;
        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(self.tls_parameters()?),
            SmtpTls::Tls => Tls::Wrapper(self.tls_parameters()?),
        };
        let port = self.port.unwrap_or(match self.tls {
            SmtpTls::Starttls => 587,
            SmtpTls::Tls => 465,
            SmtpTls::None => 25,
        });
        let mut builder = SmtpTransport::builder_dangerous(&self.host)
            .port(port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            builder =
                builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        builder
            .build()
            .send(&message)
            .map(|_| ())
            .map_err(|e| format!("{} refused or failed: {e}", self.host))
    }

    fn tls_parameters(&self) -> Result<TlsParameters, String> {
        let mut b = TlsParameters::builder(self.host.clone());
        if let Some(path) = &self.ca_file {
            let pem =
                std::fs::read(path).map_err(|e| format!("smtp_ca_file {}: {e}", path.display()))?;
            let cert = Certificate::from_pem(&pem)
                .map_err(|e| format!("smtp_ca_file {}: {e}", path.display()))?;
            b = b.add_root_certificate(cert);
        }
        b.build_rustls()
            .map_err(|e| format!("TLS settings for {}: {e}", self.host))
    }
}
