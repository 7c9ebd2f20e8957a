//! A notice as a JSON POST to a webhook, in the shape the receiver takes:
//! the notice's own fields with a `text` (`json`; also what Slack,
//! Mattermost and Rocket.Chat incoming webhooks read), a Teams message
//! card (`teams`), or a Discord message (`discord`). The URL often holds a
//! secret: it comes from the environment or a file, and only its host is
//! ever shown.

use std::time::Duration;

use serde_json::{Value, json};

use super::Notice;

/// The body's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The notice's fields, with `text` and `subject`.
    #[default]
    Json,
    /// `{"text": ...}` only (Slack, Mattermost, Rocket.Chat).
    Slack,
    /// A message card (Microsoft Teams' incoming webhooks).
    Teams,
    /// `{"content": ...}` (Discord), cut to its 2,000 characters.
    Discord,
}

/// A webhook: where, and in which shape.
#[derive(Clone)]
pub struct Webhook {
    pub url: url::Url,
    pub format: WebhookFormat,
}

/// Never the URL (it may hold a token): its host.
impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown())
    }
}

impl Webhook {
    /// How a line names it: `the webhook at HOST`.
    pub fn shown(&self) -> String {
        format!("the webhook at {}", self.url.host_str().unwrap_or("?"))
    }

    /// The body of `notice` in this webhook's shape.
    pub fn body(&self, notice: &Notice) -> Value {
        let text = notice.text.trim_end().to_owned();
        match self.format {
            WebhookFormat::Json => {
                let mut body = notice.data.clone();
                body["subject"] = json!(notice.subject);
                body["text"] = json!(text);
                body
            }
            WebhookFormat::Slack => json!({ "text": text }),
            WebhookFormat::Teams => json!({
                "@type": "MessageCard",
                "@context": "http://schema.org/extensions",
                "summary": notice.subject,
                "title": notice.subject,
                "text": text.replace('\n', "  \n"),
            }),
            WebhookFormat::Discord => {
                let cut: String = text.chars().take(1990).collect();
                json!({ "content": cut })
            }
        }
    }

    /// One try: the POST answered 2xx within `timeout`.
    pub fn post(&self, notice: &Notice, timeout: Duration) -> Result<(), String> {
        let client = crate::dcms::plain_http(timeout)?;
        let body = self.body(notice);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| format!("no runtime: {e}"))?;
        runtime.block_on(async {
            let answer = client
                .post(self.url.clone())
                .json(&body)
                .send()
                .await
                // Its words name the host and port, never the path.
                .map_err(|e| {
                    crate::dcms::describe_error_of(&e, "the receiver is down, or the URL is wrong")
                })?;
            let status = answer.status();
            if status.is_success() {
                Ok(())
            } else {
                Err(format!("answered HTTP {}", status.as_u16()))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_shape_carries_the_text_and_the_debug_form_hides_the_url() {
        let notice = Notice {
            subject: "s".into(),
            text: "line 1\nline 2\n".into(),
            data: json!({"files": 1}),
            attachments: Vec::new(),
        };
        let hook = |format| Webhook {
            url: url::Url::parse("https://hooks.example.com/services/T0/SECRET").unwrap(),
            format,
        };
        let json = hook(WebhookFormat::Json).body(&notice);
        assert_eq!(json["files"], 1);
        assert_eq!(json["text"], "line 1\nline 2");
        assert_eq!(
            hook(WebhookFormat::Slack).body(&notice),
            json!({"text": "line 1\nline 2"})
        );
        assert_eq!(
            hook(WebhookFormat::Teams).body(&notice)["@type"],
            "MessageCard"
        );
        assert_eq!(
            hook(WebhookFormat::Discord).body(&notice)["content"],
            "line 1\nline 2"
        );
        let shown = format!("{:?}", hook(WebhookFormat::Json));
        assert!(!shown.contains("SECRET"), "{shown}");
    }
}
