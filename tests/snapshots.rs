//! Snapshots of what users read: the help texts and one whole report.

mod common;

use common::*;

#[test]
fn help_texts() {
    insta::assert_snapshot!("help", run(&["--help"]).stdout);
    insta::assert_snapshot!("validate_help", run(&["validate", "--help"]).stdout);
    insta::assert_snapshot!("submit_help", run(&["submit", "--help"]).stdout);
    insta::assert_snapshot!("sandbox_help", run(&["sandbox", "--help"]).stdout);
    insta::assert_snapshot!("status_help", run(&["status", "--help"]).stdout);
    insta::assert_snapshot!("cancel_help", run(&["cancel", "--help"]).stdout);
    insta::assert_snapshot!("upgrade_help", run(&["upgrade", "--help"]).stdout);
    insta::assert_snapshot!("template_help", run(&["template", "--help"]).stdout);
}

#[test]
fn mistakes_report() {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("mistakes.csv");
    run(&[
        "validate",
        "samples/orders_with_mistakes.xlsx",
        "--report",
        path_str(&report),
    ]);
    // No timing columns in a validate report: the file is stable as is.
    insta::assert_snapshot!(
        "mistakes_report_csv",
        std::fs::read_to_string(&report).unwrap()
    );
}
