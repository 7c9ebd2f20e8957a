//! The library's job API, as a second face (the desk) drives it: open a
//! sheet, change cells, and the checks, the orders and the report follow;
//! the file is never changed.

use std::path::Path;

use dcms_bulk::group::Status;
use dcms_bulk::job::{CellChange, Job};
use dcms_bulk::pipeline::CheckOpts;
use dcms_bulk::report::{self, Target};

fn change(row: u64, column: &str, value: &str) -> CellChange {
    CellChange {
        row,
        column: column.into(),
        value: value.into(),
    }
}

/// The status of input row `number`.
fn status(job: &Job, number: u64) -> Status {
    let g = &job.checked().grouping;
    (0..g.len())
        .map(|i| g.row(i))
        .find(|r| r.number == number)
        .map(|r| r.status)
        .unwrap_or_else(|| panic!("no row {number}"))
}

/// A copy of the sample order sheet in a folder of its own.
fn sample_copy() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("orders.csv");
    std::fs::copy("samples/orders.csv", &input).unwrap();
    (dir, input)
}

fn sha256(path: &Path) -> String {
    report::audit::sha256_of(path).unwrap()
}

/// The report of the job as it is now, read back as CSV lines.
fn report_lines(job: &Job, dir: &Path) -> Vec<Vec<String>> {
    let out = dir.join("r.csv");
    let mut facts = job
        .checked()
        .facts("validate", serde_json::json!({}), "t".into());
    job.report(&Target::at(&out).unwrap(), false, &mut facts)
        .unwrap();
    let mut rdr = csv::Reader::from_path(&out).unwrap();
    let mut lines = vec![rdr.headers().unwrap().iter().map(str::to_owned).collect()];
    for r in rdr.records() {
        lines.push(r.unwrap().iter().map(str::to_owned).collect());
    }
    lines
}

#[test]
fn a_fixed_cell_of_a_workbook_rechecks_its_row_and_the_counts_follow() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("mistakes.xlsx");
    std::fs::copy("samples/orders_with_mistakes.xlsx", &input).unwrap();
    let before = sha256(&input);
    let mut job = Job::open(&input, CheckOpts::default()).unwrap();
    let counts = job.checked().grouping.counts;
    // F6 quantity 0 holds back row 7 of its order; A8 is a branch id
    // Excel stored as the number 4567, in one order with F9's `ten`.
    assert_eq!(status(&job, 6), Status::Invalid);
    assert_eq!(status(&job, 7), Status::Held);
    assert_eq!(status(&job, 8), Status::Invalid);

    job.edit(&[change(6, "quantity", "10"), change(8, "branch_id", "04567")])
        .unwrap();
    assert_eq!(status(&job, 6), Status::Valid);
    assert_eq!(status(&job, 7), Status::Valid);
    // Its own cell fixed, row 8 waits for row 9 of its order.
    assert_eq!(status(&job, 8), Status::Held);
    job.edit(&[change(9, "quantity", "10")]).unwrap();
    assert_eq!(status(&job, 8), Status::Valid);
    let now = &job.checked().grouping.counts;
    assert_eq!(now.rows, counts.rows);
    assert_eq!(now.invalid, counts.invalid - 3);
    assert_eq!(now.orders_ready, counts.orders_ready + 2);

    let edits = job.edits();
    assert_eq!(edits.len(), 3);
    assert_eq!(
        (
            edits[0].row,
            edits[0].column.as_str(),
            edits[0].old.as_str()
        ),
        (6, "quantity", "0")
    );
    assert_eq!(
        (edits[1].old.as_str(), edits[1].new.as_str()),
        ("4567", "04567")
    );
    // The report shows the sheet as changed; the file is as it was.
    let lines = report_lines(&job, dir.path());
    let col = |name: &str| lines[0].iter().position(|h| h == name).unwrap();
    let row8 = lines.iter().find(|l| l[col("row")] == "8").unwrap();
    assert_eq!(row8[col("branch_id")], "04567");
    assert_eq!(row8[col("status")], "VALID");
    assert_eq!(sha256(&input), before);
}

#[test]
fn a_changed_csv_row_is_reported_with_its_new_cells_not_the_files_bytes() {
    let (dir, input) = sample_copy();
    let mut job = Job::open(&input, CheckOpts::default()).unwrap();
    let orders = job.checked().grouping.counts.orders_ready;
    job.edit(&[change(3, "quantity", "lots")]).unwrap();
    assert_eq!(status(&job, 3), Status::Invalid);
    // Its order (rows 2 to 4) is held back as a whole.
    assert_eq!(status(&job, 2), Status::Held);
    assert_eq!(job.checked().grouping.counts.orders_ready, orders - 1);
    let lines = report_lines(&job, dir.path());
    let col = |name: &str| lines[0].iter().position(|h| h == name).unwrap();
    assert_eq!(lines[2][col("quantity")], "lots");
    assert_eq!(lines[2][col("status")], "INVALID");
    // The rows around it are copied as they were.
    assert_eq!(lines[1][col("quantity")], "100");

    // Changed back: valid again, and the order whole.
    job.edit(&[change(3, "quantity", "50")]).unwrap();
    assert_eq!(status(&job, 2), Status::Valid);
    assert_eq!(job.checked().grouping.counts.orders_ready, orders);
    assert_eq!(job.edits().len(), 2);
}

/// The desk's way: only the changed row is checked again; its report
/// line still has its new cells, never the file's bytes.
#[test]
fn a_changed_csv_row_checked_alone_is_reported_with_its_new_cells() {
    let (dir, input) = sample_copy();
    let mut job = Job::open_to_edit(&input, CheckOpts::default()).unwrap();
    job.edit(&[change(3, "quantity", "lots")]).unwrap();
    assert_eq!(status(&job, 3), Status::Invalid);
    let lines = report_lines(&job, dir.path());
    let col = |name: &str| lines[0].iter().position(|h| h == name).unwrap();
    assert_eq!(lines[2][col("quantity")], "lots");
    assert_eq!(lines[2][col("status")], "INVALID");
    assert_eq!(lines[1][col("quantity")], "100");
}

#[test]
fn a_changed_branch_moves_a_row_to_an_order_of_its_own() {
    let (_dir, input) = sample_copy();
    let mut job = Job::open(&input, CheckOpts::default()).unwrap();
    let orders = job.checked().grouping.counts.orders_ready;
    job.edit(&[change(4, "branch_id", "09999")]).unwrap();
    assert_eq!(job.checked().grouping.counts.orders_ready, orders + 1);
    let bodies = job.checked().orders().unwrap();
    assert!(
        bodies
            .iter()
            .any(|o| serde_json::to_string(o).unwrap().contains("09999"))
    );
}

#[test]
fn changes_to_what_is_not_a_cell_of_the_data_are_refused_and_change_nothing() {
    let (_dir, input) = sample_copy();
    let mut job = Job::open(&input, CheckOpts::default()).unwrap();
    let counts = job.checked().grouping.counts;

    let e = job
        .edit(&[change(2, "quantity", "7"), change(2, "colour", "red")])
        .unwrap_err();
    assert!(e.to_string().contains("no column `colour`"), "{e}");
    let e = job.edit(&[change(1, "quantity", "7")]).unwrap_err();
    assert!(e.to_string().contains("row 1 is not a data row"), "{e}");
    let e = job.edit(&[change(9999, "quantity", "7")]).unwrap_err();
    assert!(e.to_string().contains("row 9999"), "{e}");
    // All or none: the good change of the refused batch was not made.
    assert!(job.edits().is_empty());
    assert_eq!(job.checked().grouping.counts, counts);
    // A value a cell already has is not a change.
    job.edit(&[change(2, "quantity", "100")]).unwrap();
    assert!(job.edits().is_empty());
}

#[test]
fn a_changed_sheet_is_sent_as_changed_through_the_engine() {
    use dcms_bulk::batch::Batch;
    use dcms_bulk::engine::{Api, Engine, Rate, Timeouts};
    use dcms_bulk::submit::SubmitOpts;
    use std::time::Duration;

    let (dir, input) = sample_copy();
    let mut job = Job::open(&input, CheckOpts::default()).unwrap();
    job.edit(&[change(3, "quantity", "none")]).unwrap();
    let api = Api::sandbox("ACME".into(), Some(dir.path().join("ledger")), true).unwrap();
    let timeouts = Timeouts {
        connect: Duration::from_secs(5),
        total: Duration::from_secs(30),
    };
    let engine = Engine::open(
        &api,
        SubmitOpts::default(),
        Rate::Unlimited,
        timeouts,
        &|_| {},
    )
    .unwrap();
    let target = Target::at(&dir.path().join("sent.csv")).unwrap();
    let done = job
        .send(
            &engine,
            Batch {
                command: "submit",
                options: serde_json::json!({}),
                started: "t".into(),
                report: &target,
                tally: Default::default(),
                csv_bom: false,
            },
        )
        .unwrap();
    let sent = done.facts.sent.as_ref().unwrap();
    let counts = &job.checked().grouping.counts;
    assert_eq!(sent.orders.unwrap().orders_accepted, counts.orders_ready);
    let report = std::fs::read_to_string(&target.path).unwrap();
    let line3 = report.lines().find(|l| l.contains(",orders,3,")).unwrap();
    assert!(
        line3.contains("INVALID") && line3.contains("none"),
        "{line3}"
    );
    let accepted = report.lines().filter(|l| l.contains(",ACCEPTED,")).count() as u64;
    assert_eq!(accepted, sent.accepted);
    assert!(accepted > 0);
}

#[test]
fn find_and_replace_in_a_column_previews_then_changes_in_one_save_that_one_undo_takes_back() {
    let (_dir, input) = sample_copy();
    let mut job = Job::open(&input, CheckOpts::default()).unwrap();
    let headers = job.checked().columns.headers.clone();
    let branch = headers.iter().position(|h| h == "branch_name").unwrap();
    let quantity = headers.iter().position(|h| h == "quantity").unwrap();
    let before = job.find(branch, "Branch", "Br.").unwrap();
    assert_eq!(before.len(), 10, "every row's branch name");
    assert!(
        before
            .iter()
            .all(|m| m.old.contains("Branch") && m.new.contains("Br."))
    );
    // The preview changes nothing.
    assert!(job.edits().is_empty());
    assert!(job.find(branch, "", "x").is_err(), "nothing to find");
    assert!(job.find(99, "a", "b").is_err(), "no such column");

    // Quantities of 100 become 0: their rows invalid, in one save.
    let hundreds = job.find(quantity, "100", "0").unwrap().len();
    assert!(hundreds > 0);
    assert_eq!(job.replace(quantity, "100", "0").unwrap(), hundreds);
    assert_eq!(job.edits().len(), hundreds);
    assert_eq!(job.checked().grouping.counts.invalid, hundreds as u64);
    assert!(job.can_undo());
    job.undo().unwrap();
    assert_eq!(job.checked().grouping.counts.invalid, 0);
    assert!(job.edits().is_empty());
    // One step: nothing more to undo.
    assert!(!job.can_undo());
    assert!(job.undo().is_err());
}

#[test]
fn a_job_restored_from_its_saves_is_the_job_that_made_them() {
    let (dir, input) = sample_copy();
    let mut made = Job::open(&input, CheckOpts::default()).unwrap();
    made.edit(&[change(2, "quantity", "0")]).unwrap();
    let first = made.edits().len();
    made.edit(&[change(3, "branch_name", "X"), change(4, "quantity", "7")])
        .unwrap();
    let saves = vec![
        made.edits()[..first].to_vec(),
        made.edits()[first..].to_vec(),
    ];

    let mut restored = Job::open(&input, CheckOpts::default()).unwrap();
    restored.restore(&saves, true).unwrap();
    assert_eq!(restored.edits(), made.edits());
    assert_eq!(
        restored.checked().grouping.counts,
        made.checked().grouping.counts
    );
    assert_eq!(
        report_lines(&restored, dir.path()),
        report_lines(&made, dir.path())
    );
    // Its one step of undo takes back the last save only.
    restored.undo().unwrap();
    made.undo().unwrap();
    assert_eq!(restored.edits(), made.edits());
    assert_eq!(status(&restored, 2), Status::Invalid);
    assert!(!restored.can_undo());

    // Restored without undo: nothing to undo.
    let mut fixed = Job::open(&input, CheckOpts::default()).unwrap();
    fixed.restore(&saves, false).unwrap();
    assert!(!fixed.can_undo());
    // A save naming a column the sheet lacks is refused.
    let mut bad = saves[0].clone();
    bad[0].column = "no such column".into();
    let mut wrong = Job::open(&input, CheckOpts::default()).unwrap();
    assert!(wrong.restore(&[bad], false).is_err());
}

/// A change made to a job.
type Step = dyn Fn(&mut Job);

/// Everything a job's user sees of it: its counts, every row as a page
/// shows it, and its report.
fn seen(job: &Job, dir: &Path) -> (String, Vec<dcms_bulk::job::ShownRow>, Vec<Vec<String>>) {
    let rows = job.page(false, 0, u64::MAX).unwrap().rows;
    let counts = format!("{:?}", job.checked().grouping.counts);
    (counts, rows, report_lines(job, dir))
}

#[test]
fn a_sheet_opened_to_edit_checks_its_changed_rows_and_sees_what_a_whole_check_sees() {
    for (sample, first) in [
        ("samples/orders.csv", 2),
        ("samples/orders.xlsx", 2),
        ("samples/orders_with_mistakes.xlsx", 5),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join(Path::new(sample).file_name().unwrap());
        std::fs::copy(sample, &input).unwrap();
        // The same changes to a sheet opened to be edited (checked row by
        // row) and to one checked whole at every change.
        let mut quick = Job::open_to_edit(&input, CheckOpts::default()).unwrap();
        let mut whole = Job::open(&input, CheckOpts::default()).unwrap();
        assert_eq!(
            seen(&quick, dir.path()),
            seen(&whole, dir.path()),
            "{sample}"
        );
        let steps: Vec<Box<Step>> = vec![
            // A row made invalid: its order held.
            Box::new(move |j| j.edit(&[change(first, "quantity", "0")]).unwrap()),
            // A row moved to an order of its own, another's product
            // doubled, in one save.
            Box::new(move |j| {
                j.edit(&[
                    change(first + 1, "branch_id", "00999"),
                    change(first + 2, "product_id", "01"),
                ])
                .unwrap()
            }),
            Box::new(|j| j.undo().unwrap()),
            // Many rows in one save.
            Box::new(|j| {
                let col = j
                    .checked()
                    .columns
                    .headers
                    .iter()
                    .position(|h| h == "ordered_by");
                j.replace(col.unwrap(), "a", "4").unwrap();
            }),
            // Every branch id shorter: the usual width of the column
            // moves (the whole sheet is checked again).
            Box::new(|j| {
                let col = j
                    .checked()
                    .columns
                    .headers
                    .iter()
                    .position(|h| h == "branch_id");
                j.replace(col.unwrap(), "00", "").unwrap();
            }),
            Box::new(|j| j.undo().unwrap()),
            // A row emptied: no longer a data row (the whole sheet is
            // checked again).
            Box::new(move |j| {
                let headers = j.checked().columns.headers.clone();
                let blank: Vec<CellChange> =
                    headers.iter().map(|h| change(first + 3, h, "")).collect();
                j.edit(&blank).unwrap()
            }),
            // And filled again, then a change after it.
            Box::new(|j| j.undo().unwrap()),
            Box::new(move |j| j.edit(&[change(first, "quantity", "12")]).unwrap()),
        ];
        for (i, step) in steps.iter().enumerate() {
            step(&mut quick);
            step(&mut whole);
            assert_eq!(
                seen(&quick, dir.path()),
                seen(&whole, dir.path()),
                "{sample}, step {i}"
            );
        }
        let cells = |j: &Job| -> Vec<(u64, String, String, String)> {
            j.edits()
                .iter()
                .map(|e| (e.row, e.column.clone(), e.old.clone(), e.new.clone()))
                .collect()
        };
        assert_eq!(cells(&quick), cells(&whole), "{sample}");
    }
}

/// A CSV sheet of several megabytes is read in chunks: a page of it reads
/// only the chunks that hold its rows, and shows what a walk of the whole
/// sheet shows, at any place (chunk edges, multi-line cells and blank
/// lines included), filtered or not, and with a changed cell deep down.
#[test]
fn a_page_of_a_large_csv_shows_what_the_whole_sheet_shows() {
    let dir = tempfile::tempdir().unwrap();
    let sample = std::fs::read_to_string("samples/orders.csv").unwrap();
    let mut lines = sample.lines();
    let mut text = format!("{}\n", lines.next().unwrap());
    let body: Vec<&str> = lines.collect();
    for i in 0..30_000u32 {
        let line =
            body[i as usize % body.len()].replacen("00123", &format!("{:05}", i % 90_000), 1);
        match i % 97 {
            0 => text.push('\n'),
            1 => text.push_str(&line.replacen("Priya Iyer", "\"Priya\nIyer\"", 1)),
            2 => text.push_str(&line.replacen(",100,", ",0,", 1)),
            _ => text.push_str(&line),
        }
        text.push('\n');
    }
    assert!(text.len() > 3 << 20, "several chunks");
    let input = dir.path().join("large.csv");
    std::fs::write(&input, &text).unwrap();
    let mut job = Job::open_to_edit(&input, CheckOpts::default()).unwrap();
    let check = |job: &Job| {
        let all = job.page(false, 0, u64::MAX).unwrap();
        assert_eq!(all.rows.len() as u64, all.total);
        assert_eq!(all.total as usize, report_lines(job, dir.path()).len() - 1);
        for skip in [0, 1, 9_000, 9_999, 15_321, all.total - 10] {
            let page = job.page(false, skip, 50).unwrap();
            let end = (skip as usize + 50).min(all.rows.len());
            assert_eq!(page.rows, all.rows[skip as usize..end], "page at {skip}");
        }
        let problems: Vec<_> = all
            .rows
            .iter()
            .filter(|r| r.status != "VALID" || !r.warnings.is_empty())
            .cloned()
            .collect();
        assert!(problems.len() > 100, "{}", problems.len());
        let page = job.page(true, 100, 20).unwrap();
        assert_eq!(page.total as usize, problems.len());
        assert_eq!(page.rows, problems[100..120]);
        let deep = &all.rows[20_000];
        assert_eq!(job.row(deep.number).unwrap().as_ref(), Some(deep));
        all
    };
    let before = check(&job);
    let deep = before.rows[20_000].number;
    job.edit(&[change(deep, "branch_name", "Changed Deep Down")])
        .unwrap();
    let after = check(&job);
    let row = job.row(deep).unwrap().unwrap();
    assert!(
        row.cells.iter().any(|c| c == "Changed Deep Down"),
        "{row:?}"
    );
    assert_eq!(after.rows[20_000], row);
    // Lines 2 and 3 are blank; the first data row is on line 4.
    assert_eq!(before.rows[0].number, 4);
    assert_eq!(job.row(4).unwrap().map(|r| r.number), Some(4));
    assert_eq!(job.row(2).unwrap(), None, "a blank line is no data row");
    assert_eq!(job.row(1).unwrap(), None, "the header is no data row");
}
