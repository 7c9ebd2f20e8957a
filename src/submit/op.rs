//! The operation trait: one kind of API call sent in bulk (creates here;
//! cancels and upgrades in `ops`), with what the engine asks of it: the
//! item's key and fingerprint, where to send it, and how to read a lookup.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

use super::http::{clip, describe_answer, exception_messages};
use crate::dcms::{Answer, FetchStatusRequest, OrderBody};

/// One kind of API call sent in bulk: how to name an item in the journal,
/// where to send it, and how to find out whether an earlier request for it
/// took effect. `submit` creates orders; `cancel` and `upgrade` are the
/// other operations on the same engine.
pub trait Operation: Send + Sync + 'static {
    /// What is sent: the request body.
    type Item: Serialize + Clone + Send + Sync + 'static;

    /// The kind of item in the ledger: `order`, `cancel`, `upgrade`.
    const KIND: &'static str;

    /// The item's ledger key: unique among items of its kind, over all runs.
    fn key(item: &Self::Item) -> String;

    /// A fingerprint of what the item asks for (an order's product lines),
    /// and a short description of it for messages. The same key with
    /// another fingerprint is a conflict, never sent.
    fn fingerprint(&self, item: &Self::Item) -> (String, String) {
        let text = serde_json::to_string(item).unwrap_or_default();
        (short_hash(&text), text)
    }

    /// The bulk lookup of what the API already holds, page `page` (from
    /// 1) of `keys`; `None` when the API has none for this kind.
    fn precheck(&self, keys: &[String], page: u32) -> Option<(&'static str, Value)> {
        let _ = (keys, page);
        None
    }

    /// What a bulk lookup page lists: each held item's key and what it
    /// holds, and how many pages there are; `Err` when the answer is not
    /// a well-formed listing.
    fn prechecked(&self, answer: &Answer) -> Result<(Vec<(String, Value)>, u32), String> {
        let _ = answer;
        Err("no bulk lookup".into())
    }

    /// How what the API holds differs from `item`; `None` when it is the
    /// same.
    fn differs(&self, item: &Self::Item, held: &Value) -> Option<String> {
        let _ = (item, held);
        None
    }

    /// The endpoint, e.g. `/card-order`.
    fn path(&self) -> &'static str;

    /// The request that finds out whether an earlier request for `item`
    /// took effect; `None` when the API has no way to tell.
    fn lookup(&self, item: &Self::Item) -> Option<(&'static str, Value)>;

    /// What the lookup's answer says.
    fn looked_up(&self, item: &Self::Item, answer: &Answer) -> Lookup;

    /// The lookup of an item by its key alone, for the absence controls
    /// (a made-up key, a key known to exist); `None` when this kind has no
    /// such lookup (then nothing is calibrated).
    fn lookup_key(&self, key: &str) -> Option<(&'static str, Value)> {
        let _ = key;
        None
    }

    /// Whether a lookup's answer shows an item held (any item: the known
    /// control's).
    fn shows_held(&self, answer: &Answer) -> bool {
        let _ = answer;
        false
    }

    /// Whether a refusal means "already done" (a duplicate create), to be
    /// confirmed with the lookup.
    fn already_done(&self, status: u16, code: &str) -> bool {
        let _ = (status, code);
        false
    }

    /// The report columns of [`Operation::accepted`]'s fields.
    const RESULTS: &'static [&'static str] = &[];

    /// Result fields worth keeping from an accepted answer (never secrets).
    fn accepted(&self, answer: &Answer) -> BTreeMap<String, String> {
        let _ = answer;
        BTreeMap::new()
    }
}

/// `POST /card-order`.
#[derive(Debug, Clone, Copy, Default)]
pub struct CreateOrders;

impl Operation for CreateOrders {
    type Item = OrderBody;

    const KIND: &'static str = "order";

    fn key(item: &OrderBody) -> String {
        item.order_id.clone()
    }

    /// The product lines, sorted: the same lines in another row order are
    /// the same order.
    fn fingerprint(&self, item: &OrderBody) -> (String, String) {
        let mut lines: Vec<String> = products_of(item)
            .iter()
            .map(|p| {
                format!(
                    "{} bin {} {} x{} plastic {} pan {} pin {}",
                    p.product_id,
                    p.bin,
                    p.card_type,
                    p.quantity,
                    p.plastic_code,
                    p.pan_length,
                    p.pin_generation
                )
            })
            .collect();
        lines.sort();
        let summary = lines.join("; ");
        (short_hash(&summary), summary)
    }

    fn precheck(&self, keys: &[String], page: u32) -> Option<(&'static str, Value)> {
        Some((
            "/inventory/fetchCardOrderDetailsFromInventory",
            serde_json::json!({
                "orderIds": keys,
                "pageNo": page,
                "pageSize": PRECHECK_PAGE,
            }),
        ))
    }

    fn prechecked(&self, answer: &Answer) -> Result<(Vec<(String, Value)>, u32), String> {
        let env = answer
            .envelope
            .as_ref()
            .filter(|e| e.exception.is_none() && (200..300).contains(&answer.status))
            .ok_or_else(|| describe_answer("the inventory", answer))?;
        let Some(Value::Array(items)) = &env.result else {
            return Err(format!(
                "the inventory answered HTTP {} without a list of orders",
                answer.status
            ));
        };
        let mut held = Vec::with_capacity(items.len());
        for item in items {
            let Some(id) = item.get("orderId").and_then(Value::as_str) else {
                return Err("the inventory listed an order without an orderId".into());
            };
            held.push((id.to_owned(), item.clone()));
        }
        let pages = env
            .pagination
            .as_ref()
            .and_then(|p| p.get("totalPages"))
            .and_then(Value::as_u64)
            .unwrap_or(1);
        Ok((held, u32::try_from(pages).unwrap_or(u32::MAX)))
    }

    /// Compares product id, BIN and quantity, the fields both the inventory
    /// (`products[]`) and `fetchStatus` (`productDetails[]`) list.
    fn differs(&self, item: &OrderBody, held: &Value) -> Option<String> {
        let mut theirs = held_products(held)?;
        let mut ours: Vec<(String, String, u64)> = products_of(item)
            .iter()
            .map(|p| (p.product_id.clone(), p.bin.clone(), u64::from(p.quantity)))
            .collect();
        ours.sort();
        theirs.sort();
        if ours == theirs {
            return None;
        }
        let show = |v: &[(String, String, u64)]| {
            v.iter()
                .map(|(p, bin, q)| format!("{p} bin {bin} x{q}"))
                .collect::<Vec<_>>()
                .join("; ")
        };
        Some(format!(
            "the API holds it with products [{}], the sheet has [{}]",
            show(&theirs),
            show(&ours)
        ))
    }

    fn path(&self) -> &'static str {
        "/card-order"
    }

    fn lookup(&self, item: &OrderBody) -> Option<(&'static str, Value)> {
        self.lookup_key(&item.order_id)
    }

    fn lookup_key(&self, key: &str) -> Option<(&'static str, Value)> {
        let body = FetchStatusRequest {
            card_order_id: key.to_owned(),
        };
        Some(("/card-order/fetchStatus", serde_json::to_value(body).ok()?))
    }

    fn shows_held(&self, answer: &Answer) -> bool {
        matches!(order_status(answer), Ok(Some(_)))
    }

    fn looked_up(&self, item: &OrderBody, answer: &Answer) -> Lookup {
        match order_status(answer) {
            Ok(Some(status)) => {
                let result = answer.envelope.as_ref().and_then(|e| e.result.as_ref());
                if let Some(why) = result.and_then(|r| self.differs(item, r)) {
                    return Lookup::Conflict(format!("fetchStatus: {why}"));
                }
                Lookup::Found(format!("fetchStatus returns the order (status {status})"))
            }
            Ok(None) => Lookup::Missing,
            Err(e) => Lookup::Failed(e),
        }
    }

    fn already_done(&self, status: u16, code: &str) -> bool {
        is_duplicate(status, code)
    }
}

/// Order statuses a `fetchStatus` answer may name (the docs' five, and
/// CANCELLED, which the sandbox uses after a cancel).
pub const ORDER_STATUSES: [&str; 6] = [
    "RECEIVED",
    "PENDING",
    "PROCESSED",
    "SUCCESS",
    "FAILED",
    "CANCELLED",
];

/// Orders per page of the bulk inventory lookup.
pub const PRECHECK_PAGE: usize = 100;

/// What a `fetchStatus` answer proves.
///
/// - `Ok(Some(status))`: the order exists. Only a success envelope whose
///   `result` is an object naming a known order status says so.
/// - `Ok(None)`: the order is not there, safe to send. Only an answer in
///   the DCMS envelope whose exception code says "not found" (with HTTP
///   404, or any other status: business errors may come with 200) says so.
/// - `Err`: unknown. A 2xx with a `null` or empty result, a result of
///   another shape or an unknown status, a 404 without the envelope (a
///   web server's page: a wrong path), any other error. The order may
///   exist: it is neither sent nor counted accepted.
pub fn order_status(answer: &Answer) -> Result<Option<String>, String> {
    let (code, _) = exception_messages(answer);
    let Some(envelope) = answer.envelope.as_ref() else {
        return Err(describe_answer("fetchStatus", answer));
    };
    if envelope.exception.is_none() && (200..300).contains(&answer.status) {
        let status = envelope
            .result
            .as_ref()
            .and_then(|r| r.get("status"))
            .and_then(Value::as_str)
            .filter(|s| ORDER_STATUSES.contains(s));
        return match status {
            Some(s) => Ok(Some(s.to_owned())),
            None => Err(format!(
                "fetchStatus answered HTTP {} with {}, which does not prove the order exists or not",
                answer.status,
                match &envelope.result {
                    None | Some(Value::Null) => "a null result".to_string(),
                    Some(r) => format!("the result {}", clip(&r.to_string(), 120)),
                }
            )),
        };
    }
    let c = code.to_ascii_lowercase();
    if envelope.exception.is_some() && (c.contains("not.found") || c.contains("not_found")) {
        return Ok(None);
    }
    Err(describe_answer("fetchStatus", answer))
}

/// The first 32 hex digits of SHA-256: a fingerprint.
pub fn short_hash(text: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// An order body's product lines.
fn products_of(item: &OrderBody) -> &[crate::dcms::Product] {
    &item.products
}

/// Product id, BIN and quantity of the products an API answer lists: the
/// inventory's `products[]` (`productId`, `bin`, `quantity`) or
/// fetchStatus's `productDetails[]` (`productId`, `binNumber`, `noOfCard`).
/// `None` when it lists none (nothing to compare).
fn held_products(held: &Value) -> Option<Vec<(String, String, u64)>> {
    let list = held
        .get("products")
        .or_else(|| held.get("productDetails"))?
        .as_array()?;
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    Some(
        list.iter()
            .map(|p| {
                let bin = text(p.get("bin").or_else(|| p.get("binNumber")));
                let qty = p
                    .get("quantity")
                    .or_else(|| p.get("noOfCard"))
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                (text(p.get("productId")), bin, qty)
            })
            .collect(),
    )
}

/// Whether an earlier request for an item took effect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// It did; the text says how we know.
    Found(String),
    /// It did not: sending is safe.
    Missing,
    /// The lookup failed or proves nothing: do not send.
    Failed(String),
    /// The API holds the item with other content: do not send.
    Conflict(String),
}

/// Whether an error code (or the HTTP status) says "this order id exists".
/// The docs are silent on duplicates; the sandbox answers 409
/// `order.already.exists`.
pub(super) fn is_duplicate(status: u16, code: &str) -> bool {
    let code = code.to_ascii_lowercase();
    status == 409 || code.contains("already.exists") || code.contains("duplicate")
}
