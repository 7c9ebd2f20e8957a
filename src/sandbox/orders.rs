//! The order endpoints: create, cancel, fetch status, and the bulk
//! inventory lookup.

use std::time::Instant;

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::envelope::Reply;
use super::faults::lock;
use super::fields::{Fields, now_text};
use super::shared::{MAX_ORDER_ID, Shared};
use super::store::{self, Order, StoredProduct};

/// `POST /card-order`. `Err` holds the ORD001 field errors.
pub(super) fn create(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
    whole: &Value,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(
        body,
        "",
        &[
            "orderId",
            "branchInfo",
            "address",
            "pinCode",
            "orderingPartyInfo",
            "metaValues",
            "processStartTime",
            "validity",
            "products",
        ],
    );
    let order_id = c.text(body, "orderId", "orderId", true);
    if let Some(id) = order_id
        && (id.chars().count() > MAX_ORDER_ID || id.chars().any(char::is_control))
    {
        c.fail(format!(
            "orderId must be at most {MAX_ORDER_ID} printable characters"
        ));
    }
    let branch = branch_of(shared, &mut c, body);
    check_delivery(&mut c, body);
    let products = products_of(shared, &mut c, body);
    let (Some(order_id), Some(branch_id), Some(branch_name)) = (order_id, branch.0, branch.1)
    else {
        return Err(c.into_errors());
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let order = NewOrder {
        id: order_id,
        branch: (branch_id, branch_name),
        products,
        whole,
    };
    Ok(store_order(shared, tenant, order))
}

/// The `branchInfo`: its id (a branch of this tenant) and name.
fn branch_of<'v>(
    shared: &Shared,
    c: &mut Fields,
    body: &'v Map<String, Value>,
) -> (Option<&'v str>, Option<&'v str>) {
    let Some(info) = c.object(body, "branchInfo", "branchInfo", true) else {
        return (None, None);
    };
    c.known(info, "branchInfo.", &["branchId", "branchName"]);
    let branch = (
        c.text(info, "branchId", "branchInfo.branchId", true),
        c.text(info, "branchName", "branchInfo.branchName", true),
    );
    if let Some(id) = branch.0
        && shared.opts.unknown_branches.iter().any(|b| b == id)
    {
        c.fail(format!(
            "branchInfo.branchId {id} is not a branch of this tenant"
        ));
    }
    branch
}

/// The order's other fields: address, PIN code, ordering party, meta
/// values, start time and validity.
fn check_delivery(c: &mut Fields, body: &Map<String, Value>) {
    if let Some(address) = c.text(body, "address", "address", true)
        && address.chars().count() > 500
    {
        c.fail("address must be at most 500 characters".into());
    }
    if let Some(pin) = c.text(body, "pinCode", "pinCode", true)
        && (pin.len() != 6 || !pin.bytes().all(|b| b.is_ascii_digit()))
    {
        c.fail("pinCode must be 6 digits".into());
    }
    if let Some(party) = c.object(body, "orderingPartyInfo", "orderingPartyInfo", true) {
        c.known(
            party,
            "orderingPartyInfo.",
            &["orderingPartyId", "orderingPartyType"],
        );
        c.text(
            party,
            "orderingPartyId",
            "orderingPartyInfo.orderingPartyId",
            true,
        );
        c.text(
            party,
            "orderingPartyType",
            "orderingPartyInfo.orderingPartyType",
            false,
        );
    }
    if let Some(meta) = c.object(body, "metaValues", "metaValues", false) {
        for (key, value) in meta {
            if !value.is_string() {
                c.fail(format!("metaValues.{key} must be text"));
            }
        }
    }
    if let Some(start) = c.text(body, "processStartTime", "processStartTime", true) {
        let exact = start.len() == 19
            && chrono::NaiveDateTime::parse_from_str(start, "%Y-%m-%d %H:%M:%S").is_ok();
        if !exact {
            c.fail("processStartTime must be in the format YYYY-MM-DD HH:mm:ss".into());
        }
    }
    c.whole(body, "validity", "validity", true, 1, 3650);
}

/// The product lines: at least one, each checked (see [`product`]).
fn products_of(shared: &Shared, c: &mut Fields, body: &Map<String, Value>) -> Vec<StoredProduct> {
    match body.get("products") {
        None | Some(Value::Null) => {
            c.fail("At least one product is required".into());
            vec![]
        }
        Some(Value::Array(items)) if items.is_empty() => {
            c.fail("At least one product is required".into());
            vec![]
        }
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, item)| product(c, i, item, &shared.opts.create_fields))
            .collect(),
        Some(_) => {
            c.fail("products must be a list".into());
            vec![]
        }
    }
}

/// A create that passed the checks.
struct NewOrder<'a> {
    id: &'a str,
    branch: (&'a str, &'a str),
    products: Vec<StoredProduct>,
    /// The request as sent.
    whole: &'a Value,
}

/// Stores a checked order, unless the store is full or the tenant has it
/// (a duplicate, refused, or counted where the API takes duplicates).
fn store_order(shared: &Shared, tenant: &str, new: NewOrder<'_>) -> Reply {
    let now = Instant::now();
    let mut store = lock(&shared.store);
    if store.orders >= shared.opts.max_orders {
        return store_full();
    }
    let generated = shared.generated_kits();
    let Some(t) = store.tenant(tenant, generated) else {
        return store_full();
    };
    let order_id = new.id;
    if let Some(existing) = t.orders.get_mut(order_id) {
        if shared.opts.quirks.accept_duplicates {
            existing.creates += 1;
            t.extra_orders += 1;
            return Reply::ok("success");
        }
        existing.duplicate_creates += 1;
        t.duplicate_creates += 1;
        return Reply::error(
            StatusCode::CONFLICT,
            "order.already.exists",
            "Duplicate order",
            "An order with this orderId already exists for this tenant",
            vec![format!("orderId {order_id} already exists")],
        );
    }
    let seq = t.orders.len() as u64 + 1;
    let order = Order {
        branch_id: new.branch.0.to_owned(),
        branch_name: new.branch.1.to_owned(),
        products: new.products,
        // Compact: whitespace dropped, so stored requests stay small.
        request: new.whole.to_string().into_boxed_str(),
        created: now,
        created_at: now_text(),
        seq,
        pushed: 0,
        fails: store::order_fails(shared.opts.seed, tenant, order_id, shared.opts.failed_share),
        cancelled_at: None,
        duplicate_creates: 0,
        creates: 1,
    };
    t.orders.insert(order_id.to_owned(), order);
    store.orders += 1;
    Reply::ok("success")
}

/// Checks one product line, its fields named as `names` says (the
/// profile's `[create_fields]`, when the sandbox is given one); `None` when
/// it has errors (already noted).
pub(super) fn product(
    c: &mut Fields,
    i: usize,
    item: &Value,
    names: &crate::dcms::CreateFields,
) -> Option<StoredProduct> {
    let path = format!("products[{i}]");
    let Some(item) = item.as_object() else {
        c.fail(format!("{path} must be an object"));
        return None;
    };
    let before = c.errors.len();
    c.known(
        item,
        &format!("{path}."),
        &[
            "productId",
            "bin",
            &names.card_type,
            "quantity",
            &names.plastic_code,
            &names.pan_length,
            &names.pin_generation,
        ],
    );
    let product_id = c.text(item, "productId", &format!("{path}.productId"), true);
    let bin = c.text(item, "bin", &format!("{path}.bin"), true);
    if let Some(b) = bin
        && (!(b.len() == 6 || b.len() == 8) || !b.bytes().all(|d| d.is_ascii_digit()))
    {
        c.fail(format!("{path}.bin must be 6 or 8 digits"));
    }
    let ct = &names.card_type;
    let card_type = c.text(item, ct, &format!("{path}.{ct}"), false);
    if let Some(t) = card_type
        && !matches!(t, "PHYSICAL" | "VIRTUAL")
    {
        c.fail(format!("{path}.{ct} must be PHYSICAL or VIRTUAL"));
    }
    let quantity = c.whole(
        item,
        "quantity",
        &format!("{path}.quantity"),
        true,
        1,
        10_000,
    );
    check_card(c, item, &path, names);
    if c.errors.len() > before {
        return None;
    }
    Some(StoredProduct {
        product_id: product_id?.to_owned(),
        bin: bin?.to_owned(),
        card_type: card_type.unwrap_or("PHYSICAL").to_owned(),
        quantity: u32::try_from(quantity?).ok()?,
    })
}

/// A product line's card fields: plastic code, PAN length, PIN
/// generation (in the profile's format).
fn check_card(
    c: &mut Fields,
    item: &Map<String, Value>,
    path: &str,
    names: &crate::dcms::CreateFields,
) {
    let pc = &names.plastic_code;
    c.text(item, pc, &format!("{path}.{pc}"), true);
    let pl = &names.pan_length;
    if let Some(n) = c.whole(item, pl, &format!("{path}.{pl}"), false, 12, 19)
        && n != 16
        && n != 19
    {
        c.fail(format!("{path}.{pl} must be 16 or 19"));
    }
    let pg = &names.pin_generation;
    match names.pin_generation_format {
        crate::dcms::PinFormat::YesNo => {
            if let Some(p) = c.text(item, pg, &format!("{path}.{pg}"), false)
                && !matches!(p, "Y" | "N")
            {
                c.fail(format!("{path}.{pg} must be Y or N"));
            }
        }
        crate::dcms::PinFormat::Boolean => {
            if item.get(pg.as_str()).is_some_and(|v| !v.is_boolean()) {
                c.fail(format!("{path}.{pg} must be true or false"));
            }
        }
    }
}

pub(super) fn store_full() -> Reply {
    Reply::error(
        StatusCode::INSUFFICIENT_STORAGE,
        "sandbox.store.full",
        "Sandbox full",
        "The sandbox holds as many orders or tenants as it may (--max-orders)",
        vec![],
    )
}

pub(super) fn order_not_found(order_id: &str) -> Reply {
    Reply::error(
        StatusCode::NOT_FOUND,
        "order.not.found",
        "Order not found",
        "No order with this orderId exists for this tenant",
        vec![format!("orderId {order_id} not found")],
    )
}

/// `POST /card-order/cancel`.
pub(super) fn cancel(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(body, "", &["orderId", "branchId"]);
    let order_id = c.text(body, "orderId", "orderId", true);
    let branch_id = c.text(body, "branchId", "branchId", true);
    let (Some(order_id), Some(branch_id)) = (order_id, branch_id) else {
        return Err(c.into_errors());
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    let now = Instant::now();
    let mut store = lock(&shared.store);
    let order = store
        .tenants
        .get_mut(tenant)
        .and_then(|t| t.orders.get_mut(order_id));
    let Some(order) = order else {
        return Ok(order_not_found(order_id));
    };
    if order.branch_id != branch_id {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            "order.branch.mismatch",
            "Branch mismatch",
            "The branchId does not match the branch that placed the order",
            vec![format!(
                "branchId {branch_id} did not place order {order_id}"
            )],
        ));
    }
    let status = order.status(shared.opts.advance_after, now);
    let cancellable = status == "RECEIVED" || (status == "PENDING" && shared.opts.cancel_pending);
    if !cancellable {
        return Ok(Reply::error(
            StatusCode::BAD_REQUEST,
            "ORD003",
            "Order cannot be cancelled",
            "The order is not in a cancellable state",
            vec![format!("Order status is {status} and cannot be cancelled")],
        ));
    }
    order.cancelled_at = Some(now_text());
    Ok(Reply::ok("Order cancelled successfully"))
}

/// `POST /card-order/fetchStatus`.
pub(super) fn fetch_status(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(body, "", &["cardOrderId"]);
    let id = c.text(body, "cardOrderId", "cardOrderId", true);
    let Some(id) = id.filter(|_| c.errors.is_empty()) else {
        return Err(c.into_errors());
    };
    if shared.opts.quirks.lookup_always_null {
        return Ok(Reply::ok(Value::Null));
    }
    let now = Instant::now();
    let store = lock(&shared.store);
    let Some(order) = store.tenants.get(tenant).and_then(|t| t.orders.get(id)) else {
        if shared.opts.quirks.unknown_as_null {
            return Ok(Reply::ok(Value::Null));
        }
        return Ok(order_not_found(id));
    };
    let status = order.status(shared.opts.advance_after, now);
    let skew = u32::from(shared.opts.quirks.lookup_other_products);
    let products: Vec<Value> = order
        .products
        .iter()
        .map(|p| {
            json!({
                "binNumber": p.bin.parse::<u64>().unwrap_or(0),
                "cardType": p.card_type,
                "corporateName": order.branch_name,
                "noOfCard": p.quantity + skew,
                "productId": p.product_id,
                "status": status,
            })
        })
        .collect();
    Ok(Reply::ok(json!({
        "cardOrderName": id,
        "status": status,
        "tenantName": tenant,
        "productDetails": products,
    })))
}

/// Largest `pageSize` the inventory answers with.
pub(super) const MAX_PAGE_SIZE: i64 = 500;

/// `POST /inventory/fetchCardOrderDetailsFromInventory`: the stored create
/// requests ("the original order request data") of the orders that match,
/// a page at a time (`pageNo` from 1, `pageSize` default 10), with
/// `pagination: {pageNo, pageSize, totalElements, totalPages}`. Filters:
/// `orderIds[]`, `branchId`, `orderingPartyId` (at least one of them);
/// `refType`, `fromDate`, `toDate` are accepted and ignored. An order
/// created twice (duplicates accepted) is listed once per create.
pub(super) fn inventory(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let query = Query::of(body)?;
    let (page_no, page_size) = (query.page_no, query.page_size);
    let found = query.found(shared, tenant);
    let total = found.len() as i64;
    let pages = (total + page_size - 1) / page_size;
    let start = usize::try_from((page_no - 1).saturating_mul(page_size)).unwrap_or(usize::MAX);
    let page: Vec<Value> = found
        .into_iter()
        .skip(start)
        .take(page_size as usize)
        .map(|(_, v)| v)
        .collect();
    let mut reply = Reply::ok(Value::Array(page));
    reply.body.pagination = Some(json!({
        "pageNo": page_no,
        "pageSize": page_size,
        "totalElements": total,
        "totalPages": pages,
    }));
    Ok(reply)
}

/// An inventory query: which orders, and which page.
struct Query<'a> {
    ids: Option<Vec<&'a str>>,
    branch: Option<&'a str>,
    party: Option<&'a str>,
    page_no: i64,
    page_size: i64,
}

impl<'a> Query<'a> {
    /// The query in `body`, or what is wrong with it.
    fn of(body: &'a Map<String, Value>) -> Result<Query<'a>, Vec<String>> {
        let mut c = Fields::default();
        c.known(
            body,
            "",
            &[
                "refType",
                "orderIds",
                "branchId",
                "orderingPartyId",
                "fromDate",
                "toDate",
                "pageNo",
                "pageSize",
            ],
        );
        let ids: Option<Vec<&str>> = match body.get("orderIds") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => {
                let texts: Vec<&str> = items.iter().filter_map(Value::as_str).collect();
                if texts.len() != items.len() {
                    c.fail("orderIds must be a list of text".into());
                }
                Some(texts)
            }
            Some(_) => {
                c.fail("orderIds must be a list of text".into());
                None
            }
        };
        let branch = c.text(body, "branchId", "branchId", false);
        let party = c.text(body, "orderingPartyId", "orderingPartyId", false);
        for key in ["refType", "fromDate", "toDate"] {
            c.text(body, key, key, false);
        }
        let page_no = c
            .whole(body, "pageNo", "pageNo", false, 1, i64::MAX)
            .unwrap_or(1);
        let page_size = c
            .whole(body, "pageSize", "pageSize", false, 1, MAX_PAGE_SIZE)
            .unwrap_or(10);
        if ids.is_none() && branch.is_none() && party.is_none() {
            c.fail("At least one of orderIds, branchId or orderingPartyId is required".into());
        }
        if !c.errors.is_empty() {
            return Err(c.errors);
        }
        Ok(Query {
            ids,
            branch,
            party,
            page_no,
            page_size,
        })
    }

    /// The tenant's orders that match, each as its request (once per
    /// create the API took), first created first.
    fn found(&self, shared: &Shared, tenant: &str) -> Vec<(u64, Value)> {
        let skew = i64::from(shared.opts.quirks.lookup_other_products);
        let store = lock(&shared.store);
        let mut found: Vec<(u64, Value)> = Vec::new();
        let Some(t) = store.tenants.get(tenant) else {
            return found;
        };
        let matches = |o: &Order, request: &Value| {
            self.branch.is_none_or(|b| o.branch_id == b)
                && self.party.is_none_or(|p| {
                    request["orderingPartyInfo"]["orderingPartyId"].as_str() == Some(p)
                })
        };
        let mut push = |o: &Order| {
            let mut request: Value = serde_json::from_str(&o.request).unwrap_or(Value::Null);
            if !matches(o, &request) {
                return;
            }
            if skew != 0
                && let Some(products) = request["products"].as_array_mut()
            {
                for p in products {
                    let q = p["quantity"].as_i64().unwrap_or(0);
                    p["quantity"] = Value::from(q + skew);
                }
            }
            for _ in 0..o.creates {
                found.push((o.seq, request.clone()));
            }
        };
        match &self.ids {
            Some(ids) => {
                let mut seen = std::collections::HashSet::new();
                for id in ids {
                    if seen.insert(*id)
                        && let Some(o) = t.orders.get(*id)
                    {
                        push(o);
                    }
                }
            }
            None => t.orders.values().for_each(&mut push),
        }
        found.sort_by_key(|(seq, _)| *seq);
        found
    }
}
