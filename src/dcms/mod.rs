//! The DCMS API: its request and response types (`shared/dcms-api.md`),
//! with the API's own field names, and the HTTP client (`client`). Where the docs do not name a field (plastic
//! code, PAN length, PIN generation, card type on create) the names are the
//! ones the docs' other endpoints use; see the manual (docs/src/operator/sending.md).

mod auth;
mod client;
pub mod probe;
mod wire;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use auth::{Credentials, jwt_lifetime};

pub use client::{
    Client, ClientOpts, TlsOpts, check_base_url, is_loopback, plain_http, platform_has_roots,
};
pub use wire::{
    Answer, Failure, FailureKind, Secret, describe_body, describe_error, describe_error_of,
};

/// The create body's product field names the docs do not give (plastic
/// code, PAN length, PIN generation, card type) and how `pinGeneration` is
/// encoded: a profile's `[create_fields]` table, so that what the bank's
/// Postman collection says is configuration, not a code change. The
/// defaults are the names the docs' other endpoints use.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CreateFields {
    pub card_type: String,
    pub plastic_code: String,
    pub pan_length: String,
    pub pin_generation: String,
    /// `"YN"` (`"Y"` / `"N"`) or `"boolean"` (`true` / `false`).
    pub pin_generation_format: PinFormat,
}

/// How `pinGeneration` is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
pub enum PinFormat {
    #[default]
    #[serde(rename = "YN")]
    YesNo,
    #[serde(rename = "boolean")]
    Boolean,
}

impl Default for CreateFields {
    fn default() -> Self {
        CreateFields {
            card_type: "cardType".into(),
            plastic_code: "plasticCode".into(),
            pan_length: "panLength".into(),
            pin_generation: "pinGeneration".into(),
            pin_generation_format: PinFormat::YesNo,
        }
    }
}

impl CreateFields {
    /// A product line as the create body carries it.
    pub fn product(&self, p: &Product) -> serde_json::Map<String, serde_json::Value> {
        let pin = match self.pin_generation_format {
            PinFormat::YesNo => serde_json::Value::from(p.pin_generation.as_str()),
            PinFormat::Boolean => serde_json::Value::from(p.pin_generation == "Y"),
        };
        [
            (
                "productId".to_string(),
                serde_json::Value::from(p.product_id.as_str()),
            ),
            ("bin".into(), p.bin.as_str().into()),
            (self.card_type.clone(), p.card_type.as_str().into()),
            ("quantity".into(), p.quantity.into()),
            (self.plastic_code.clone(), p.plastic_code.as_str().into()),
            (self.pan_length.clone(), p.pan_length.into()),
            (self.pin_generation.clone(), pin),
        ]
        .into_iter()
        .collect()
    }
}

/// A `POST /card-order` body kept as its JSON text (a million orders as
/// structs would take three times the memory), with its product lines
/// (what the ledger fingerprints), whatever names the body gives them.
#[derive(Debug, Clone)]
pub struct OrderBody {
    pub order_id: String,
    pub json: Box<serde_json::value::RawValue>,
    pub products: Vec<Product>,
}

impl OrderBody {
    /// The body of `order` with the product fields named by `fields`.
    pub fn new(order: &CardOrderRequest, fields: &CreateFields) -> serde_json::Result<OrderBody> {
        let json = if *fields == CreateFields::default() {
            serde_json::value::to_raw_value(order)?
        } else {
            let mut value = serde_json::to_value(order)?;
            value["products"] = order
                .products
                .iter()
                .map(|p| serde_json::Value::Object(fields.product(p)))
                .collect();
            serde_json::value::to_raw_value(&value)?
        };
        Ok(OrderBody {
            order_id: order.order_id.clone(),
            json,
            products: order.products.clone(),
        })
    }
}

impl Serialize for OrderBody {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(s)
    }
}

/// `POST /card-order` body (§2.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CardOrderRequest {
    pub order_id: String,
    pub branch_info: BranchInfo,
    /// Parts separated by `~`.
    pub address: String,
    pub pin_code: String,
    pub ordering_party_info: OrderingPartyInfo,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub meta_values: BTreeMap<String, String>,
    /// `YYYY-MM-DD HH:mm:ss`.
    pub process_start_time: String,
    /// Days.
    pub validity: u32,
    pub products: Vec<Product>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BranchInfo {
    pub branch_id: String,
    pub branch_name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderingPartyInfo {
    pub ordering_party_id: String,
    pub ordering_party_type: String,
}

/// One product line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Product {
    pub product_id: String,
    pub bin: String,
    pub card_type: String,
    pub quantity: u32,
    pub plastic_code: String,
    pub pan_length: u32,
    /// `Y` or `N`.
    pub pin_generation: String,
}

/// The envelope of every DCMS answer (§1 "Response envelope"): `result`,
/// `exception` and `pagination` are always present, `null` when unused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub result: Option<T>,
    pub exception: Option<ApiException>,
    #[serde(default)]
    pub pagination: Option<serde_json::Value>,
}

impl<T> Envelope<T> {
    /// A successful answer.
    pub fn ok(result: T) -> Self {
        Envelope {
            result: Some(result),
            exception: None,
            pagination: None,
        }
    }

    /// A refused request.
    pub fn error(exception: ApiException) -> Self {
        Envelope {
            result: None,
            exception: Some(exception),
            pagination: None,
        }
    }
}

/// The `exception` object. The API Library's examples use shape A
/// (`errorCode, shortMessage, detailMessage, httpStatus, fieldError[],
/// languageCode`); the generic error pages use shape B (`errorCode,
/// errorMessage, httpStatus`). Every field is optional so both read, and
/// unknown fields are ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ApiException {
    #[serde(default)]
    pub error_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    /// `"BAD_REQUEST"`, `"400 BAD_REQUEST"`, or a number: read as given.
    #[serde(default)]
    pub http_status: Option<serde_json::Value>,
    /// Missing, `null`, one string, a list of strings, or a list of objects
    /// (each read as its `field: message`).
    #[serde(default, deserialize_with = "field_errors")]
    pub field_error: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language_code: Option<String>,
}

/// `POST /card-order/cancel` body (§2.4).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelRequest {
    pub order_id: String,
    pub branch_id: String,
}

/// `POST /card-order/fetchStatus` body (§2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FetchStatusRequest {
    pub card_order_id: String,
}

/// `fetchStatus` result (§2.5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrderStatus {
    pub card_order_name: String,
    pub status: String,
    #[serde(default)]
    pub tenant_name: Option<String>,
    #[serde(default)]
    pub product_details: Vec<ProductStatus>,
}

/// One product of a `fetchStatus` result. `binNumber` is a JSON number
/// there, unlike the string `bin` of the create request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProductStatus {
    pub bin_number: u64,
    #[serde(default)]
    pub card_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub corporate_name: Option<String>,
    pub no_of_card: u32,
    pub product_id: String,
    pub status: String,
}

/// `POST /kit-manager/upgradeCard` body (§3.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeRequest {
    pub entity_id: String,
    pub kit_no: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery_address: Option<String>,
    #[serde(default)]
    pub kit_info: Vec<KitInfo>,
}

/// The card wanted by an upgrade.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KitInfo {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub card_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plastic_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tier_type: Option<String>,
}

/// `upgradeCard` result: the customer and the new card(s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpgradeResult {
    pub entity_id: String,
    #[serde(default)]
    pub kit_info: Vec<IssuedKit>,
}

/// A card as `upgradeCard` returns it. `encryptedCardNumber` is read so it
/// can be dropped on purpose; it never reaches a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IssuedKit {
    #[serde(default)]
    pub account_no: Option<u64>,
    #[serde(default)]
    pub bin: Option<String>,
    #[serde(default)]
    pub card_category: Option<String>,
    /// Masked, `608040XXXXXX6384`.
    #[serde(default)]
    pub card_number: Option<String>,
    #[serde(default)]
    pub card_status: Option<String>,
    #[serde(default)]
    pub card_type: Option<String>,
    #[serde(default)]
    pub encrypted_card_number: Option<String>,
    #[serde(default)]
    pub entity_id: Option<String>,
    #[serde(default)]
    pub exp_date: Option<String>,
    pub kit_no: String,
    #[serde(default)]
    pub network_type: Option<String>,
    #[serde(default)]
    pub product_id: Option<String>,
    #[serde(default)]
    pub product_name: Option<String>,
}

/// `fieldError` in any of the shapes seen: missing or `null` (none), a
/// string, a list of strings, or a list of objects such as `{"field":
/// "pinCode", "message": "must be 6 digits"}`.
fn field_errors<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    use serde_json::Value;
    fn text(v: &Value) -> Option<String> {
        match v {
            Value::Null => None,
            Value::String(s) => Some(s.clone()),
            Value::Object(m) => {
                let get = |keys: &[&str]| {
                    keys.iter()
                        .find_map(|k| m.get(*k).and_then(Value::as_str))
                        .map(str::to_string)
                };
                let field = get(&["field", "fieldName", "name", "path"]);
                let message = get(&["message", "errorMessage", "defaultMessage", "detail"]);
                Some(match (field, message) {
                    (Some(f), Some(m)) => format!("{f}: {m}"),
                    (None, Some(m)) => m,
                    _ => Value::Object(m.clone()).to_string(),
                })
            }
            other => Some(other.to_string()),
        }
    }
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => items.iter().filter_map(text).collect(),
        other => text(&other).into_iter().collect(),
    })
}
