//! Calibrated absence: what "not held" looks like at this API.
//!
//! The API guide does not say how a lookup answers an id it does not hold.
//! A not-found error proves absence by itself; anything else (HTTP 200 with
//! a null result, an empty object...) proves nothing alone: a broken lookup
//! could answer every id that way, held or not. So every run asks two
//! controls: a made-up id (fresh and random, never sent) and an order the
//! ledger knows exists (created with a success answer). Only when the
//! known order is found and the made-up id is answered in another shape
//! does that shape mean "not held" for this run; an order of ours looked up
//! in that shape is then sent again. Each time the shape is about to be
//! trusted, both controls are asked again: if either answers otherwise,
//! the calibration is void for the rest of the run and nothing more is
//! sent on its word.

use std::fmt;

use serde_json::Value;

use crate::dcms::Answer;

/// The shape of a lookup's answer: what tells answers apart, whatever the
/// id asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape {
    pub status: u16,
    /// The exception's error code, lower case; empty without one.
    pub code: String,
    /// The result: `absent`, `null`, `empty object`, `object`, `array`,
    /// `empty array`, `text`, `number`, `boolean`; `not an envelope` for a
    /// body that is not the DCMS envelope.
    pub result: &'static str,
}

impl Shape {
    pub fn of(answer: &Answer) -> Shape {
        let Some(envelope) = &answer.envelope else {
            return Shape {
                status: answer.status,
                code: String::new(),
                result: "not an envelope",
            };
        };
        let code = envelope
            .exception
            .as_ref()
            .and_then(|e| e.error_code.clone())
            .unwrap_or_default()
            .to_ascii_lowercase();
        let result = match &envelope.result {
            None => "absent",
            Some(Value::Null) => "null",
            Some(Value::Object(o)) if o.is_empty() => "empty object",
            Some(Value::Object(_)) => "object",
            Some(Value::Array(a)) if a.is_empty() => "empty array",
            Some(Value::Array(_)) => "array",
            Some(Value::String(_)) => "text",
            Some(Value::Number(_)) => "number",
            Some(Value::Bool(_)) => "boolean",
        };
        Shape {
            status: answer.status,
            code,
            result,
        }
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP {}", self.status)?;
        if !self.code.is_empty() {
            write!(f, " {}", self.code)?;
        }
        write!(f, ", result {}", self.result)
    }
}

/// A made-up order id: fresh, random, never sent.
pub fn made_up_id() -> String {
    format!("DCB-absent-{}", uuid::Uuid::new_v4().simple())
}

/// A control's answer: its shape and whether it shows the item held; `Err`
/// when it got no answer about the id.
pub type Answered = Result<(Shape, bool), String>;

/// The two controls' answers.
#[derive(Debug, Clone)]
pub struct Controls {
    pub made_up: String,
    pub made_up_shape: Result<Shape, String>,
    /// The known order, and whether it was found; `None` when the ledger
    /// knows no order of ours yet.
    pub known: Option<(String, Answered)>,
}

/// What the controls prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// This shape means "not held".
    Calibrated(Shape),
    /// Nothing: the reason, said in the run's notes.
    Unproven(String),
}

impl Controls {
    /// A control got no answer about its id: nothing is proved either way,
    /// and the controls may be asked again.
    pub fn failed(&self) -> bool {
        self.made_up_shape.is_err() || matches!(&self.known, Some((_, Err(_))))
    }

    pub fn verdict(&self) -> Verdict {
        let made_up = match &self.made_up_shape {
            Ok(s) => s,
            Err(e) => return Verdict::Unproven(format!("the made-up id's lookup failed: {e}")),
        };
        let Some((key, known)) = &self.known else {
            return Verdict::Unproven(
                "no order of ours is known to exist yet (the ledger has no created order)".into(),
            );
        };
        match known {
            Err(e) => Verdict::Unproven(format!("the known order {key}'s lookup failed: {e}")),
            Ok((shape, _)) if shape == made_up => Verdict::Unproven(format!(
                "the known order {key} and a made-up id are answered alike ({shape}): the lookup tells nothing"
            )),
            Ok((_, false)) => Verdict::Unproven(format!(
                "the known order {key} is not found by the lookup: the lookup is not to be trusted"
            )),
            Ok(_) if made_up.result == "not an envelope" || made_up.status >= 500 => {
                Verdict::Unproven(format!(
                    "a made-up id is answered {made_up}, which is not an answer about the order"
                ))
            }
            Ok(_) => Verdict::Calibrated(made_up.clone()),
        }
    }

    /// One line for the ledger and `-v`: both answers' shapes.
    pub fn describe(&self) -> String {
        let made_up = match &self.made_up_shape {
            Ok(s) => s.to_string(),
            Err(e) => format!("failed: {e}"),
        };
        let known = match &self.known {
            None => "no known order".to_string(),
            Some((key, Ok((s, found)))) => {
                format!(
                    "{key}: {s}{}",
                    if *found { " (found)" } else { " (not found)" }
                )
            }
            Some((key, Err(e))) => format!("{key}: failed: {e}"),
        };
        format!(
            "made-up id {}: {made_up}; known order {known}",
            self.made_up
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcms::Envelope;

    fn answer(status: u16, result: Option<Value>) -> Answer {
        Answer {
            status,
            envelope: Some(Envelope {
                result,
                exception: None,
                pagination: None,
            }),
            other_body: None,
            retry_after: None,
            latency: std::time::Duration::ZERO,
            request_id: String::new(),
            answer_request_id: None,
        }
    }

    fn controls(made_up: Answer, known: Option<(Answer, bool)>) -> Controls {
        Controls {
            made_up: made_up_id(),
            made_up_shape: Ok(Shape::of(&made_up)),
            known: known.map(|(a, found)| ("DCB-1".to_string(), Ok((Shape::of(&a), found)))),
        }
    }

    #[test]
    fn only_a_found_known_order_and_another_shape_calibrate() {
        let null = || answer(200, Some(Value::Null));
        let order = || answer(200, Some(serde_json::json!({"status": "RECEIVED"})));
        assert_eq!(
            controls(null(), Some((order(), true))).verdict(),
            Verdict::Calibrated(Shape::of(&null()))
        );
        // Both alike: a lookup that answers everything the same.
        assert!(matches!(
            controls(null(), Some((null(), true))).verdict(),
            Verdict::Unproven(_)
        ));
        // The known order not found: nothing.
        assert!(matches!(
            controls(null(), Some((order(), false))).verdict(),
            Verdict::Unproven(_)
        ));
        // No known order yet: nothing.
        assert!(matches!(
            controls(null(), None).verdict(),
            Verdict::Unproven(_)
        ));
        // A 5xx for the made-up id is no answer about it.
        assert!(matches!(
            controls(answer(503, Some(Value::Null)), Some((order(), true))).verdict(),
            Verdict::Unproven(_)
        ));
        assert_eq!(Shape::of(&null()).to_string(), "HTTP 200, result null");
    }
}
