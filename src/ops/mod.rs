//! The other bulk operations: cancelling orders and upgrading cards, one
//! API call per sheet row. This module reads and checks their sheets and
//! says how each call is made and looked up (`submit::Operation`); sending,
//! journaling and retrying are the submit engine's.

pub mod sheet;

use std::collections::{BTreeMap, HashMap};

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

struct Rules<'s> {
    sheet: &'s OpSheet,
    kind: Kind,
    problems: Vec<Problem>,
}

impl<'s> Rules<'s> {
    fn new(sheet: &'s OpSheet, kind: Kind, row: &OpRow) -> Self {
        let problems = row
            .problems
            .iter()
            .map(|(c, m)| Problem::new(Some(*c), "cell", m.clone()))
            .collect();
        Rules {
            sheet,
            kind,
            problems,
        }
    }

    fn fail(&mut self, field: &'static str, message: String) {
        let col = self.sheet.column(self.kind, field);
        self.problems.push(Problem::new(col, field, message));
    }

    /// A required value, at most `max` characters.
    fn required<'r>(&mut self, row: &'r OpRow, field: &'static str, max: usize) -> &'r str {
        let v = self.sheet.value(self.kind, row, field);
        if v.is_empty() {
            self.fail(field, "is required".into());
        } else if v.chars().count() > max {
            self.fail(field, format!("must be at most {max} characters"));
        }
        v
    }

    /// One of `choices`, any case; returns it in the list's case.
    fn choice(
        &mut self,
        row: &OpRow,
        field: &'static str,
        choices: &[&'static str],
    ) -> &'static str {
        let v = self.sheet.value(self.kind, row, field);
        match choices.iter().find(|c| c.eq_ignore_ascii_case(v)) {
            Some(c) => c,
            None => {
                let why = if v.is_empty() {
                    "is required".to_string()
                } else {
                    format!("`{v}` must be one of {}", choices.join(", "))
                };
                self.fail(field, why);
                ""
            }
        }
    }
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

/// Checks a cancel sheet: `order_id`, `branch_id` (and `reason`, echoed).
pub fn check_cancels(sheet: &OpSheet) -> Vec<RowCheck<CancelRequest>> {
    let kind = Kind::Cancel;
    let mut checks: Vec<RowCheck<CancelRequest>> = sheet
        .rows
        .iter()
        .map(|row| {
            let mut r = Rules::new(sheet, kind, row);
            let order_id = r.required(row, "order_id", 100);
            let branch_id = r.required(row, "branch_id", 50);
            let item = r.problems.is_empty().then(|| CancelRequest {
                order_id: order_id.to_owned(),
                branch_id: branch_id.to_owned(),
            });
            RowCheck {
                item,
                problems: r.problems,
            }
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
            let mut r = Rules::new(sheet, kind, row);
            let entity_id = r.required(row, "entity_id", 50);
            let kit_no = r.required(row, "kit_no", 50);
            let address = r.choice(
                row,
                "delivery_address_type",
                &["PERMANENT", "COMMUNICATION"],
            );
            let alias = sheet.value(kind, row, "alias_name");
            if alias.chars().count() > 30 {
                r.fail(
                    "alias_name",
                    format!(
                        "is {} characters; at most 30 fit on the card",
                        alias.chars().count()
                    ),
                );
            }
            let card_type = r.choice(row, "card_type", &["PHYSICAL", "VIRTUAL"]);
            let plastic = r.required(row, "plastic_code", 20);
            let tier = r.required(row, "tier_type", 30);
            let item = r.problems.is_empty().then(|| UpgradeRequest {
                entity_id: entity_id.to_owned(),
                kit_no: kit_no.to_owned(),
                delivery_address: Some(address.to_owned()),
                kit_info: vec![KitInfo {
                    alias_name: (!alias.is_empty()).then(|| alias.to_owned()),
                    card_type: Some(card_type.to_owned()),
                    plastic_code: Some(plastic.to_owned()),
                    tier_type: Some(tier.to_owned()),
                }],
            });
            RowCheck {
                item,
                problems: r.problems,
            }
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
}
