//! The DCMS API's request and response types (`shared/dcms-api.md`), with
//! the API's own field names. Where the docs do not name a field (plastic
//! code, PAN length, PIN generation, card type on create) the names are the
//! ones the docs' other endpoints use; see the README.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
