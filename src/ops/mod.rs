//! The other bulk operations: cancelling orders and upgrading cards, one
//! API call per sheet row. This module reads and checks their sheets and
//! says how each call is made and looked up (`submit::Operation`); sending,
//! journaling and retrying are the submit engine's.

pub mod sheet;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde_json::{Value, json};

use crate::dcms::{Answer, CancelRequest, KitInfo, UpgradeRequest};
use crate::submit::{Lookup, Operation, mask_card_numbers, order_status};
use crate::template::Kind;
use sheet::{OpRow, OpSheet};

/// One problem of a row: the order checker's own type.
pub use crate::validate::Problem;

/// A checked row: what to send, or why not.
#[derive(Debug, Clone)]
pub struct RowCheck<T> {
    pub item: Option<T>,
    pub problems: Vec<Problem>,
}

/// A row's values, one per column of its kind's template (a choice in the
/// list's case), and its problems: each column's rules, declared with the
/// template's columns, checked alike for every kind.
fn check_row(sheet: &OpSheet, kind: Kind, row: &OpRow) -> (Vec<String>, Vec<Problem>) {
    let mut problems: Vec<Problem> = row
        .problems
        .iter()
        .map(|(c, m)| Problem::new(Some(*c), "cell", m.clone()))
        .collect();
    let values = kind
        .columns()
        .iter()
        .map(|col| {
            let v = sheet.value(kind, row, col.name);
            let mut fail = |m: String| {
                let at = sheet.column(kind, col.name);
                problems.push(Problem::new(at, col.name, m));
            };
            if v.is_empty() {
                if col.required {
                    fail("is required".into());
                }
            } else if !col.choices.is_empty() {
                match col.choices.iter().find(|c| c.eq_ignore_ascii_case(v)) {
                    Some(c) => return (*c).to_owned(),
                    None => fail(format!(
                        "`{}` must be one of {}",
                        crate::quote::value(v),
                        col.choices.join(", ")
                    )),
                }
            } else if v.chars().count() > col.max_chars {
                fail(format!("must be at most {} characters", col.max_chars));
            }
            v.to_owned()
        })
        .collect();
    (values, problems)
}

/// The value of template column `name` among a row's checked `values`.
fn value<'v>(kind: Kind, values: &'v [String], name: &str) -> &'v str {
    kind.columns()
        .iter()
        .position(|c| c.name == name)
        .and_then(|i| values.get(i))
        .map_or("", String::as_str)
}

/// Marks rows whose key repeats an earlier row's: sent once, from the first.
fn flag_repeats<T>(sheet: &OpSheet, kind: Kind, checks: &mut [RowCheck<T>], field: &'static str) {
    let mut first: HashMap<String, u64> = HashMap::new();
    for (row, check) in sheet.rows.iter().zip(checks.iter_mut()) {
        let key = sheet.value(kind, row, field);
        if key.is_empty() {
            continue;
        }
        match first.get(key) {
            Some(n) => {
                check.item = None;
                check.problems.push(Problem::new(
                    sheet.column(kind, field),
                    field,
                    format!("`{key}` is also on row {n}: it is sent once, from row {n}"),
                ));
            }
            None => {
                first.insert(key.to_owned(), row.number);
            }
        }
    }
}

/// A cancel or upgrade sheet read and checked, each valid row's request as
/// JSON (what would be sent): for `validate` and the dry runs, which send
/// nothing.
pub struct Checked {
    pub kind: Kind,
    pub sheet: OpSheet,
    pub checks: Vec<RowCheck<Value>>,
}

impl Checked {
    /// Reads and checks a `kind` sheet (cancel or upgrade).
    pub fn read(
        path: &Path,
        opts: &crate::read::ReadOpts,
        kind: Kind,
    ) -> crate::error::Result<Checked> {
        fn as_json<T: serde::Serialize>(checks: Vec<RowCheck<T>>) -> Vec<RowCheck<Value>> {
            checks
                .into_iter()
                .map(|c| RowCheck {
                    item: c.item.and_then(|i| serde_json::to_value(i).ok()),
                    problems: c.problems,
                })
                .collect()
        }
        let sheet = sheet::read(path, opts, kind)?;
        let checks = match kind {
            Kind::Cancel => as_json(check_cancels(&sheet)),
            Kind::Upgrade => as_json(check_upgrades(&sheet)),
            Kind::Order => {
                return Err(crate::error::Error::Usage(
                    "an order sheet is checked by the order checker".into(),
                ));
            }
        };
        Ok(Checked {
            kind,
            sheet,
            checks,
        })
    }

    /// Rows that would be sent.
    pub fn valid(&self) -> u64 {
        self.checks.iter().filter(|c| c.item.is_some()).count() as u64
    }

    /// The sheet's problems on the console, the first 50 unless `verbose`.
    pub fn print_problems(&self, name: &str, verbose: bool) {
        print_problems(name, &self.sheet, &self.checks, verbose);
    }

    /// The request bodies that would be sent, one JSON line each.
    pub fn bodies(&self) -> String {
        let mut out = String::new();
        for item in self.checks.iter().filter_map(|c| c.item.as_ref()) {
            out.push_str(&item.to_string());
            out.push('\n');
        }
        out
    }
}

/// A sheet's problems on the console, the first 50 unless `verbose` (the
/// report has every one).
pub fn print_problems<T>(name: &str, sheet: &OpSheet, checks: &[RowCheck<T>], verbose: bool) {
    let problems = sheet.rows.iter().zip(checks).flat_map(|(row, c)| {
        c.problems
            .iter()
            .map(move |p| (sheet.at(p.col, row.number), p))
    });
    for (i, (at, p)) in problems.enumerate() {
        if i == 50 && !verbose {
            tracing::info!(
                event = "problems",
                file = name,
                "{name}: … more problems; the report lists every one"
            );
            break;
        }
        tracing::info!(event = "problem", file = name, column = %p.field, "{name}: {at} {}: {}", p.field, p.message);
    }
}

/// Checks a cancel sheet: `order_id`, `branch_id` (and `reason`, echoed).
pub fn check_cancels(sheet: &OpSheet) -> Vec<RowCheck<CancelRequest>> {
    let kind = Kind::Cancel;
    let mut checks: Vec<RowCheck<CancelRequest>> = sheet
        .rows
        .iter()
        .map(|row| {
            let (values, problems) = check_row(sheet, kind, row);
            let v = |name| value(kind, &values, name).to_owned();
            let item = problems.is_empty().then(|| CancelRequest {
                order_id: v("order_id"),
                branch_id: v("branch_id"),
            });
            RowCheck { item, problems }
        })
        .collect();
    flag_repeats(sheet, kind, &mut checks, "order_id");
    checks
}

/// Checks an upgrade sheet.
pub fn check_upgrades(sheet: &OpSheet) -> Vec<RowCheck<UpgradeRequest>> {
    let kind = Kind::Upgrade;
    let mut checks: Vec<RowCheck<UpgradeRequest>> = sheet
        .rows
        .iter()
        .map(|row| {
            let (values, problems) = check_row(sheet, kind, row);
            let v = |name| value(kind, &values, name).to_owned();
            let alias = v("alias_name");
            let item = problems.is_empty().then(|| UpgradeRequest {
                entity_id: v("entity_id"),
                kit_no: v("kit_no"),
                delivery_address: Some(v("delivery_address_type")),
                kit_info: vec![KitInfo {
                    alias_name: (!alias.is_empty()).then_some(alias),
                    card_type: Some(v("card_type")),
                    plastic_code: Some(v("plastic_code")),
                    tier_type: Some(v("tier_type")),
                }],
            });
            RowCheck { item, problems }
        })
        .collect();
    flag_repeats(sheet, kind, &mut checks, "kit_no");
    checks
}

/// `POST /card-order/cancel`, one per order.
#[derive(Debug, Clone, Copy, Default)]
pub struct CancelOrders;

impl Operation for CancelOrders {
    type Item = CancelRequest;

    const KIND: &'static str = "cancel";

    fn key(item: &CancelRequest) -> String {
        item.order_id.clone()
    }

    fn path(&self) -> &'static str {
        "/card-order/cancel"
    }

    /// Cancelled already? `fetchStatus` says CANCELLED.
    fn lookup(&self, item: &CancelRequest) -> Option<(&'static str, Value)> {
        Some((
            "/card-order/fetchStatus",
            json!({ "cardOrderId": item.order_id }),
        ))
    }

    /// Only an order the lookup returns counts: CANCELLED means the cancel
    /// took effect; any other known status means it did not (safe to
    /// send); an answer that proves nothing leaves it unknown.
    fn looked_up(&self, _item: &CancelRequest, answer: &Answer) -> Lookup {
        match order_status(answer) {
            Ok(Some(s)) if s == "CANCELLED" => {
                Lookup::Found("fetchStatus says the order is CANCELLED".into())
            }
            Ok(Some(_)) => Lookup::Missing,
            // The order is not there: a cancel is refused, never harmful.
            Ok(None) => Lookup::Missing,
            Err(e) => Lookup::Failed(e),
        }
    }
}

/// `POST /kit-manager/upgradeCard`, one per kit.
#[derive(Debug, Clone, Copy, Default)]
pub struct UpgradeCards;

impl Operation for UpgradeCards {
    type Item = UpgradeRequest;

    const KIND: &'static str = "upgrade";

    const RESULTS: &'static [&'static str] = &["new_kit_no", "card_number", "card_status"];

    fn key(item: &UpgradeRequest) -> String {
        item.kit_no.clone()
    }

    fn path(&self) -> &'static str {
        "/kit-manager/upgradeCard"
    }

    /// Upgraded already? The old kit is REPLACED among the customer's kits.
    fn lookup(&self, item: &UpgradeRequest) -> Option<(&'static str, Value)> {
        Some((
            "/kit-manager/fetchKitsByEntityId",
            json!({ "entityId": item.entity_id }),
        ))
    }

    /// The old kit REPLACED: the upgrade took effect. Sent again only when
    /// the lookup lists the old kit in a state an upgrade starts from
    /// (ASSIGNED, ACTIVE, INACTIVE): nothing replaced it. A kit missing
    /// from the list (lists may hide replaced kits), another state, or an
    /// answer that is not a list of kits leaves it unknown: a customer
    /// must never get two new cards.
    fn looked_up(&self, item: &UpgradeRequest, answer: &Answer) -> Lookup {
        let env = answer
            .envelope
            .as_ref()
            .filter(|e| e.exception.is_none() && (200..300).contains(&answer.status));
        let Some(kits) = env
            .and_then(|e| e.result.as_ref())
            .and_then(Value::as_array)
        else {
            return Lookup::Failed(format!(
                "fetchKitsByEntityId: HTTP {} without a list of kits",
                answer.status
            ));
        };
        let old = kits
            .iter()
            .find(|k| k.get("kitNo").and_then(Value::as_str) == Some(&item.kit_no));
        match old
            .and_then(|k| k.get("cardStatus"))
            .and_then(Value::as_str)
        {
            Some("REPLACED") => Lookup::Found(format!(
                "kit {} is REPLACED among the customer's kits",
                item.kit_no
            )),
            Some("ASSIGNED" | "ACTIVE" | "INACTIVE") => Lookup::Missing,
            Some(other) => Lookup::Failed(format!(
                "kit {} is {other}: whether the upgrade took effect is unknown",
                item.kit_no
            )),
            None => Lookup::Failed(format!(
                "fetchKitsByEntityId does not list kit {}: whether the upgrade took effect is unknown",
                item.kit_no
            )),
        }
    }

    /// The new kit, its masked card number and status; never the
    /// encrypted card number.
    fn accepted(&self, answer: &Answer) -> BTreeMap<String, String> {
        let kit = answer
            .envelope
            .as_ref()
            .and_then(|e| e.result.as_ref())
            .and_then(|r| r.get("kitInfo"))
            .and_then(|k| k.get(0));
        let mut out = BTreeMap::new();
        for (field, column) in ["kitNo", "cardNumber", "cardStatus"]
            .into_iter()
            .zip(Self::RESULTS)
        {
            if let Some(v) = kit.and_then(|k| k.get(field)).and_then(Value::as_str) {
                out.insert((*column).to_owned(), mask_card_numbers(v).into_owned());
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dcms::Envelope;
    use crate::read::ReadOpts;
    use std::time::Duration;

    fn answer(status: u16, result: Value) -> Answer {
        Answer {
            status,
            envelope: Some(Envelope::ok(result)),
            other_body: None,
            retry_after: None,
            latency: Duration::ZERO,
            request_id: String::new(),
            answer_request_id: None,
        }
    }

    fn upgrade() -> UpgradeRequest {
        UpgradeRequest {
            entity_id: "E1".into(),
            kit_no: "K1".into(),
            delivery_address: None,
            kit_info: vec![],
        }
    }

    #[test]
    fn an_upgrade_keeps_the_new_kit_and_never_the_full_number() {
        let a = answer(
            200,
            json!({"entityId": "E1", "kitInfo": [{
                "kitNo": "K2", "cardNumber": "6080401234566384", "cardStatus": "ASSIGNED",
                "encryptedCardNumber": "ab".repeat(32)
            }]}),
        );
        let kept = UpgradeCards.accepted(&a);
        assert_eq!(kept["new_kit_no"], "K2");
        assert_eq!(kept["card_number"], "608040XXXXXX6384");
        assert_eq!(kept["card_status"], "ASSIGNED");
        assert_eq!(kept.len(), 3);
    }

    #[test]
    fn lookups_find_what_took_effect() {
        let replaced = answer(200, json!([{"kitNo": "K1", "cardStatus": "REPLACED"}]));
        assert!(matches!(
            UpgradeCards.looked_up(&upgrade(), &replaced),
            Lookup::Found(_)
        ));
        let still = answer(200, json!([{"kitNo": "K1", "cardStatus": "ASSIGNED"}]));
        assert_eq!(UpgradeCards.looked_up(&upgrade(), &still), Lookup::Missing);
        let cancel = CancelRequest {
            order_id: "O".into(),
            branch_id: "B".into(),
        };
        let cancelled = answer(200, json!({"cardOrderName": "O", "status": "CANCELLED"}));
        assert!(matches!(
            CancelOrders.looked_up(&cancel, &cancelled),
            Lookup::Found(_)
        ));
        let received = answer(200, json!({"cardOrderName": "O", "status": "RECEIVED"}));
        assert_eq!(CancelOrders.looked_up(&cancel, &received), Lookup::Missing);
    }

    fn sheet_of(kind: Kind, text: &str) -> (tempfile::TempDir, OpSheet) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.csv");
        std::fs::write(&path, text).unwrap();
        let sheet = sheet::read(&path, &ReadOpts::default(), kind).unwrap();
        (dir, sheet)
    }

    fn problems<T>(check: &RowCheck<T>) -> Vec<(String, String)> {
        check
            .problems
            .iter()
            .map(|p| (p.field.to_string(), p.message.clone()))
            .collect()
    }

    #[test]
    fn each_column_is_checked_by_the_rules_its_template_declares() {
        let long = "A".repeat(31);
        let (_dir, sheet) = sheet_of(
            Kind::Upgrade,
            &format!(
                "entity_id,kit_no,delivery_address_type,alias_name,card_type,plastic_code,tier_type\n\
                 E1,K1,permanent,PRIYA,virtual,0456,SILVER\n\
                 E2,K2,HOME,{long},PHYSICAL,,SILVER\n\
                 E3,K1,PERMANENT,,PHYSICAL,1,GOLD\n"
            ),
        );
        let checks = check_upgrades(&sheet);
        let first = checks[0].item.as_ref().expect("row 2 is sent");
        assert_eq!(first.delivery_address.as_deref(), Some("PERMANENT"));
        assert_eq!(first.kit_info[0].card_type.as_deref(), Some("VIRTUAL"));
        assert_eq!(first.kit_info[0].plastic_code.as_deref(), Some("0456"));
        assert!(checks[1].item.is_none());
        assert_eq!(
            problems(&checks[1]),
            [
                (
                    "delivery_address_type".into(),
                    "`HOME` must be one of PERMANENT, COMMUNICATION".into()
                ),
                ("alias_name".into(), "must be at most 30 characters".into()),
                ("plastic_code".into(), "is required".into()),
            ]
        );
        assert!(checks[2].item.is_none(), "kit K1 again");
        assert!(problems(&checks[2])[0].1.contains("is also on row 2"));

        let (_dir, sheet) = sheet_of(
            Kind::Cancel,
            &format!("order_id,branch_id\n{},1\nX,\n", "9".repeat(101)),
        );
        let checks = check_cancels(&sheet);
        assert_eq!(
            problems(&checks[0]),
            [("order_id".into(), "must be at most 100 characters".into())]
        );
        assert_eq!(
            problems(&checks[1]),
            [("branch_id".into(), "is required".into())]
        );
    }
}
