//! Resolving the API flags into the engine's settings: flags and the
//! environment first, then the profile, then (for `status`) an earlier
//! run's facts; or the built-in sandbox.

use std::path::PathBuf;

use super::Console;
use super::api::{ApiArgs, SendArgs};
use super::profile::{
    Profile, env_path, env_text, first, parse_header, read_profile, read_secret_file, xdg,
};
use crate::dcms::{Credentials, Secret, TlsOpts, check_base_url};
use crate::engine::Api;
use crate::error::{Error, Result};

impl ApiArgs {
    /// Second stage: where, who, which token.
    pub fn resolve(&self, send: &SendArgs, console: Console) -> Result<Api> {
        self.resolve_or(send, console, None)
    }

    /// [`ApiArgs::resolve`], with a base URL and tenant to fall back on
    /// when flags, environment and profile give none (an earlier run's).
    pub fn resolve_or(
        &self,
        send: &SendArgs,
        console: Console,
        fallback: Option<(&str, &str)>,
    ) -> Result<Api> {
        if self.sandbox {
            return self.sandbox_api(send, console);
        }
        let (profile, config) = read_profile(
            self.profile.config.as_deref(),
            self.profile.profile.as_deref(),
        )?;
        let (base_url, tenant) = self.destination(&profile, fallback)?;
        let url = check_base_url(&base_url, self.allow_insecure_http).map_err(Error::Usage)?;
        let mut sources = self.sources(config, &profile, &base_url, &tenant);
        let auth = self.credentials(&profile, &url, console, &mut sources)?;
        let tls = self.tls(&profile, &mut sources)?;
        let proxy = first([
            (self.proxy.clone(), "--proxy"),
            (profile.proxy.clone(), "profile proxy"),
        ]);
        if let Some((p, from)) = &proxy {
            sources.push(("proxy", format!("{p} ({from})")));
        }
        let headers = self.headers(&profile, &mut sources)?;
        let journal_dir = send.journal_dir.clone().unwrap_or_else(|| {
            xdg("XDG_STATE_HOME", ".local/state").map_or_else(
                || PathBuf::from(".dcms-bulk/journals"),
                |d| d.join("dcms-bulk").join("journals"),
            )
        });
        let ledger_db = ledger_db(send, &profile, console, &mut sources)?;
        Ok(Api {
            base_url: url.to_string(),
            tenant,
            auth,
            tls,
            proxy: proxy.map(|(p, _)| p),
            headers,
            sources,
            journal_dir,
            ledger_db,
            host_id: send.host_id.clone(),
            precheck: !send.no_precheck && profile.precheck.unwrap_or(true),
            tier: profile.tier,
            create_fields: profile.create_fields.clone().unwrap_or_default(),
            final_statuses: profile.final_statuses.clone(),
            profile: profile.name.clone(),
            sandbox: None,
        })
    }

    /// The base URL and tenant: the flags (or environment), the profile,
    /// or `fallback` (a report's run facts), in that order.
    fn destination(
        &self,
        profile: &Profile,
        fallback: Option<(&str, &str)>,
    ) -> Result<(String, String)> {
        let base_url = self
            .base_url
            .clone()
            .or(profile.base_url.clone())
            .or(fallback.map(|(url, _)| url.to_owned()))
            .ok_or_else(|| {
            Error::Usage(
                "no API to send to: give --base-url, set DCMS_BASE_URL, use a config profile, or try --sandbox"
                    .into(),
            )
        })?;
        let tenant = self
            .tenant
            .clone()
            .or(profile.tenant.clone())
            .or(fallback.map(|(_, t)| t.to_owned()))
            .ok_or_else(|| {
                Error::Usage(
                    "no tenant: give --tenant, set DCMS_TENANT, or use a config profile".into(),
                )
            })?;
        Ok((base_url, tenant))
    }

    /// Where the configuration, the base URL and the tenant came from.
    fn sources(
        &self,
        config: String,
        profile: &Profile,
        base_url: &str,
        tenant: &str,
    ) -> Vec<(&'static str, String)> {
        let from = |flag: bool, profile: bool| match (flag, profile) {
            (true, _) => "flag or environment",
            (false, true) => "profile",
            (false, false) => "the report's run facts",
        };
        let url_from = from(self.base_url.is_some(), profile.base_url.is_some());
        let tenant_from = from(self.tenant.is_some(), profile.tenant.is_some());
        vec![
            ("config", config),
            ("base_url", format!("{base_url} ({url_from})")),
            ("tenant", format!("{tenant} ({tenant_from})")),
        ]
    }

    /// `--sandbox`: the built-in simulator on a free port, its ledger in a
    /// temporary folder unless one is given.
    fn sandbox_api(&self, send: &SendArgs, console: Console) -> Result<Api> {
        let tenant = self.tenant.clone().unwrap_or_else(|| "SANDBOX".into());
        let mut api = Api::sandbox(tenant, send.journal_dir.clone(), !send.no_precheck)?;
        let profile = Profile::default();
        api.ledger_db = ledger_db(send, &profile, console, &mut api.sources)?;
        api.host_id.clone_from(&send.host_id);
        if !console.quiet {
            tracing::info!(
                event = "sandbox",
                "dcms-bulk: sending to the built-in sandbox at {} (nothing leaves this machine)",
                api.base_url
            );
        }
        Ok(api)
    }

    fn credentials(
        &self,
        profile: &Profile,
        url: &url::Url,
        console: Console,
        sources: &mut Vec<(&'static str, String)>,
    ) -> Result<Option<Credentials>> {
        let token = first([
            (self.token_file.clone().map(Ok), "--token-file"),
            (env_text("DCMS_TOKEN").map(Err), "DCMS_TOKEN"),
            (env_path("DCMS_TOKEN_FILE").map(Ok), "DCMS_TOKEN_FILE"),
            (profile.token_file.clone().map(Ok), "profile token_file"),
        ]);
        let username = first([
            (self.username.clone(), "--username or DCMS_USERNAME"),
            (profile.username.clone(), "profile username"),
        ]);
        match (token, username) {
            (Some((_, t)), Some((_, u))) => Err(Error::Usage(format!(
                "both a token ({t}) and a login ({u}) are configured; use one"
            ))),
            (Some((given, from)), None) => {
                sources.push(("token", from.to_string()));
                Ok(Some(Credentials::Token(match given {
                    Ok(file) => read_secret_file(&file, "token", console)?,
                    Err(text) => Secret::new(text.trim()),
                })))
            }
            (None, Some((username, from))) => {
                sources.push(("username", from.to_string()));
                self.login(profile, url, username, console, sources)
                    .map(Some)
            }
            (None, None) => Ok(None),
        }
    }

    /// A login as `username`: its password and where it is sent.
    fn login(
        &self,
        profile: &Profile,
        url: &url::Url,
        username: String,
        console: Console,
        sources: &mut Vec<(&'static str, String)>,
    ) -> Result<Credentials> {
        let password = first([
            (self.password_file.clone().map(Ok), "--password-file"),
            (env_text("DCMS_PASSWORD").map(Err), "DCMS_PASSWORD"),
            (env_path("DCMS_PASSWORD_FILE").map(Ok), "DCMS_PASSWORD_FILE"),
            (
                profile.password_file.clone().map(Ok),
                "profile password_file",
            ),
        ]);
        let Some((given, from)) = password else {
            return Err(Error::Usage(format!(
                "a login as `{username}` needs a password: set DCMS_PASSWORD, or give --password-file, DCMS_PASSWORD_FILE or the profile's password_file"
            )));
        };
        sources.push(("password", from.to_string()));
        let password = match given {
            Ok(file) => read_secret_file(&file, "password", console)?,
            Err(text) => Secret::new(text),
        };
        let (login, from) = first([
            (self.login_url.clone(), "--login-url"),
            (profile.login_url.clone(), "profile login_url"),
        ])
        .unwrap_or_else(|| (String::new(), "default: the base URL's origin"));
        let login_url = if login.is_empty() {
            url.join("/api/authenticate")
                .map_err(|e| Error::Usage(format!("login URL: {e}")))?
        } else {
            check_base_url(&login, self.allow_insecure_http).map_err(Error::Usage)?
        };
        sources.push(("login_url", format!("{login_url} ({from})")));
        Ok(Credentials::Login {
            url: login_url,
            username,
            password,
        })
    }

    /// The CA file and client certificate, from the flags or the profile.
    fn tls(&self, profile: &Profile, sources: &mut Vec<(&'static str, String)>) -> Result<TlsOpts> {
        let mut pick = |flag: &Option<PathBuf>, prof: &Option<PathBuf>, name: &'static str| {
            let found = first([(flag.clone(), "flag"), (prof.clone(), "profile")]);
            if let Some((p, from)) = &found {
                sources.push((name, format!("{} ({from})", p.display())));
            }
            found.map(|(p, _)| p)
        };
        let tls = TlsOpts {
            ca_file: pick(&self.ca_file, &profile.ca_file, "ca_file"),
            client_cert: pick(&self.client_cert, &profile.client_cert, "client_cert"),
            client_key: pick(&self.client_key, &profile.client_key, "client_key"),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            return Err(Error::Usage(
                "a client certificate needs its key, and a key its certificate (client_cert, client_key)".into(),
            ));
        }
        Ok(tls)
    }

    /// The profile's `[headers]`, then the `--header` flags.
    fn headers(
        &self,
        profile: &Profile,
        sources: &mut Vec<(&'static str, String)>,
    ) -> Result<Vec<(String, String)>> {
        let mut headers: Vec<(String, String)> = profile.headers.clone().into_iter().collect();
        for h in &self.headers {
            headers.push(parse_header(h)?);
        }
        if !headers.is_empty() {
            let names: Vec<&str> = headers.iter().map(|(n, _)| n.as_str()).collect();
            sources.push(("headers", names.join(", ")));
        }
        Ok(headers)
    }
}

/// The shared ledger database, if one is named: `--ledger` (or
/// `DCMS_LEDGER_URL`), else the profile's `ledger`; its password from
/// `DCMS_LEDGER_PASSWORD`, else the profile's `ledger_password_file`.
fn ledger_db(
    send: &SendArgs,
    profile: &Profile,
    console: Console,
    sources: &mut Vec<(&'static str, String)>,
) -> Result<Option<crate::db::PgTarget>> {
    let Some((url, from)) = first([
        (send.ledger.clone(), "--ledger or DCMS_LEDGER_URL"),
        (profile.ledger.clone(), "profile ledger"),
    ]) else {
        return Ok(None);
    };
    let password = match (
        env_text("DCMS_LEDGER_PASSWORD"),
        &profile.ledger_password_file,
    ) {
        (Some(p), _) => Some(p),
        (None, Some(file)) => Some(
            read_secret_file(file, "ledger password", console)?
                .expose()
                .to_owned(),
        ),
        (None, None) => None,
    };
    let target = crate::db::PgTarget::parse(&url, password).map_err(Error::Usage)?;
    sources.push(("ledger", format!("{target} ({from})")));
    Ok(Some(target))
}
