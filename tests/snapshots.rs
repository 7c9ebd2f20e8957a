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
    insta::assert_snapshot!("watch_help", run(&["watch", "--help"]).stdout);
    for command in ["runs", "show", "verify", "doctor", "completions", "man"] {
        insta::assert_snapshot!(format!("{command}_help"), run(&[command, "--help"]).stdout);
    }
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

/// The main error messages, with their exit codes, as a user reads them.
#[test]
fn error_messages() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, bytes: &[u8]| {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    };
    let header = format!("{HEADER}\n");
    let cases: Vec<(&str, Vec<String>)> = vec![
        ("missing_file", vec!["missing.csv".into()]),
        (
            "unclosed_quote",
            vec![
                path_str(&write(
                    "unclosed.csv",
                    format!(
                        "{header}{}\n00124,\"Thane,01\n00125,x\n",
                        row("00123", "01", "1")
                    )
                    .as_bytes(),
                ))
                .into(),
            ],
        ),
        (
            "mixed_encodings",
            vec![
                path_str(&write(
                    "mixed.csv",
                    format!("{header}{}\u{e9}\n", row("00123", "01", "1"))
                        .into_bytes()
                        .into_iter()
                        .chain(b"\n00124,Caf\xe9\n".iter().copied())
                        .collect::<Vec<u8>>()
                        .as_slice(),
                ))
                .into(),
            ],
        ),
        (
            "no_header",
            vec![path_str(&write("noheader.csv", b"a,b,c\n1,2,3\n")).into()],
        ),
        (
            "header_only",
            vec![path_str(&write("headeronly.csv", header.as_bytes())).into()],
        ),
        (
            "not_a_spreadsheet",
            vec![path_str(&write("picture.csv", b"\x89PNG\r\n\x1a\n0000")).into()],
        ),
        (
            "renamed_text",
            vec![path_str(&write("text.xlsx", header.as_bytes())).into()],
        ),
        (
            "report_extension",
            vec![
                "samples/orders.csv".into(),
                "--report".into(),
                path_str(&dir.path().join("r.txt")).into(),
            ],
        ),
        (
            "no_such_sheet",
            vec![
                "samples/orders.xlsx".into(),
                "--sheet".into(),
                "Nope".into(),
            ],
        ),
        (
            "truncated_workbook",
            vec!["tests/fixtures/truncated.xlsx".into()],
        ),
        (
            "first_line_not_utf8",
            vec![
                path_str(&write("latin.csv", b"caf\xe9,x\n")).into(),
                "--encoding".into(),
                "utf-8".into(),
            ],
        ),
    ];
    let mut all = String::new();
    for (name, args) in cases {
        let mut argv = vec!["validate"];
        argv.extend(args.iter().map(String::as_str));
        let out = run(&argv);
        let shown = untimed(&out.stderr)
            .replace(path_str(dir.path()), "TMP")
            .replace(path_str(&root()), "ROOT");
        all.push_str(&format!("== {name} (exit {})\n{shown}\n", out.code));
    }
    insta::assert_snapshot!("error_messages", all);
}
