//! Reading a request body's fields, with the messages the API gives for a
//! missing or malformed one; and the sandbox's clock as the API writes it.

use serde_json::{Map, Value};

/// Field checks that collect every problem of a body.
#[derive(Default)]
pub(super) struct Fields {
    pub(super) errors: Vec<String>,
}

impl Fields {
    pub(super) fn fail(&mut self, message: String) {
        self.errors.push(message);
    }

    /// The errors, or a generic one if a required value was missing without
    /// a message (cannot happen, but never answer 400 with no reason).
    pub(super) fn into_errors(self) -> Vec<String> {
        if self.errors.is_empty() {
            vec!["The request is incomplete".into()]
        } else {
            self.errors
        }
    }

    pub(super) fn known(&mut self, obj: &Map<String, Value>, prefix: &str, allowed: &[&str]) {
        for key in obj.keys() {
            if !allowed.contains(&key.as_str()) {
                self.fail(format!("Unknown field {prefix}{key}"));
            }
        }
    }

    pub(super) fn text<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
    ) -> Option<&'v str> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::String(s)) if s.trim().is_empty() => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::String(s)) => Some(s),
            Some(_) => {
                self.fail(format!("{path} must be text"));
                None
            }
        }
    }

    pub(super) fn whole(
        &mut self,
        obj: &Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::Number(n)) if n.as_i64().is_some_and(|n| (min..=max).contains(&n)) => {
                n.as_i64()
            }
            Some(_) => {
                self.fail(format!("{path} must be a whole number from {min} to {max}"));
                None
            }
        }
    }

    pub(super) fn object<'v>(
        &mut self,
        obj: &'v Map<String, Value>,
        key: &str,
        path: &str,
        required: bool,
    ) -> Option<&'v Map<String, Value>> {
        match obj.get(key) {
            None | Some(Value::Null) => {
                if required {
                    self.fail(format!("{path} is required"));
                }
                None
            }
            Some(Value::Object(o)) => Some(o),
            Some(_) => {
                self.fail(format!("{path} must be an object"));
                None
            }
        }
    }
}

/// Wall-clock time for records, RFC 3339 in UTC with milliseconds.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A new card's expiry: the last day of the month five years on, in the
/// docs' `2029-07-31T00:00:00.000+00:00` form.
pub(super) fn expiry_text() -> String {
    use chrono::{Datelike, NaiveDate};
    let today = chrono::Utc::now().date_naive();
    let (year, month) = (today.year() + 5, today.month());
    let next = if month == 12 {
        NaiveDate::from_ymd_opt(year + 1, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(year, month + 1, 1)
    };
    next.and_then(|d| d.pred_opt())
        .map(|d| format!("{}T00:00:00.000+00:00", d.format("%Y-%m-%d")))
        .unwrap_or_default()
}
