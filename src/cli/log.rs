//! Log lines on stderr: what every command says as it goes, as `tracing`
//! events. On a terminal a line is its message alone; off a terminal (a
//! scheduler's log file) every line starts with its RFC 3339 time; with
//! `--log-format json` each event is one JSON object on a line of its own:
//! `time`, `level`, `event`, `message`, then the event's fields (`file`,
//! counts, and for an error its exit `code`), for log shippers.
//!
//! Each call names its event: `tracing::info!(event = "finished", file =
//! %name, accepted = n, "{line}")`. Reports, summaries and `--json` go to
//! stdout, never through here.

use std::fmt::Debug;
use std::io::{IsTerminal, Write};

use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

/// An event at a level known only when the program runs (`tracing`'s
/// macros take a constant one): error, warn, or else info.
macro_rules! at_level {
    ($level:expr, $($rest:tt)*) => {
        match $level {
            tracing::Level::ERROR => tracing::error!($($rest)*),
            tracing::Level::WARN => tracing::warn!($($rest)*),
            _ => tracing::info!($($rest)*),
        }
    };
}
pub(crate) use at_level;

/// The level of a file's end: info when done, warn with rows not done (or
/// waiting for approval), error when it was not processed or the run
/// stopped (exit 3, 4, 5).
pub fn level_of(exit: crate::exit::Exit) -> tracing::Level {
    use crate::exit::Exit;
    match exit {
        Exit::Ok | Exit::Interrupted => tracing::Level::INFO,
        Exit::RowsNotDone | Exit::StillOpen => tracing::Level::WARN,
        Exit::Usage | Exit::InputUnreadable | Exit::ApiUnavailable | Exit::LocalFailure => {
            tracing::Level::ERROR
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Sends this process's events to stderr in `format`. Called once, first.
pub fn init(format: LogFormat, all_debug: bool) {
    let lines = Lines {
        format,
        time: !std::io::stderr().is_terminal(),
        all_debug,
    };
    // A second call (tests in one process) keeps the first.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(lines));
}

/// The layer that writes each event as a line.
struct Lines {
    format: LogFormat,
    /// Put the time before a text line.
    time: bool,
    /// `-vv`: the debug events of the libraries too (hyper, reqwest,
    /// rustls), not their trace events.
    all_debug: bool,
}

impl<S: tracing::Subscriber> Layer<S> for Lines {
    // Only this program's own events: the HTTP stack's debug and trace
    // events are never even built.
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        if self.shown(meta) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, _: Context<'_, S>) -> bool {
        self.shown(meta)
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut fields = Fields::default();
        event.record(&mut fields);
        let time = crate::clock::now();
        let line = match self.format {
            LogFormat::Text => text(&fields.message, self.time.then_some(time.as_str())),
            LogFormat::Json => {
                let level = event.metadata().level().as_str().to_ascii_lowercase();
                json(time, level, fields)
            }
        };
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }
}

impl Lines {
    /// This program's own events, and with `-vv` the libraries' debug
    /// events.
    fn shown(&self, meta: &tracing::Metadata<'_>) -> bool {
        meta.target().starts_with("dcms_bulk")
            || (self.all_debug && *meta.level() <= tracing::Level::DEBUG)
    }
}

/// A text event: each of its lines after the time, if one is given. A
/// line after the first is indented (a `caused by:` is already), and
/// control characters other than the line break are written as escapes:
/// whatever a message quotes (a file's name, a cell), no line of it can
/// pass for a log line of its own, or rewrite one on a terminal.
fn text(message: &str, time: Option<&str>) -> String {
    let mut out = String::with_capacity(message.len() + 32);
    for (i, line) in message.split('\n').enumerate() {
        if let Some(t) = time {
            out.push_str(t);
            out.push(' ');
        }
        if i > 0 && !line.starts_with(char::is_whitespace) {
            out.push_str("  ");
        }
        out.push_str(&crate::quote::escaped(line));
        out.push('\n');
    }
    out
}

/// A JSON event: time, level, event, message first, then the rest.
fn json(time: String, level: String, fields: Fields) -> String {
    let mut object = Map::new();
    object.insert("time".into(), Value::String(time));
    object.insert("level".into(), Value::String(level));
    let event = fields.event.unwrap_or_else(|| "message".into());
    object.insert("event".into(), Value::String(event));
    object.insert("message".into(), Value::String(fields.message));
    object.extend(fields.rest);
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// An event's fields as they are recorded.
#[derive(Default)]
struct Fields {
    message: String,
    event: Option<String>,
    rest: Map<String, Value>,
}

impl Fields {
    fn put(&mut self, field: &Field, value: Value) {
        match (field.name(), value) {
            ("message", Value::String(s)) => self.message = s,
            ("event", Value::String(s)) => self.event = Some(s),
            (name, value) => {
                self.rest.insert(name.to_owned(), value);
            }
        }
    }
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        // The message (format arguments) and `%` fields print as text.
        self.put(field, Value::String(format!("{value:?}")));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.put(field, Value::String(value.to_owned()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.put(field, Value::from(value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.put(field, Value::from(value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.put(field, Value::from(value));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.put(field, Value::Bool(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_text_line_carries_the_time_and_json_keeps_the_fields() {
        let t = "2026-12-01T08:45:19.200Z";
        assert_eq!(
            text("dcms-bulk: error: x\n  caused by: y", Some(t)),
            format!("{t} dcms-bulk: error: x\n{t}   caused by: y\n")
        );
        assert_eq!(text("a: b", None), "a: b\n");
        // A file named to look like a log line stays inside its own.
        assert_eq!(
            text("x.csv: taken\n2026 dcms-bulk: error: y\r", Some(t)),
            format!("{t} x.csv: taken\n{t}   2026 dcms-bulk: error: y\\r\n")
        );
        let mut fields = Fields {
            message: "orders.csv: 3 rows".into(),
            event: Some("finished".into()),
            ..Fields::default()
        };
        fields.rest.insert("accepted".into(), Value::from(3u64));
        let line = json(t.into(), "info".into(), fields);
        assert_eq!(
            line,
            format!(
                "{{\"time\":\"{t}\",\"level\":\"info\",\"event\":\"finished\",\"message\":\"orders.csv: 3 rows\",\"accepted\":3}}\n"
            )
        );
    }
}
