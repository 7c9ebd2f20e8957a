//! Pipeline: runs the stages over one input file — read, columns, validate
//! (in parallel, on rayon), group — and then lets later steps walk the rows
//! again with their outcomes (to write the report, or build the orders)
//! without having kept the file in memory.

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::columns::{self, Columns, Field, Role};
use crate::dcms::{BranchInfo, CardOrderRequest, OrderingPartyInfo, Product};
use crate::error::{Error, Result};
use crate::group::{Grouper, Grouping, OrderValues, RowOutcome, Status};
use crate::read::{self, ReadOpts, Row, Sheet, Spans, TextVerdict, Utf8Scan};
use crate::rules::Rules;
use crate::validate::{Checker, ORDER_FIELDS, WidthCensus};

/// What a check run needs besides the file.
#[derive(Debug, Clone, Default)]
pub struct CheckOpts {
    pub read: ReadOpts,
    pub rules: Rules,
    /// `--batch-id`; default: the input file's SHA-256.
    pub batch_id: Option<String>,
    /// `--allow-partial-orders`: send an order's valid rows even when
    /// another of its rows is invalid.
    pub allow_partial: bool,
}

/// A data row with what became of it.
pub type OutcomeRow<'a> = (Row<'a>, RowOutcome<'a>);

/// A data row's bytes (comma-separated input) and its index among the
/// data rows (see [`Checked::outcome`]).
pub type RawRow<'a> = (&'a [u8], usize);

/// A checked and grouped input file.
pub struct Checked {
    pub path: PathBuf,
    pub sheet: Sheet,
    pub columns: Columns,
    pub grouping: Grouping,
    /// SHA-256 of the input file's bytes, hex.
    pub input_sha256: String,
    pub input_bytes: u64,
    /// The `--batch-id` salt of the order ids; empty when none was given.
    pub batch_id: String,
    /// Where the blank rows below the header (not data rows, but counted)
    /// are among the rows the first pass mapped, data rows and blank ones,
    /// in order.
    blank: Vec<u64>,
    /// Where the rows are, for the passes after the first.
    spans: Spans,
    rules: Rules,
    typical_width: HashMap<Field, usize>,
    /// The input as the file system saw it before the first pass.
    stamp: FileStamp,
}

/// What the file system says of a file that changes when it is written:
/// its size, its modification time and (on Unix) which file it is.
#[derive(Debug, Clone, PartialEq)]
struct FileStamp {
    len: u64,
    modified: Option<std::time::SystemTime>,
    file: (u64, u64),
}

impl FileStamp {
    fn of(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        #[cfg(unix)]
        let file = {
            use std::os::unix::fs::MetadataExt;
            (meta.dev(), meta.ino())
        };
        #[cfg(not(unix))]
        let file = (0, 0);
        Ok(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            file,
        })
    }
}

/// Reads, checks and groups one input file.
pub fn check(path: &Path, opts: &CheckOpts) -> Result<Checked> {
    // Before any thread opens it: a FIFO would block them for good.
    crate::files::regular(path).map_err(|e| Error::io(path, e))?;
    // A CSV file's encoding is detected from its first MiB, and confirmed
    // over the whole file by the thread that hashes it while the rows are
    // read, instead of by a read of its own before them.
    let detect = opts.read.text.encoding.is_none();
    let mut quick = opts.clone();
    quick.read.text.encoding_from_head = detect;
    std::thread::scope(|s| {
        let mut hashing = Hashing {
            handle: Some(s.spawn(|| hash_input(path))),
            done: None,
        };
        let first = check_with_hash(path, &quick, &mut || hashing.get(path));
        match first {
            Ok(Attempt::Done(checked)) => return Ok(*checked),
            Ok(Attempt::Reread) => {}
            // An error met before the encoding was confirmed may come of
            // reading a file that is not UTF-8 as UTF-8.
            Err(e) => {
                let text = detect && read::sniff_kind(path)? == read::FileKind::Text;
                if !(text && hashing.get(path)?.text == TextVerdict::Other) {
                    return Err(e);
                }
            }
        }
        // Not UTF-8 after all: read it again, its encoding detected from
        // the whole file.
        match check_with_hash(path, opts, &mut || hashing.get(path))? {
            Attempt::Done(checked) => Ok(*checked),
            Attempt::Reread => Err(Error::input(path, "the encoding could not be settled")),
        }
    })
}

/// The input file's SHA-256 and size, and what its bytes say of its
/// encoding (for a CSV file).
#[derive(Debug, Clone)]
struct InputHash {
    sha256: String,
    bytes: u64,
    text: TextVerdict,
}

fn hash_input(path: &Path) -> Result<InputHash> {
    let mut scan = Utf8Scan::default();
    let (sha256, bytes) = sha256_reading(path, &mut |piece| scan.feed(piece))?;
    Ok(InputHash {
        sha256,
        bytes,
        text: scan.finish(),
    })
}

/// The input's hash, computed on a thread of its own: joined when first
/// asked for.
struct Hashing<'s> {
    handle: Option<std::thread::ScopedJoinHandle<'s, Result<InputHash>>>,
    done: Option<InputHash>,
}

impl Hashing<'_> {
    fn get(&mut self, path: &Path) -> Result<InputHash> {
        if let Some(h) = self.handle.take() {
            let hashed = h
                .join()
                .unwrap_or_else(|_| Err(Error::input(path, "hashing the file failed")))?;
            self.done = Some(hashed);
        }
        self.done
            .clone()
            .ok_or_else(|| Error::input(path, "hashing the file failed"))
    }
}

/// How a check run went: done, or to be read again, its encoding not what
/// the first MiB said.
enum Attempt {
    Done(Box<Checked>),
    Reread,
}

fn check_with_hash(
    path: &Path,
    opts: &CheckOpts,
    hash: &mut dyn FnMut() -> Result<InputHash>,
) -> Result<Attempt> {
    let t0 = std::time::Instant::now();
    let stamp = FileStamp::of(path)?;
    let mut found: Option<(u64, Vec<String>)> = None;
    let mut sheet = read::open(path, &opts.read, &mut |sheet: &Sheet| {
        let mut ok = false;
        let _ = sheet.head(columns::HEADER_SEARCH_ROWS, &mut |rows| {
            if let Some((n, cells)) = columns::locate_header(rows) {
                ok = Columns::from_headers(path, sheet, n, &cells).is_ok();
            }
        });
        ok
    })?;
    let mut first_rows: Vec<String> = Vec::new();
    sheet.head(columns::HEADER_SEARCH_ROWS, &mut |rows| {
        found = columns::locate_header(rows);
        if let Some(r) = rows.iter().find(|r| !r.is_blank()) {
            first_rows = (0..r.width().min(30))
                .map(|i| r.cell(i).text.into_owned())
                .collect();
        }
    })?;
    let Some((header_row, header_cells)) = found else {
        if first_rows.is_empty() {
            return Err(Error::input(
                path,
                format!("sheet `{}` is empty", sheet.name()),
            ));
        }
        let want: Vec<&str> = Field::ALL
            .iter()
            .filter(|f| f.required())
            .map(|f| f.name())
            .collect();
        return Err(Error::input(
            path,
            format!(
                "sheet `{}`: no header row among the first {} rows (a header names at least three of: {}); \
                 the first row reads: {}",
                sheet.name(),
                columns::HEADER_SEARCH_ROWS,
                want.join(", "),
                first_rows.join(" | ")
            ),
        ));
    };
    let columns = Columns::from_headers(path, &sheet, header_row, &header_cells)?;
    sheet.add_note(format!(
        "header on row {header_row}, {} columns",
        columns.len()
    ));
    let unknown: Vec<&str> = columns
        .roles
        .iter()
        .zip(&columns.headers)
        .filter(|(r, _)| **r == Role::Unknown)
        .map(|(_, h)| h.as_str())
        .collect();
    if !unknown.is_empty() {
        sheet.add_note(format!("columns kept as they are: {}", unknown.join(", ")));
    }

    let typical_width = if sheet.is_workbook() {
        let mut census = WidthCensus::default();
        sheet.scan(header_row, columns.len(), &mut |rows| {
            let counted = rows
                .par_iter()
                .fold(WidthCensus::default, |mut c, r| {
                    c.add(&columns, r);
                    c
                })
                .reduce(WidthCensus::default, WidthCensus::merge);
            census = std::mem::take(&mut census).merge(counted);
            Ok(())
        })?;
        census.typical()
    } else {
        HashMap::new()
    };

    timing("open", t0);
    let checker = Checker::new(&columns, &opts.rules, typical_width.clone());
    // Rows are checked on rayon while a thread of its own files the results
    // of the rows checked before, in order (a CSV piece's at a time).
    let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Option<crate::validate::RowCheck>>>(16);
    let rows_hint = sheet.rows_hint(stamp.len);
    let scanned = std::thread::scope(|s| -> Result<(Grouper, Vec<u64>, Spans)> {
        let filer = s.spawn(move || {
            let mut grouper = Grouper::with_capacity(rows_hint);
            let mut blank = Vec::new();
            for checks in rx {
                for c in checks {
                    match c {
                        Some(c) => grouper.push(c),
                        None => blank.push((grouper.rows() + blank.len()) as u64),
                    }
                }
            }
            (grouper, blank)
        });
        let check = |r: &Row<'_>| checker.check_unless_blank(r);
        let scanned = sheet.scan_map(header_row, columns.len(), &check, &mut |checks| {
            tx.send(checks)
                .map_err(|_| Error::input(path, "checking stopped unexpectedly"))
        });
        drop(tx);
        let (grouper, blank) = filer
            .join()
            .map_err(|_| Error::input(path, "checking stopped unexpectedly"))?;
        scanned.map(|spans| (grouper, blank, spans))
    });
    timing("check", t0);
    let input = hash()?;
    timing("hash", t0);
    if !sheet.confirm_encoding(input.text) {
        return Ok(Attempt::Reread);
    }
    let (grouper, blank, spans) = scanned?;
    if grouper.rows() == 0 {
        return Err(Error::input(
            path,
            format!(
                "sheet `{}` has a header on row {header_row} but no data rows below it",
                sheet.name()
            ),
        ));
    }

    let conflicted: HashSet<u64> = grouper.conflicted_rows().into_iter().collect();
    let mut values: HashMap<u64, OrderValues> = HashMap::new();
    if !conflicted.is_empty() {
        sheet.rescan(&spans, &mut |rows| {
            for r in rows.iter().filter(|r| conflicted.contains(&r.number())) {
                values.insert(r.number(), order_values(&checker, &columns, r));
            }
            Ok(())
        })?;
    }

    // Ids hang on the orders' checked content, salted only by a deliberate
    // `--batch-id`: the same orders get the same ids from any file.
    let batch_id = opts.batch_id.clone().unwrap_or_default();
    let grouping = grouper.finish(&batch_id, opts.allow_partial, &values);
    timing("group", t0);
    Ok(Attempt::Done(Box::new(Checked {
        path: path.to_path_buf(),
        sheet,
        columns,
        grouping,
        input_sha256: input.sha256,
        input_bytes: input.bytes,
        batch_id,
        blank,
        spans,
        rules: opts.rules.clone(),
        typical_width,
        stamp,
    })))
}

fn order_values(checker: &Checker<'_>, columns: &Columns, row: &Row<'_>) -> OrderValues {
    let mut v: OrderValues = ORDER_FIELDS
        .iter()
        .filter_map(|f| {
            columns
                .get(*f)
                .map(|c| (c, f.name().to_string(), checker.value(row, *f).into_owned()))
        })
        .collect();
    for (k, c) in columns.meta() {
        v.push((c, format!("meta.{k}"), row.cell(c).text.into_owned()));
    }
    v
}

/// Hands out the rows' outcomes in order, to a pass that must meet the same
/// rows as the first: any other row means the file changed in between.
struct Outcomes<'a> {
    checked: &'a Checked,
    next: usize,
}

impl<'a> Outcomes<'a> {
    /// The next rows, each with its outcome. A pass found them on lines
    /// `number(row)`; the outcomes are looked up in parallel, for each is a
    /// look at its order, anywhere in memory.
    fn next_batch<T: Send>(
        &mut self,
        rows: Vec<T>,
        number: impl Fn(&T) -> u64 + Sync,
    ) -> Result<Vec<(T, RowOutcome<'a>)>> {
        let grouping = &self.checked.grouping;
        let first = self.claim(rows.len())?;
        rows.into_par_iter()
            .enumerate()
            .map(|(k, row)| {
                let out = grouping.row(first + k);
                if out.number == number(&row) {
                    Ok((row, out))
                } else {
                    Err(Error::file_changed(&self.checked.path))
                }
            })
            .collect()
    }

    /// The index of the first of the next `n` rows, which a pass met: an
    /// error if the first pass found fewer.
    fn claim(&mut self, n: usize) -> Result<usize> {
        let first = self.next;
        if first + n > self.checked.grouping.len() {
            return Err(Error::file_changed(&self.checked.path));
        }
        self.next += n;
        Ok(first)
    }

    /// Every row met.
    fn finish(self) -> Result<()> {
        if self.next == self.checked.grouping.len() {
            Ok(())
        } else {
            Err(Error::file_changed(&self.checked.path))
        }
    }
}

/// SHA-256 and size of a file.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    sha256_reading(path, &mut |_| {})
}

/// SHA-256 and size of a file, its bytes also shown to `also` as read.
fn sha256_reading(path: &Path, also: &mut dyn FnMut(&[u8])) -> Result<(String, u64)> {
    crate::files::regular(path).map_err(|e| Error::io(path, e))?;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
        also(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), total))
}

impl Checked {
    /// An error if the input file was written to since the first pass
    /// began: the rows a later pass met may not be the rows checked, even
    /// where they are as long (a value edited in place).
    pub fn ensure_unchanged(&self) -> Result<()> {
        if FileStamp::of(&self.path)? == self.stamp {
            Ok(())
        } else {
            Err(Error::file_changed(&self.path))
        }
    }

    /// Walks every data row again, in input order and in batches, with its
    /// outcome.
    pub fn for_each_outcome(
        &self,
        f: &mut dyn FnMut(&[OutcomeRow<'_>]) -> Result<()>,
    ) -> Result<()> {
        let mut outcomes = self.outcomes();
        self.sheet.rescan(&self.spans, &mut |rows| {
            let rows: Vec<Row<'_>> = rows.iter().filter(|r| !r.is_blank()).copied().collect();
            f(&outcomes.next_batch(rows, Row::number)?)
        })?;
        outcomes.finish()
    }

    /// For a comma-separated input: walks every data row again, in input
    /// order and in batches, as the record's bytes, unparsed, with its
    /// index for [`Checked::outcome`] (see [`Sheet::rescan_raw`]). `None`
    /// for other inputs.
    ///
    /// The records are cut where the first pass found them to end, and the
    /// blank ones are where it found them: a file that changed since is
    /// known by its length here, by the records that do not parse as they
    /// did (for the few a caller parses), and by its size, time and inode
    /// before the caller commits what it wrote
    /// ([`Checked::ensure_unchanged`]).
    pub fn for_each_raw_outcome(
        &self,
        f: &mut dyn FnMut(&[RawRow<'_>]) -> Result<()>,
    ) -> Option<Result<()>> {
        let mut blank = self.blank.iter().peekable();
        let mut outcomes = self.outcomes();
        let walked = self.sheet.rescan_raw(&self.spans, &mut |first, records| {
            let kept: Vec<&[u8]> = (first..)
                .zip(records)
                .filter(|&(k, _)| blank.next_if_eq(&&(k as u64)).is_none())
                .map(|(_, &raw)| raw)
                .collect();
            let at = outcomes.claim(kept.len())?;
            let batch: Vec<RawRow<'_>> = kept.into_iter().zip(at..).collect();
            f(&batch)
        })?;
        Some(walked.and_then(|()| outcomes.finish()))
    }

    /// Blank rows below the header: not data rows, but counted.
    pub fn blank_rows(&self) -> u64 {
        self.blank.len() as u64
    }

    /// What became of the `i`-th data row.
    pub fn outcome(&self, i: usize) -> RowOutcome<'_> {
        self.grouping.row(i)
    }

    /// The outcomes of the data rows, to hand out as a pass meets the rows.
    fn outcomes(&self) -> Outcomes<'_> {
        Outcomes {
            checked: self,
            next: 0,
        }
    }

    /// The `POST /card-order` bodies of the orders that are ready, in the
    /// order their first row appears; products in row order.
    pub fn orders(&self) -> Result<Vec<CardOrderRequest>> {
        Ok(self
            .orders_by_group()?
            .into_iter()
            .map(|(_, o)| o)
            .collect())
    }

    /// [`Checked::orders`], each with its group index (see
    /// [`crate::group::RowOutcome::group`]).
    pub fn orders_by_group(&self) -> Result<Vec<(u32, CardOrderRequest)>> {
        let mut orders = Vec::new();
        self.for_each_order(&mut |g, order| {
            orders.push((g, order));
            Ok(())
        })?;
        orders.sort_unstable_by_key(|(g, _)| *g);
        Ok(orders)
    }

    /// Hands each ready order to `f` as soon as its last row has been read
    /// (rows of an order usually sit together), so a caller that keeps them
    /// compactly never holds every order as a struct at once. The order is
    /// that of their last rows; the group index says where each belongs.
    pub fn for_each_order(
        &self,
        f: &mut dyn FnMut(u32, CardOrderRequest) -> Result<()>,
    ) -> Result<()> {
        let checker = Checker::new(&self.columns, &self.rules, self.typical_width.clone());
        let groups = self.grouping.groups();
        let mut open: HashMap<u32, CardOrderRequest> = HashMap::new();
        self.for_each_outcome(&mut |batch| {
            for (row, out) in batch.iter().filter(|(_, o)| o.status == Status::Valid) {
                let order = open
                    .entry(out.group)
                    .or_insert_with(|| self.order_for(&checker, row, out));
                order.products.push(product_for(&checker, row));
                let g = &groups[out.group as usize];
                if order.products.len() as u32 >= g.rows - g.invalid
                    && let Some(done) = open.remove(&out.group)
                {
                    f(out.group, done)?;
                }
            }
            Ok(())
        })?;
        // Cannot happen (every valid row was counted), but never drop one.
        let mut rest: Vec<(u32, CardOrderRequest)> = open.into_iter().collect();
        rest.sort_unstable_by_key(|(g, _)| *g);
        for (g, order) in rest {
            f(g, order)?;
        }
        Ok(())
    }

    fn order_for(&self, c: &Checker<'_>, row: &Row<'_>, out: &RowOutcome<'_>) -> CardOrderRequest {
        let v = |f| c.value(row, f).into_owned();
        let party_type = v(Field::OrderingPartyType);
        CardOrderRequest {
            order_id: out.order_id.to_string(),
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
            meta_values: self
                .columns
                .meta()
                .map(|(k, col)| (k.to_string(), row.cell(col).text.into_owned()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            process_start_time: v(Field::ProcessStartTime),
            validity: v(Field::ValidityDays).parse().unwrap_or(0),
            products: Vec::new(),
        }
    }

    /// The A1 reference of a cell of this sheet.
    pub fn cell_ref(&self, col: usize, row: u64) -> String {
        self.sheet.cell_ref(col, row)
    }
}

fn product_for(c: &Checker<'_>, row: &Row<'_>) -> Product {
    let v = |f| c.value(row, f).into_owned();
    Product {
        product_id: v(Field::ProductId),
        bin: v(Field::Bin),
        card_type: v(Field::CardType),
        quantity: v(Field::Quantity).parse().unwrap_or(0),
        plastic_code: v(Field::PlasticCode),
        pan_length: v(Field::PanLength).parse().unwrap_or(0),
        pin_generation: Checker::pin_generation(&v(Field::PinGeneration))
            .unwrap_or("N")
            .to_string(),
    }
}

/// `DCMS_BULK_TIMING=1` prints how long each stage took (for benchmarks).
pub fn timing(stage: &str, since: std::time::Instant) {
    static ON: std::sync::LazyLock<bool> =
        std::sync::LazyLock::new(|| std::env::var_os("DCMS_BULK_TIMING").is_some());
    if *ON {
        eprintln!(
            "timing: {stage}: {:.3} s{}",
            since.elapsed().as_secs_f64(),
            process_cpu().map_or(String::new(), |c| format!(" (process CPU so far {c:.2} s)"))
        );
    }
}

/// The CPU time (user and system) this process has used, where Linux's
/// `/proc` tells it (in its clock ticks, usually 1/100 s).
fn process_cpu() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which may hold spaces) in brackets.
    let mut fields = stat.rsplit_once(')')?.1.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    Some((utime + stime) / 100.0)
}
