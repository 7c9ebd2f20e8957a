//! Group: rows become orders, by `order_ref` or else by the order key
//! (branch, address, pin code, start time, validity, ordered by), with
//! deterministic order ids. Cross-row rules live here: duplicate product
//! lines inside one order, and rows that disagree with the rest of their
//! order. A valid row of an order that has an invalid row is held back.
//!
//! Nothing here depends on the order of the rows: the same rows in any
//! order give the same groups, statuses and ids.

use std::collections::HashMap;

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::columns::{Columns, Field};
use crate::dcms::{BranchInfo, CardOrderRequest, OrderingPartyInfo, Product};
use crate::read::Row;
use crate::validate::{Checker, OrderKey, Problem, RowCheck, whole_number};

/// What became of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Passed every check; its order is ready.
    Valid,
    /// Failed a check; the `errors` column says which.
    Invalid,
    /// Valid, but its order has an invalid row, so the order is held back.
    Held,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "VALID",
            Status::Invalid => "INVALID",
            Status::Held => "HELD",
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    number: u64,
    group: u32,
    product: u64,
    order_fields: u64,
}

/// A grouped row: its number and its order.
struct Placed {
    number: u64,
    group: u32,
}

struct GroupAcc {
    key: OrderKey,
    order_ref: Option<Box<str>>,
    order_fields: u64,
    conflict: bool,
    /// How many rows the order has so far.
    rows: u32,
}

/// Collects checked rows, in input order.
#[derive(Default)]
pub struct Grouper {
    slots: Vec<Slot>,
    problems: HashMap<u32, Vec<Problem>>,
    warnings: HashMap<u32, Vec<Problem>>,
    groups: Vec<GroupAcc>,
    /// The orders by key: each entry is an index into `groups`, whose key
    /// it is (4 bytes an order, not the 20 a map of keys would take: for
    /// ten million rows that is hundreds of megabytes).
    index: hashbrown::HashTable<u32>,
}

/// Order keys are already uniform hashes (a SHA-256 prefix): their first
/// eight bytes are the hash.
fn key_hash(key: &OrderKey) -> u64 {
    let mut first = [0u8; 8];
    first.copy_from_slice(&key[..8]);
    u64::from_le_bytes(first)
}

/// The order-level values of one row, to say which field disagrees:
/// `(column, field name, value)`.
pub type OrderValues = Vec<(usize, String, String)>;

impl Grouper {
    pub fn new() -> Self {
        Self::default()
    }

    /// A grouper with room for about `rows` rows, so that its tables do not
    /// grow (each growth copies them) while the rows come in.
    pub fn with_capacity(rows: usize) -> Self {
        // Whatever a file's size suggests, no more than two million rows
        // ahead. Orders have a row or more each; the index is looked in at
        // random, so it starts at half the rows, no larger than it would
        // grow to for most files (the cache holds more of it).
        let rows = rows.min(1 << 21);
        Grouper {
            slots: Vec::with_capacity(rows),
            groups: Vec::with_capacity(rows / 2),
            index: hashbrown::HashTable::with_capacity(rows / 2),
            ..Self::default()
        }
    }

    /// Adds the next data row.
    pub fn push(&mut self, check: RowCheck) {
        let idx = self.slots.len() as u32;
        let next = self.groups.len() as u32;
        // The rows of an order mostly come together: the last row's order
        // is found without a look in the index, which is large and slow.
        let group = match self.slots.last() {
            Some(last) if self.groups[last.group as usize].key == check.key => last.group,
            _ => {
                let groups = &self.groups;
                let key_of = |g: &u32| &groups[*g as usize].key;
                *self
                    .index
                    .entry(
                        key_hash(&check.key),
                        |g| *key_of(g) == check.key,
                        |g| key_hash(key_of(g)),
                    )
                    .or_insert(next)
                    .get()
            }
        };
        if group == next {
            self.groups.push(GroupAcc {
                key: check.key,
                order_ref: check.order_ref,
                order_fields: check.order_fields,
                conflict: false,
                rows: 1,
            });
        } else {
            let g = &mut self.groups[group as usize];
            g.rows += 1;
            if g.order_fields != check.order_fields {
                g.conflict = true;
            }
        }
        if !check.problems.is_empty() {
            self.problems.insert(idx, check.problems);
        }
        if !check.warnings.is_empty() {
            self.warnings.insert(idx, check.warnings);
        }
        self.slots.push(Slot {
            number: check.number,
            group,
            product: check.product,
            order_fields: check.order_fields,
        });
    }

    pub fn rows(&self) -> usize {
        self.slots.len()
    }

    /// Row numbers of the rows whose order has rows that disagree on an
    /// order-level field; their values are needed to say which.
    pub fn conflicted_rows(&self) -> Vec<u64> {
        self.slots
            .iter()
            .filter(|s| self.groups[s.group as usize].conflict)
            .map(|s| s.number)
            .collect()
    }

    /// Applies the cross-row rules and fixes every row's status and order.
    /// `values` holds the order-level values of the rows
    /// [`conflicted_rows`](Self::conflicted_rows) named.
    pub fn finish(
        mut self,
        batch_id: &str,
        allow_partial: bool,
        values: &HashMap<u64, OrderValues>,
    ) -> Grouping {
        self.index = hashbrown::HashTable::new(); // not needed any more: free it first
        self.mark_conflicts(values);
        self.mark_duplicate_products();

        // Of each row only its number and order are kept from here (the
        // fingerprints served the grouping): the rows' room is given back
        // before the orders' is taken.
        let slots: Vec<Placed> = std::mem::take(&mut self.slots)
            .into_iter()
            .map(|s| Placed {
                number: s.number,
                group: s.group,
            })
            .collect();
        let mut groups = orders_of(std::mem::take(&mut self.groups), batch_id);
        let (invalid, first_invalid) = mark_invalid(&slots, &self.problems, &mut groups);
        let statuses: Vec<Status> = slots
            .par_iter()
            .zip(&invalid)
            .map(|(s, &invalid)| {
                if invalid {
                    Status::Invalid
                } else if groups[s.group as usize].invalid > 0 && !allow_partial {
                    Status::Held
                } else {
                    Status::Valid
                }
            })
            .collect();
        let counts = Counts {
            rows: slots.len() as u64,
            invalid: self.problems.len() as u64,
            warnings: self.warnings.len() as u64,
            ..Counts::of_orders(&groups, allow_partial)
        };
        groups.shrink_to_fit();
        Grouping {
            slots,
            statuses,
            problems: self.problems,
            warnings: self.warnings,
            groups,
            first_invalid,
            counts,
        }
    }

    /// Rows of one order that disagree on an order-level field: the values
    /// most rows share win (ties go to the smallest fingerprint, so the
    /// choice does not depend on row order); the other rows are invalid.
    fn mark_conflicts(&mut self, values: &HashMap<u64, OrderValues>) {
        let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
        for (i, s) in self.slots.iter().enumerate() {
            if self.groups[s.group as usize].conflict {
                members.entry(s.group).or_default().push(i as u32);
            }
        }
        for rows in members.values() {
            let mut tally: HashMap<u64, (usize, u32)> = HashMap::new();
            for &i in rows {
                let e = tally
                    .entry(self.slots[i as usize].order_fields)
                    .or_insert((0, i));
                e.0 += 1;
            }
            let (&winner, &(_, model)) = tally
                .iter()
                .max_by(|a, b| a.1.0.cmp(&b.1.0).then(b.0.cmp(a.0)))
                .expect("a conflicted group has rows");
            let model_number = self.slots[model as usize].number;
            let agreeing: Vec<u64> = rows
                .iter()
                .filter(|&&i| self.slots[i as usize].order_fields == winner)
                .map(|&i| self.slots[i as usize].number)
                .take(HELD_ROWS_SHOWN)
                .collect();
            let empty = Vec::new();
            let model_values = values.get(&model_number).unwrap_or(&empty);
            for &i in rows {
                let s = self.slots[i as usize];
                if s.order_fields == winner {
                    continue;
                }
                let mine = values.get(&s.number).unwrap_or(&empty);
                let mut found = false;
                for ((col, field, v), (_, _, want)) in mine.iter().zip(model_values) {
                    if v != want {
                        found = true;
                        self.problems.entry(i).or_default().push(Problem::new(
                            Some(*col),
                            field.clone(),
                            format!(
                                "`{}` differs from `{}` on row{} {} of the same order; one order has one \
                                 branch, address, pin code and start time",
                                crate::quote::value(v),
                                crate::quote::value(want),
                                if agreeing.len() > 1 { "s" } else { "" },
                                list(&agreeing)
                            ),
                        ));
                    }
                }
                if !found {
                    self.problems.entry(i).or_default().push(Problem::new(
                        None,
                        "row",
                        format!(
                            "its order-level values differ from rows {} of the same order",
                            list(&agreeing)
                        ),
                    ));
                }
            }
        }
    }

    /// Two rows of one order with the same product line are both invalid.
    fn mark_duplicate_products(&mut self) {
        // Only an order of two rows or more can repeat a product line.
        let mut lines: Vec<(u32, u64, u32)> = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| self.groups[s.group as usize].rows > 1)
            .map(|(i, s)| (s.group, s.product, i as u32))
            .collect();
        lines.par_sort_unstable();
        for run in lines.chunk_by(|a, b| a.0 == b.0 && a.1 == b.1) {
            if run.len() < 2 {
                continue;
            }
            for &(_, _, i) in run {
                let others: Vec<u64> = run
                    .iter()
                    .filter(|o| o.2 != i)
                    .map(|o| self.slots[o.2 as usize].number)
                    .take(HELD_ROWS_SHOWN)
                    .collect();
                self.problems.entry(i).or_default().push(Problem::new(
                    None,
                    "product",
                    format!(
                        "duplicate product line: row{} {} of the same order {} the same product_id, bin, \
                         plastic_code, card_type and pan_length; merge them into one row",
                        if others.len() > 1 { "s" } else { "" },
                        list(&others),
                        if others.len() > 1 { "have" } else { "has" },
                    ),
                ));
            }
        }
    }
}

const HELD_ROWS_SHOWN: usize = 5;

pub fn list(numbers: &[u64]) -> String {
    numbers
        .iter()
        .map(u64::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The id of an order without an `order_ref`: `DCB-` and 20 hex digits of
/// SHA-256(batch id, 0x1E, order-key digest). The same file (batch) and the
/// same key always give the same id, so a re-run cannot create a second
/// order; a new batch id gives new ids.
pub fn order_id(batch_id: &str, key: &OrderKey) -> String {
    derived_id(&batch_prefix(batch_id), key)
        .as_str()
        .to_string()
}

fn batch_prefix(batch_id: &str) -> Sha256 {
    let mut h = Sha256::new();
    h.update(batch_id.as_bytes());
    h.update([0x1e]);
    h
}

fn derived_id(prefix: &Sha256, key: &OrderKey) -> OrderId {
    let mut h = prefix.clone();
    h.update(key);
    let d = h.finalize();
    let mut out = *b"DCB-00000000000000000000";
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in d[..10].iter().enumerate() {
        out[4 + 2 * i] = HEX[(b >> 4) as usize];
        out[5 + 2 * i] = HEX[(b & 15) as usize];
    }
    OrderId::Derived(out)
}

/// An order id, kept inline when derived (a million orders, no million
/// small strings).
#[derive(Debug, Clone)]
pub enum OrderId {
    Derived([u8; 24]),
    Ref(Box<str>),
}

impl OrderId {
    pub fn as_str(&self) -> &str {
        match self {
            // Always ASCII: `DCB-` and hex digits.
            OrderId::Derived(b) => std::str::from_utf8(b).unwrap_or("DCB-?"),
            OrderId::Ref(r) => r,
        }
    }
}

/// The orders of what the rows formed, their ids derived (a SHA-256 per
/// order, in parallel). Taken from the end a part at a time, each part's
/// room given back as it is done: the orders of ten million rows are
/// hundreds of megabytes, and not held twice.
fn orders_of(mut accs: Vec<GroupAcc>, batch_id: &str) -> Vec<Group> {
    const PART: usize = 1 << 18;
    let prefix = batch_prefix(batch_id);
    let mut groups = Vec::with_capacity(accs.len());
    while !accs.is_empty() {
        let part: Vec<Group> = accs
            .par_drain(accs.len().saturating_sub(PART)..)
            .map(|g| Group {
                id: match g.order_ref {
                    Some(r) => OrderId::Ref(r),
                    None => derived_id(&prefix, &g.key),
                },
                rows: g.rows,
                invalid: 0,
            })
            .collect();
        accs.shrink_to_fit();
        groups.par_extend(part.into_par_iter().rev());
    }
    groups.reverse();
    groups
}

/// Marks the invalid rows (those with `problems`), in input order (few:
/// one by one), and counts them in their orders; the first few of each
/// order, to show why it is held.
fn mark_invalid(
    slots: &[Placed],
    problems: &HashMap<u32, Vec<Problem>>,
    groups: &mut [Group],
) -> (Vec<bool>, HashMap<u32, Vec<u64>>) {
    let mut invalid_rows: Vec<u32> = problems.keys().copied().collect();
    invalid_rows.sort_unstable();
    let mut invalid = vec![false; slots.len()];
    let mut first_invalid: HashMap<u32, Vec<u64>> = HashMap::new();
    for &i in &invalid_rows {
        invalid[i as usize] = true;
        let s = &slots[i as usize];
        groups[s.group as usize].invalid += 1;
        let rows = first_invalid.entry(s.group).or_default();
        if rows.len() < HELD_ROWS_SHOWN {
            rows.push(s.number);
        }
    }
    (invalid, first_invalid)
}

/// One order.
#[derive(Debug, Clone)]
pub struct Group {
    pub id: OrderId,
    pub rows: u32,
    pub invalid: u32,
}

impl Group {
    pub fn order_id(&self) -> &str {
        self.id.as_str()
    }
}

/// How many rows and orders ended how.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Counts {
    /// Data rows (blank rows are not data rows).
    pub rows: u64,
    pub valid: u64,
    pub invalid: u64,
    pub held: u64,
    /// Rows with a warning (whatever their status).
    pub warnings: u64,
    /// Orders with at least one row to send.
    pub orders_ready: u64,
    /// Orders held back because of an invalid row.
    pub orders_held: u64,
}

impl Counts {
    /// The valid and held rows and the ready and held orders, from each
    /// order's rows: its valid rows are held when it has an invalid one
    /// (unless partial orders go).
    fn of_orders(groups: &[Group], allow_partial: bool) -> Counts {
        let mut counts = Counts::default();
        for g in groups {
            let good = u64::from(g.rows - g.invalid);
            if good == 0 {
                continue;
            }
            if g.invalid > 0 && !allow_partial {
                counts.held += good;
                counts.orders_held += 1;
            } else {
                counts.valid += good;
                counts.orders_ready += 1;
            }
        }
        counts
    }
}

/// Every row's status and order, in input order.
pub struct Grouping {
    slots: Vec<Placed>,
    statuses: Vec<Status>,
    problems: HashMap<u32, Vec<Problem>>,
    /// The rows' warnings (see [`RowCheck::warnings`]).
    warnings: HashMap<u32, Vec<Problem>>,
    groups: Vec<Group>,
    first_invalid: HashMap<u32, Vec<u64>>,
    pub counts: Counts,
}

/// What became of one row.
#[derive(Debug, Clone, Copy)]
pub struct RowOutcome<'a> {
    pub number: u64,
    pub status: Status,
    pub order_id: &'a str,
    pub group: u32,
    pub problems: &'a [Problem],
    /// The row's warnings.
    pub warnings: &'a [Problem],
    /// For a held row: the invalid rows that hold its order back.
    pub held_by: &'a [u64],
    pub invalid_in_order: u32,
}

impl Grouping {
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// The `i`-th data row's number.
    pub fn number(&self, i: usize) -> u64 {
        self.slots[i].number
    }

    /// The index of the data row numbered `number`, if there is one.
    pub fn index_of(&self, number: u64) -> Option<usize> {
        self.slots.binary_search_by_key(&number, |s| s.number).ok()
    }

    /// [`index_of`](Self::index_of), looked for first at `near`: the
    /// index after the last row's, when the rows come in order.
    pub fn index_near(&self, number: u64, near: usize) -> Option<usize> {
        match self.slots.get(near) {
            Some(s) if s.number == number => Some(near),
            _ => self.index_of(number),
        }
    }

    /// The `i`-th data row's outcome.
    pub fn row(&self, i: usize) -> RowOutcome<'_> {
        let s = &self.slots[i];
        let g = &self.groups[s.group as usize];
        let status = self.statuses[i];
        RowOutcome {
            number: s.number,
            status,
            order_id: g.order_id(),
            group: s.group,
            problems: if g.invalid == 0 {
                &[]
            } else {
                self.problems.get(&(i as u32)).map_or(&[], Vec::as_slice)
            },
            warnings: self.warnings.get(&(i as u32)).map_or(&[], Vec::as_slice),
            held_by: if status == Status::Held {
                self.first_invalid.get(&s.group).map_or(&[], Vec::as_slice)
            } else {
                &[]
            },
            invalid_in_order: g.invalid,
        }
    }

    pub fn groups(&self) -> &[Group] {
        &self.groups
    }

    /// Problems of all rows, in input order (for the console).
    pub fn problems(&self) -> impl Iterator<Item = (u64, &Problem)> {
        self.by_row(&self.problems)
    }

    /// Warnings of all rows, in input order (for the console).
    pub fn warnings(&self) -> impl Iterator<Item = (u64, &Problem)> {
        self.by_row(&self.warnings)
    }

    fn by_row<'s>(
        &'s self,
        of: &'s HashMap<u32, Vec<Problem>>,
    ) -> impl Iterator<Item = (u64, &'s Problem)> {
        let mut idx: Vec<u32> = of.keys().copied().collect();
        idx.sort_unstable();
        idx.into_iter().flat_map(move |i| {
            of[&i]
                .iter()
                .map(move |p| (self.slots[i as usize].number, p))
        })
    }
}

/// The `POST /card-order` body of the order whose first valid row is
/// `row`, without its products; an error only if a checked value does not
/// parse after all.
pub fn order_request(
    checker: &Checker<'_>,
    columns: &Columns,
    row: &Row<'_>,
    order_id: &str,
) -> Result<CardOrderRequest, String> {
    let v = |f| checker.value(row, f).into_owned();
    let party_type = v(Field::OrderingPartyType);
    Ok(CardOrderRequest {
        order_id: order_id.to_string(),
        branch_info: BranchInfo {
            branch_id: v(Field::BranchId),
            branch_name: v(Field::BranchName),
        },
        address: v(Field::DeliveryAddress),
        pin_code: v(Field::PinCode),
        ordering_party_info: OrderingPartyInfo {
            ordering_party_id: v(Field::OrderedBy),
            ordering_party_type: if party_type.is_empty() {
                "BANK".into()
            } else {
                party_type
            },
        },
        meta_values: columns
            .meta()
            .map(|(k, col)| (k.to_string(), row.cell(col).text.into_owned()))
            .filter(|(_, v)| !v.is_empty())
            .collect(),
        process_start_time: v(Field::ProcessStartTime),
        validity: number(checker, row, Field::ValidityDays)?,
        products: Vec::new(),
    })
}

/// The product line of a checked row.
pub fn product(checker: &Checker<'_>, row: &Row<'_>) -> Result<Product, String> {
    let v = |f| checker.value(row, f).into_owned();
    let pin = v(Field::PinGeneration);
    Ok(Product {
        product_id: v(Field::ProductId),
        bin: v(Field::Bin),
        card_type: v(Field::CardType),
        quantity: number(checker, row, Field::Quantity)?,
        plastic_code: v(Field::PlasticCode),
        pan_length: number(checker, row, Field::PanLength)?,
        pin_generation: Checker::pin_generation(&pin)
            .ok_or_else(|| unparsed(row, Field::PinGeneration, &pin))?
            .to_string(),
    })
}

/// A checked whole number, as sent.
fn number(checker: &Checker<'_>, row: &Row<'_>, field: Field) -> Result<u32, String> {
    let v = checker.value(row, field);
    whole_number(&v)
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| unparsed(row, field, &v))
}

fn unparsed(row: &Row<'_>, field: Field, value: &str) -> String {
    format!(
        "row {}: {} `{}` passed the checks but cannot be sent as it is",
        row.number(),
        field.name(),
        crate::quote::value(value)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn check(number: u64, key: u8, fields: u8, product: u8, bad: bool) -> RowCheck {
        RowCheck {
            number,
            problems: if bad {
                vec![Problem::new(
                    Some(0),
                    "quantity",
                    "must be between 1 and 500",
                )]
            } else {
                vec![]
            },
            warnings: vec![],
            key: [key; 16],
            order_ref: None,
            order_fields: u64::from(fields),
            product: u64::from(product),
        }
    }

    fn outcomes(rows: &[RowCheck], partial: bool) -> (Vec<(u64, Status, String)>, Counts) {
        let mut g = Grouper::new();
        for r in rows {
            g.push(r.clone());
        }
        let grouping = g.finish("batch", partial, &HashMap::new());
        let mut out: Vec<(u64, Status, String)> = (0..grouping.len())
            .map(|i| {
                let o = grouping.row(i);
                (o.number, o.status, o.order_id.to_string())
            })
            .collect();
        out.sort();
        (out, grouping.counts)
    }

    #[test]
    fn invalid_row_holds_its_order_only() {
        let rows = [
            check(2, 1, 0, 1, false),
            check(3, 1, 0, 2, true),
            check(4, 2, 0, 1, false),
        ];
        let (out, counts) = outcomes(&rows, false);
        let statuses: Vec<Status> = out.iter().map(|o| o.1).collect();
        assert_eq!(statuses, [Status::Held, Status::Invalid, Status::Valid]);
        assert_eq!((counts.orders_ready, counts.orders_held), (1, 1));
        let (out, _) = outcomes(&rows, true);
        assert_eq!(out[0].1, Status::Valid, "--allow-partial-orders");
    }

    /// Keys the index files under the same hash bits are still orders of
    /// their own; rows of one order apart from each other find it again.
    #[test]
    fn keys_that_share_their_hash_bits_stay_apart() {
        let keyed = |number: u64, last: u8| {
            let mut c = check(number, 7, 0, number as u8, false);
            c.key[15] = last;
            c
        };
        let rows = [
            keyed(2, 1),
            keyed(3, 2),
            keyed(4, 1),
            keyed(5, 3),
            keyed(6, 2),
        ];
        let (out, counts) = outcomes(&rows, false);
        assert_eq!(counts.orders_ready, 3);
        let id = |n: u64| out.iter().find(|o| o.0 == n).unwrap().2.clone();
        assert_eq!(id(2), id(4));
        assert_eq!(id(3), id(6));
        assert_ne!(id(2), id(3));
        assert_ne!(id(2), id(5));
    }

    #[test]
    fn duplicate_product_lines_are_both_invalid() {
        let rows = [
            check(2, 1, 0, 7, false),
            check(3, 1, 0, 8, false),
            check(4, 1, 0, 7, false),
            check(5, 2, 0, 7, false),
        ];
        let (out, _) = outcomes(&rows, false);
        let statuses: Vec<Status> = out.iter().map(|o| o.1).collect();
        assert_eq!(
            statuses,
            [
                Status::Invalid,
                Status::Held,
                Status::Invalid,
                Status::Valid
            ]
        );
    }

    #[test]
    fn majority_wins_a_disagreement() {
        let rows = [
            check(2, 1, 5, 1, false),
            check(3, 1, 6, 2, false),
            check(4, 1, 5, 3, false),
        ];
        let (out, _) = outcomes(&rows, true);
        let statuses: Vec<Status> = out.iter().map(|o| o.1).collect();
        assert_eq!(statuses, [Status::Valid, Status::Invalid, Status::Valid]);
    }

    #[test]
    fn order_ids_are_stable() {
        // Pinned: a change here would make re-runs of old files create
        // second orders.
        assert_eq!(
            order_id("batch-1", &[7u8; 16]),
            order_id("batch-1", &[7u8; 16])
        );
        assert_ne!(
            order_id("batch-1", &[7u8; 16]),
            order_id("batch-2", &[7u8; 16])
        );
        assert_eq!(order_id("batch-1", &[7u8; 16]).len(), 24);
        let mut h = Sha256::new();
        h.update(b"batch-1\x1e");
        h.update([7u8; 16]);
        assert_eq!(
            order_id("batch-1", &[7u8; 16]),
            format!("DCB-{}", &hex::encode(h.finalize())[..20])
        );
    }

    proptest! {
        /// Every row is in the outcome exactly once, the counts add up, and
        /// statuses and order ids do not depend on the order of the rows.
        #[test]
        fn grouping_is_independent_of_row_order(
            specs in prop::collection::vec((0u8..6, 0u8..2, 0u8..5, prop::bool::weighted(0.15)), 1..80),
            seed in any::<u64>(),
        ) {
            let rows: Vec<RowCheck> = specs
                .iter()
                .enumerate()
                .map(|(i, (k, f, p, bad))| check(i as u64 + 2, *k, *f, *p, *bad))
                .collect();
            let (a, ca) = outcomes(&rows, false);
            prop_assert_eq!(a.len(), rows.len());
            prop_assert_eq!(ca.valid + ca.invalid + ca.held, ca.rows);
            let numbers: std::collections::BTreeSet<u64> = a.iter().map(|o| o.0).collect();
            prop_assert_eq!(numbers.len(), rows.len());

            let mut shuffled = rows.clone();
            let mut state = seed | 1;
            for i in (1..shuffled.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                shuffled.swap(i, (state % (i as u64 + 1)) as usize);
            }
            let (b, cb) = outcomes(&shuffled, false);
            prop_assert_eq!(a, b);
            prop_assert_eq!(ca, cb);
        }
    }
}
