//! The kit endpoints: card upgrades and the kits of an order.

use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::envelope::Reply;
use super::faults::lock;
use super::fields::{Fields, expiry_text};
use super::orders::store_full;
use super::shared::Shared;
use super::store;

/// `POST /kit-manager/upgradeCard`.
pub(super) fn upgrade(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(
        body,
        "",
        &["entityId", "kitNo", "deliveryAddress", "kitInfo"],
    );
    let entity_id = c.text(body, "entityId", "entityId", true);
    let kit_no = c.text(body, "kitNo", "kitNo", true);
    if let Some(d) = c.text(body, "deliveryAddress", "deliveryAddress", false)
        && !matches!(d, "PERMANENT" | "COMMUNICATION")
    {
        c.fail("deliveryAddress must be PERMANENT or COMMUNICATION".into());
    }
    let info = kit_info(&mut c, body);
    let (Some(entity_id), Some(kit_no)) = (entity_id, kit_no) else {
        return Err(c.into_errors());
    };
    if !c.errors.is_empty() {
        return Err(c.errors);
    }
    Ok(replace_kit(shared, tenant, entity_id, kit_no, info))
}

/// The card wanted (`kitInfo`, at most one): alias, card type, plastic
/// code and tier, each if given.
fn kit_info<'v>(c: &mut Fields, body: &'v Map<String, Value>) -> [Option<&'v str>; 4] {
    let mut wanted: Option<&Map<String, Value>> = None;
    match body.get("kitInfo") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() <= 1 => {
            if let Some(item) = items.first() {
                match item.as_object() {
                    Some(o) => wanted = Some(o),
                    None => c.fail("kitInfo[0] must be an object".into()),
                }
            }
        }
        Some(Value::Array(_)) => c.fail("kitInfo may describe one card only".into()),
        Some(_) => c.fail("kitInfo must be a list".into()),
    }
    let mut info = [None; 4];
    if let Some(w) = wanted {
        c.known(
            w,
            "kitInfo[0].",
            &["aliasName", "cardType", "plasticCode", "tierType"],
        );
        for (slot, key) in info
            .iter_mut()
            .zip(["aliasName", "cardType", "plasticCode", "tierType"])
        {
            *slot = c.text(w, key, &format!("kitInfo[0].{key}"), false);
        }
        if info[0].is_some_and(|a| a.chars().count() > 30) {
            c.fail("kitInfo[0].aliasName must be at most 30 characters".into());
        }
        if info[1].is_some_and(|t| !matches!(t, "PHYSICAL" | "VIRTUAL")) {
            c.fail("kitInfo[0].cardType must be PHYSICAL or VIRTUAL".into());
        }
    }
    info
}

/// The entity's kit `kit_no`, if it has it and it can be upgraded in its
/// status; else the refusal.
fn upgradable(t: &store::Tenant, entity_id: &str, kit_no: &str) -> Result<store::Kit, Reply> {
    let old = match t.kits.get(kit_no) {
        Some(k) if k.entity_id == entity_id => k.clone(),
        _ => {
            return Err(Reply::error(
                StatusCode::BAD_REQUEST,
                "MCC007",
                "valid kit not found",
                "No valid kit found for this kitNo and entityId",
                vec!["Invalid Kit No".into()],
            ));
        }
    };
    if !matches!(old.status.as_str(), "ASSIGNED" | "ACTIVE" | "INACTIVE") {
        return Err(Reply::error(
            StatusCode::BAD_REQUEST,
            "invalid.kit.info",
            "Invalid kit",
            "The kit cannot be upgraded in its current status",
            vec![format!(
                "Kit {kit_no} is {} and cannot be upgraded",
                old.status
            )],
        ));
    }
    Ok(old)
}

/// Replaces the entity's kit `kit_no` by a new one, as `info` asks (else
/// as the old one was), unless there is no such kit or it cannot be
/// upgraded in its status.
fn replace_kit(
    shared: &Shared,
    tenant: &str,
    entity_id: &str,
    kit_no: &str,
    info: [Option<&str>; 4],
) -> Reply {
    let [alias, card_type, plastic, tier] = info;
    let mut store = lock(&shared.store);
    let generated = shared.generated_kits();
    let Some(t) = store.tenant(tenant, generated) else {
        return store_full();
    };
    let old = match upgradable(t, entity_id, kit_no) {
        Ok(k) => k,
        Err(refused) => return refused,
    };
    let new_no = t.next_kit_no();
    let (masked, encrypted) = store::card_numbers(shared.opts.seed, tenant, &new_no, &old.bin);
    let card_type = card_type.unwrap_or(&old.card_type).to_owned();
    let plastic = plastic
        .map(str::to_owned)
        .or_else(|| old.plastic_code.clone());
    let new_kit = store::Kit {
        kit_no: new_no.clone(),
        entity_id: entity_id.to_owned(),
        status: "ASSIGNED".into(),
        card_type: card_type.clone(),
        bin: old.bin.clone(),
        plastic_code: plastic.clone(),
        tier_type: tier.map(str::to_owned),
        alias_name: alias.map(str::to_owned),
        replaced_by: None,
        replaces: Some(kit_no.to_owned()),
    };
    if let Some(k) = t.kits.get_mut(kit_no) {
        k.status = "REPLACED".into();
        k.replaced_by = Some(new_no.clone());
    }
    t.kits.insert(new_no.clone(), new_kit);
    t.upgrades += 1;
    let product = format!("{}_{card_type}", plastic.as_deref().unwrap_or("2003"));
    let account_no = u64::from_str_radix(&encrypted[..8], 16).unwrap_or(0) % 10_000_000 + 1_000_000;
    Reply::ok(json!({
        "entityId": entity_id,
        "kitInfo": [{
            "accountNo": account_no,
            "bin": old.bin,
            "cardCategory": "DEBIT",
            "cardNumber": masked,
            "cardStatus": "ASSIGNED",
            "cardType": card_type,
            "encryptedCardNumber": encrypted,
            "entityId": entity_id,
            "expDate": expiry_text(),
            "kitNo": new_no,
            "networkType": "RUPAY",
            "productId": product,
            "productName": product,
        }],
    }))
}

/// `POST /kit-manager/fetchKitsByEntityId` (§3.3): the customer's kits.
pub(super) fn fetch_kits(
    shared: &Shared,
    tenant: &str,
    body: &Map<String, Value>,
) -> Result<Reply, Vec<String>> {
    let mut c = Fields::default();
    c.known(body, "", &["entityId"]);
    let entity = c.text(body, "entityId", "entityId", true);
    let Some(entity) = entity.filter(|_| c.errors.is_empty()) else {
        return Err(c.into_errors());
    };
    let mut store = lock(&shared.store);
    let generated = shared.generated_kits();
    let Some(t) = store.tenant(tenant, generated) else {
        return Ok(store_full());
    };
    let kits: Vec<Value> = t
        .kits
        .values()
        .filter(|k| k.entity_id == entity)
        .map(|k| {
            let (masked, _) = store::card_numbers(shared.opts.seed, tenant, &k.kit_no, &k.bin);
            json!({
                "kitNo": k.kit_no,
                "entityId": k.entity_id,
                "cardStatus": k.status,
                "cardType": k.card_type,
                "cardNumber": masked,
                "bin": k.bin,
                "tierType": k.tier_type,
            })
        })
        .collect();
    if kits.is_empty() {
        return Ok(Reply::error(
            StatusCode::NOT_FOUND,
            "entity.not.found",
            "Entity not found",
            "No customer with this entityId has kits for this tenant",
            vec![format!("entityId {entity} not found")],
        ));
    }
    Ok(Reply::ok(Value::Array(kits)))
}
