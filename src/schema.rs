//! The sheet kinds' schemas: for an order, cancel or upgrade sheet, every
//! column with its header spellings, whether it is required, whether its
//! values are codes whose leading zeros matter, and what the template
//! shows of it. The header matcher (`columns`), the checks (`validate`)
//! and the templates (`template`) all read these tables; an order
//! sheet's [`Field`](crate::columns::Field) is a row of [`ORDER`].

/// The `order_ref` of the template's example row: a sheet still holding
/// it is refused.
pub const EXAMPLE_ORDER_REF: &str = "EXAMPLE - delete this row";

/// One column of a sheet kind: its header and other spellings, whether
/// it is required, and what the template shows of it.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    pub name: &'static str,
    pub required: bool,
    /// Formatted as Text in the template (Excel keeps what is typed).
    pub id: bool,
    /// A code of digits whose leading zeros matter: a number cell that
    /// may have lost them is checked.
    pub code: bool,
    /// The allowed values, when there is a fixed list.
    pub choices: &'static [&'static str],
    pub example: &'static str,
    pub rule: &'static str,
    /// Header spellings a sheet may use besides `name` (compared after
    /// [`crate::columns::normalize`]); the order sheet's are its fields'.
    pub aliases: &'static [&'static str],
    /// The most characters a value may have (a cancel or upgrade sheet's
    /// rule; an order sheet's are `validate`'s).
    pub max_chars: usize,
    /// `choices` are the common values of an open code, not all it may
    /// be: the template's list warns, and lets another value stand.
    pub open: bool,
    /// A whole number from .0 to .1: the template holds it as a number.
    pub whole: Option<(u32, u32)>,
}

const fn col(
    name: &'static str,
    required: bool,
    id: bool,
    choices: &'static [&'static str],
    example: &'static str,
    rule: &'static str,
) -> Column {
    Column {
        name,
        required,
        id,
        choices,
        example,
        rule,
        code: false,
        aliases: &[],
        max_chars: usize::MAX,
        open: false,
        whole: None,
    }
}

impl Column {
    /// The column with other header spellings it goes by.
    const fn also(self, aliases: &'static [&'static str]) -> Column {
        Column { aliases, ..self }
    }

    /// The column with at most `max_chars` characters a value.
    const fn at_most(self, max_chars: usize) -> Column {
        Column { max_chars, ..self }
    }

    /// The column is a code whose leading zeros matter.
    const fn code(self) -> Column {
        Column { code: true, ..self }
    }

    /// The column's choices are common values, not all it may hold.
    const fn open(self) -> Column {
        Column { open: true, ..self }
    }

    /// The column holds a whole number from `min` to `max`.
    const fn whole(self, min: u32, max: u32) -> Column {
        Column {
            whole: Some((min, max)),
            ..self
        }
    }
}

/// Every `pin_generation` value `validate` accepts (in any case).
pub const PIN_GENERATION: [&str; 8] = ["Y", "N", "yes", "no", "true", "false", "1", "0"];

pub const ORDER: [Column; 17] = [
    col(
        "order_ref",
        false,
        true,
        &[],
        EXAMPLE_ORDER_REF,
        "Optional. Rows with the same value form one order, whose id it becomes; without it, rows are grouped by branch, address, PIN code, start time, validity and ordered_by. The example row's value makes validate and submit refuse it: delete the example.",
    )
    .also(&["orderref", "orderreference", "orderid", "orderno", "ordernumber", "ref"]),
    col(
        "branch_id",
        true,
        true,
        &[],
        "00123",
        "Digits; leading zeros are kept. Sent as branchInfo.branchId.",
    )
    .also(&["branchid", "branchcode", "branchno", "branchnumber", "branch", "solid"])
    .code(),
    col(
        "branch_name",
        true,
        false,
        &[],
        "Pune Camp Branch",
        "At most 100 characters.",
    )
    .also(&["branchname"]),
    col(
        "product_id",
        true,
        true,
        &[],
        "01",
        "The product to order (a rules file may list the allowed ones).",
    )
    .also(&["productid", "productcode", "product"])
    .code(),
    col("bin", true, true, &[], "412345", "6 or 8 digits.")
    .also(&["bin", "binnumber", "binno", "bincode"])
    .code(),
    col(
        "card_type",
        true,
        false,
        &["PHYSICAL", "VIRTUAL"],
        "PHYSICAL",
        "PHYSICAL or VIRTUAL.",
    )
    .also(&["cardtype", "type"]),
    col(
        "quantity",
        true,
        false,
        &[],
        "100",
        "A whole number from 1 to 500 (a rules file may lower the maximum).",
    )
    .whole(1, 500)
    .also(&["quantity", "qty", "noofcards", "numberofcards", "cardcount", "count"]),
    col(
        "plastic_code",
        true,
        true,
        &[],
        "0001",
        "The card plastic; leading zeros are kept.",
    )
    .also(&["plasticcode", "plastic", "plasticid"])
    .code(),
    col("pan_length", true, false, &["16", "19"], "16", "16 or 19.")
    .also(&["panlength", "panlen", "pan"]),
    col(
        "pin_generation",
        true,
        false,
        &PIN_GENERATION,
        "Y",
        "Y or N (yes/no, true/false and 1/0 are accepted too, in any case).",
    )
    .also(&["pingeneration", "pingen", "generatepin"]),
    col(
        "delivery_address",
        true,
        false,
        &[],
        "Flat 12, Lake View Towers~Camp~Pune~Maharashtra",
        "Parts separated by ~, at least 3 non-empty parts, at most 175 characters.",
    )
    .also(&["deliveryaddress", "address", "shippingaddress"]),
    col("pin_code", true, true, &[], "411001", "6 digits.")
    .also(&["pincode", "postalcode", "postcode", "zipcode", "zip"])
    .code(),
    col(
        "process_start_time",
        true,
        false,
        &[],
        "2026-12-01 09:00:00",
        "YYYY-MM-DD HH:mm:ss, a real date and time; an Excel date cell is converted exactly.",
    )
    .also(&["processstarttime", "processstart", "starttime", "processingstarttime"]),
    col(
        "validity_days",
        true,
        false,
        &[],
        "365",
        "A whole number of days from 1 to 3650.",
    )
    .whole(1, 3650)
    .also(&["validitydays", "validity", "validdays"]),
    col(
        "ordered_by",
        true,
        false,
        &[],
        "Priya Iyer",
        "Who places the order (orderingPartyInfo.orderingPartyId).",
    )
    .also(&["orderedby", "orderingparty", "orderingpartyid", "requestedby"]),
    col(
        "ordering_party_type",
        false,
        false,
        &["BANK"],
        "BANK",
        "Optional; BANK when empty. Another code in capitals (A-Z and _) is accepted too.",
    )
    .open()
    .also(&["orderingpartytype", "partytype"]),
    col(
        "meta.campaign",
        false,
        false,
        &[],
        "WINTER-2026",
        "Optional. Every meta.<key> column is sent as metaValues.<key>; rename or add such columns freely.",
    ),
];

pub const CANCEL: [Column; 3] = [
    col(
        "order_id",
        true,
        true,
        &[],
        "DCB-a50e708e61bb05c51b41",
        "The id of the order to cancel, as the submit report's order_id column shows it.",
    )
    .also(&["orderid", "cardorderid", "orderref", "orderno"])
    .at_most(100),
    col(
        "branch_id",
        true,
        true,
        &[],
        "00123",
        "The branch that placed the order; it must match.",
    )
    .also(&["branchid", "branchcode", "branch"])
    .at_most(50),
    col(
        "reason",
        false,
        false,
        &[],
        "Branch asked to cancel",
        "Optional; echoed in the report, not sent.",
    )
    .also(&["reason", "remarks", "comment"]),
];

pub const UPGRADE: [Column; 7] = [
    col(
        "entity_id",
        true,
        true,
        &[],
        "ENT000001",
        "The customer that holds the card.",
    )
    .also(&["entityid", "entity", "customerid", "customer"])
    .at_most(50),
    col(
        "kit_no",
        true,
        true,
        &[],
        "4240000001",
        "The kit (card) to upgrade; it is replaced by a new one.",
    )
    .also(&["kitno", "kitnumber", "kit"])
    .at_most(50),
    col(
        "delivery_address_type",
        true,
        false,
        &["PERMANENT", "COMMUNICATION"],
        "PERMANENT",
        "Where the new card goes: PERMANENT or COMMUNICATION.",
    )
    .also(&["deliveryaddresstype", "deliveryaddress", "addresstype"]),
    col(
        "alias_name",
        false,
        false,
        &[],
        "PRIYA IYER",
        "The name printed on the card: at most 30 characters.",
    )
    .also(&["aliasname", "alias", "nameoncard", "embossname"])
    .at_most(30),
    col(
        "card_type",
        true,
        false,
        &["PHYSICAL", "VIRTUAL"],
        "PHYSICAL",
        "PHYSICAL or VIRTUAL.",
    )
    .also(&["cardtype", "type"]),
    col(
        "plastic_code",
        true,
        true,
        &[],
        "4566",
        "The new card's plastic; leading zeros are kept.",
    )
    .also(&["plasticcode", "plastic"])
    .at_most(20),
    col(
        "tier_type",
        true,
        false,
        &[],
        "SILVER",
        "The tier to move to, e.g. SILVER (the values are set per bank).",
    )
    .also(&["tiertype", "tier"])
    .at_most(30),
];
