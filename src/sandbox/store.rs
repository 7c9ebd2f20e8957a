//! The sandbox's data, kept per tenant: card orders with their life
//! (RECEIVED → PENDING → PROCESSED → SUCCESS, or → FAILED; CANCELLED from
//! RECEIVED) and a kit inventory for upgrades. One tenant's data is never
//! reachable from another's.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;
use sha2::{Digest, Sha256};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The states of an order, in the order they are walked.
const SUCCEEDS: [&str; 4] = ["RECEIVED", "PENDING", "PROCESSED", "SUCCESS"];
const FAILS: [&str; 3] = ["RECEIVED", "PENDING", "FAILED"];
pub const CANCELLED: &str = "CANCELLED";

/// A product line as stored.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredProduct {
    pub product_id: String,
    pub bin: String,
    pub card_type: String,
    pub quantity: u32,
}

/// One created order.
#[derive(Debug)]
pub struct Order {
    pub branch_id: String,
    pub branch_name: String,
    pub products: Vec<StoredProduct>,
    /// The create request as received (compact JSON), for inspection.
    pub request: Box<str>,
    pub created: Instant,
    pub created_at: String,
    /// Position in the tenant's order of creation, from 1.
    pub seq: u64,
    /// Steps added by `POST /_sandbox/advance`.
    pub pushed: u32,
    /// Whether it ends FAILED (decided from the seed at creation).
    pub fails: bool,
    /// Set when cancelled: the state is then frozen.
    pub cancelled_at: Option<String>,
    /// Creates refused because this order id already existed.
    pub duplicate_creates: u32,
    /// Creates that stored this order id: 1, or more when duplicates are
    /// accepted (`Quirks::accept_duplicates`): each one more order.
    pub creates: u32,
}

impl Order {
    /// The state now, from the clock and the manual pushes.
    pub fn status(&self, advance_after: Option<Duration>, now: Instant) -> &'static str {
        if self.cancelled_at.is_some() {
            return CANCELLED;
        }
        let by_clock = match advance_after {
            Some(step) if !step.is_zero() => {
                (now.duration_since(self.created).as_nanos() / step.as_nanos()) as u64
            }
            _ => 0,
        };
        let steps = (by_clock + u64::from(self.pushed)) as usize;
        let path: &[&'static str] = if self.fails { &FAILS } else { &SUCCEEDS };
        path[steps.min(path.len() - 1)]
    }

    /// Whether another step would change the state.
    pub fn is_final(&self, advance_after: Option<Duration>, now: Instant) -> bool {
        matches!(
            self.status(advance_after, now),
            "SUCCESS" | "FAILED" | CANCELLED
        )
    }
}

/// A card kit of the inventory.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kit {
    pub kit_no: String,
    pub entity_id: String,
    pub status: String,
    pub card_type: String,
    pub bin: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plastic_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tier_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alias_name: Option<String>,
    /// For a REPLACED kit: the kit that replaced it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaced_by: Option<String>,
    /// For a kit issued by an upgrade: the kit it replaced.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub replaces: Option<String>,
}

/// A kit from the kits file, for one tenant.
#[derive(Debug, Clone)]
pub struct KitSeed {
    pub tenant: String,
    pub kit: Kit,
}

/// Reads a kits file: CSV with the header
/// `tenant,entity_id,kit_no[,card_type][,status][,bin]`.
pub fn read_kits(path: &Path) -> Result<Vec<KitSeed>, String> {
    crate::files::regular(path).map_err(|e| e.to_string())?;
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| e.to_string())?;
    let headers = reader.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(tenant), Some(entity), Some(kit_no)) =
        (col("tenant"), col("entity_id"), col("kit_no"))
    else {
        return Err(format!(
            "the header must have tenant, entity_id and kit_no; found: {}",
            headers.iter().collect::<Vec<_>>().join(", ")
        ));
    };
    let (card_type, status, bin) = (col("card_type"), col("status"), col("bin"));
    let mut kits = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        let line = record.position().map_or(0, |p| p.line());
        let get = |i: Option<usize>| i.and_then(|i| record.get(i)).filter(|v| !v.is_empty());
        let (Some(t), Some(e), Some(k)) = (get(Some(tenant)), get(Some(entity)), get(Some(kit_no)))
        else {
            return Err(format!(
                "line {line}: tenant, entity_id and kit_no are required"
            ));
        };
        let bin = get(bin).unwrap_or("608040");
        if !(bin.len() == 6 || bin.len() == 8) || !bin.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!(
                "line {line}, column bin: `{bin}` is not 6 or 8 digits"
            ));
        }
        kits.push(KitSeed {
            tenant: t.to_owned(),
            kit: Kit {
                kit_no: k.to_owned(),
                entity_id: e.to_owned(),
                status: get(status).unwrap_or("ASSIGNED").to_ascii_uppercase(),
                card_type: get(card_type).unwrap_or("PHYSICAL").to_ascii_uppercase(),
                bin: bin.to_owned(),
                plastic_code: None,
                tier_type: None,
                alias_name: None,
                replaced_by: None,
                replaces: None,
            },
        });
    }
    Ok(kits)
}

/// First kit number of generated inventories and of upgrades' new kits.
const GENERATED_KIT_BASE: u64 = 4_240_000_000;
const ISSUED_KIT_BASE: u64 = 5_240_000_000;

/// Generated kit `i` (1-based) of every tenant without a kits file.
pub fn generated_kit(i: u64) -> Kit {
    Kit {
        kit_no: (GENERATED_KIT_BASE + i).to_string(),
        entity_id: format!("ENT{i:06}"),
        status: "ASSIGNED".into(),
        card_type: "PHYSICAL".into(),
        bin: "608040".into(),
        plastic_code: None,
        tier_type: None,
        alias_name: None,
        replaced_by: None,
        replaces: None,
    }
}

/// One tenant's data.
#[derive(Debug, Default)]
pub struct Tenant {
    pub orders: HashMap<String, Order>,
    pub kits: BTreeMap<String, Kit>,
    pub duplicate_creates: u64,
    /// Duplicate creates accepted as further orders (a quirk).
    pub extra_orders: u64,
    pub upgrades: u64,
    issued: u64,
}

impl Tenant {
    /// A kit number not yet used by this tenant, for an upgrade.
    pub fn next_kit_no(&mut self) -> String {
        loop {
            self.issued += 1;
            let no = (ISSUED_KIT_BASE + self.issued).to_string();
            if !self.kits.contains_key(&no) {
                return no;
            }
        }
    }
}

/// A uniform draw in `[0, 1)` from the seed and what is being decided.
pub fn uniform(seed: u64, key: u64, n: u32, salt: u8) -> f64 {
    let mut bytes = [0u8; 13];
    bytes[..8].copy_from_slice(&key.to_le_bytes());
    bytes[8..12].copy_from_slice(&n.to_le_bytes());
    bytes[12] = salt;
    (xxh3_64_with_seed(&bytes, seed) >> 11) as f64 / (1u64 << 53) as f64
}

/// Most tenants the sandbox keeps data for, so memory stays bounded.
pub const MAX_TENANTS: usize = 10_000;

/// Every tenant's data.
#[derive(Debug, Default)]
pub struct Store {
    pub tenants: BTreeMap<String, Tenant>,
    pub orders: usize,
}

impl Store {
    /// Builds the store with the kits file's inventories.
    pub fn new(kits: Option<&[KitSeed]>) -> Store {
        let mut store = Store::default();
        for seed in kits.unwrap_or_default() {
            store
                .tenants
                .entry(seed.tenant.clone())
                .or_default()
                .kits
                .insert(seed.kit.kit_no.clone(), seed.kit.clone());
        }
        store
    }

    /// The tenant's data, created on first use with `generated` kits when
    /// there is no kits file; `None` when [`MAX_TENANTS`] are known already.
    pub fn tenant(&mut self, name: &str, generated: Option<u32>) -> Option<&mut Tenant> {
        if !self.tenants.contains_key(name) && self.tenants.len() >= MAX_TENANTS {
            return None;
        }
        Some(self.tenants.entry(name.to_owned()).or_insert_with(|| {
            let mut t = Tenant::default();
            for i in 1..=u64::from(generated.unwrap_or(0)) {
                let kit = generated_kit(i);
                t.kits.insert(kit.kit_no.clone(), kit);
            }
            t
        }))
    }
}

/// Whether an order ends FAILED: a seeded draw per tenant and order id.
pub fn order_fails(seed: u64, tenant: &str, order_id: &str, share: f64) -> bool {
    if share <= 0.0 {
        return false;
    }
    let key = xxhash_rust::xxh3::xxh3_64(format!("{tenant}\u{0}{order_id}").as_bytes());
    uniform(seed, key, 0, 9) < share
}

/// The masked number and a stand-in for the encrypted number of a new card.
pub fn card_numbers(seed: u64, tenant: &str, kit_no: &str, bin: &str) -> (String, String) {
    let digest = Sha256::new()
        .chain_update(seed.to_le_bytes())
        .chain_update(tenant.as_bytes())
        .chain_update([0])
        .chain_update(kit_no.as_bytes())
        .finalize();
    let last4 = u16::from_le_bytes([digest[0], digest[1]]) % 10_000;
    let hidden = 16 - bin.len().min(12) - 4;
    let masked = format!("{bin}{}{last4:04}", "X".repeat(hidden));
    (masked, hex::encode(digest))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(fails: bool) -> Order {
        Order {
            branch_id: "1".into(),
            branch_name: "Main".into(),
            products: vec![],
            request: "{}".into(),
            created: Instant::now(),
            created_at: String::new(),
            seq: 1,
            pushed: 0,
            fails,
            cancelled_at: None,
            duplicate_creates: 0,
            creates: 1,
        }
    }

    #[test]
    fn orders_walk_their_path_and_stop_at_the_end() {
        let now = Instant::now();
        let mut o = order(false);
        let seen: Vec<_> = (0..6)
            .map(|_| {
                let s = o.status(None, now);
                o.pushed += 1;
                s
            })
            .collect();
        assert_eq!(
            seen,
            [
                "RECEIVED",
                "PENDING",
                "PROCESSED",
                "SUCCESS",
                "SUCCESS",
                "SUCCESS"
            ]
        );
        let mut f = order(true);
        f.pushed = 2;
        assert_eq!(f.status(None, now), "FAILED");
        assert!(f.is_final(None, now));
    }

    #[test]
    fn the_clock_moves_orders_and_cancel_freezes_them() {
        let mut o = order(false);
        let step = Duration::from_secs(10);
        let later = o.created + Duration::from_secs(25);
        assert_eq!(o.status(Some(step), o.created), "RECEIVED");
        assert_eq!(o.status(Some(step), later), "PROCESSED");
        o.cancelled_at = Some("now".into());
        assert_eq!(o.status(Some(step), later), CANCELLED);
    }

    #[test]
    fn failed_share_is_seeded_per_order() {
        let fails = (0..10_000)
            .filter(|i| order_fails(3, "T", &format!("O{i}"), 0.2))
            .count();
        assert!((1_800..2_200).contains(&fails), "{fails}");
        assert_eq!(
            order_fails(3, "T", "O1", 0.2),
            order_fails(3, "T", "O1", 0.2)
        );
        assert!(!order_fails(3, "T", "O1", 0.0));
    }

    #[test]
    fn card_numbers_are_masked_like_the_docs() {
        let (masked, encrypted) = card_numbers(0, "T", "5240000001", "608040");
        assert_eq!(masked.len(), 16);
        assert!(masked.starts_with("608040XXXXXX"));
        assert!(masked[12..].bytes().all(|b| b.is_ascii_digit()));
        assert_eq!(encrypted.len(), 64);
        let (eight, _) = card_numbers(0, "T", "5240000001", "60804012");
        assert!(eight.starts_with("60804012XXXX"));
    }

    #[test]
    fn the_kits_file_is_read_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("kits.csv");
        std::fs::write(
            &good,
            "tenant,entity_id,kit_no,status\nACME,C1,K1,active\nACME,C2,K2,\n",
        )
        .unwrap();
        let kits = read_kits(&good).unwrap();
        assert_eq!(kits.len(), 2);
        assert_eq!(kits[0].kit.status, "ACTIVE");
        assert_eq!(kits[1].kit.status, "ASSIGNED");
        let bad = dir.path().join("bad.csv");
        std::fs::write(&bad, "tenant,kit_no\nACME,K1\n").unwrap();
        assert!(read_kits(&bad).unwrap_err().contains("entity_id"));
        std::fs::write(&bad, "tenant,entity_id,kit_no,bin\nACME,C1,K1,12\n").unwrap();
        assert!(read_kits(&bad).unwrap_err().contains("line 2"));
    }
}
