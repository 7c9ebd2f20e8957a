//! The manual (`docs/src`, an mdBook) against the program: the command
//! reference is each command's help as it prints it; the settings pages
//! name exactly the keys the config and rules files take; the report
//! columns are the reports'; and every link inside the manual and the
//! README leads somewhere.
//!
//! After a change to a help text: `DCMS_BLESS_MANUAL=1 cargo test --test
//! manual` writes the command reference again; review its diff.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use common::*;
use dcms_bulk::cli::Cli;

fn src() -> PathBuf {
    root().join("docs/src")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every command a user can run: `[]` for `dcms-bulk` itself, then
/// `["validate"]`, `["users", "add"]`, ... in the order `--help` lists them.
fn command_paths() -> Vec<Vec<String>> {
    fn walk(cmd: &clap::Command, at: &[String], out: &mut Vec<Vec<String>>) {
        for sub in cmd.get_subcommands() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let mut path = at.to_vec();
            path.push(sub.get_name().to_owned());
            out.push(path.clone());
            walk(sub, &path, out);
        }
    }
    let mut out = vec![vec![]];
    walk(&Cli::command(), &[], &mut out);
    out
}

/// `dcms-bulk PATH... --help`, as a user's pipe or file gets it.
fn help(path: &[String]) -> String {
    let out = bin()
        .args(path)
        .arg("--help")
        .env("COLUMNS", "100")
        .output()
        .unwrap();
    assert!(out.status.success(), "{path:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

const COMMANDS_FROM: &str = "<!-- Each command's help follows, as `--help` prints it";

#[test]
fn the_command_reference_is_every_commands_help() {
    let file = src().join("reference/commands.md");
    let now = read(&file);
    // Everything to the end of the marker's line is written by hand.
    let at = now.find(COMMANDS_FROM).expect("the reference's marker");
    let end = now[at..].find('\n').map_or(now.len(), |n| at + n);
    let mut want = now[..end].to_owned();
    want.push('\n');
    for path in command_paths() {
        let name = std::iter::once("dcms-bulk".to_owned())
            .chain(path.iter().cloned())
            .collect::<Vec<_>>()
            .join(" ");
        let text = help(&path);
        want.push_str(&format!(
            "\n## {name}\n\n```text\n{}\n```\n",
            text.trim_end()
        ));
    }
    if std::env::var_os("DCMS_BLESS_MANUAL").is_some() {
        std::fs::write(&file, &want).unwrap();
        return;
    }
    if now != want {
        let (n, (a, b)) = now
            .lines()
            .zip(want.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .unwrap_or((
                now.lines().count().min(want.lines().count()),
                ("(end)", "(end)"),
            ));
        panic!(
            "docs/src/reference/commands.md differs from the help at line {}:\n  manual: {a}\n  help:   {b}\n\
             (DCMS_BLESS_MANUAL=1 cargo test --test manual writes it again)",
            n + 1
        );
    }
}

/// The names a TOML table takes, in the program's own words: its refusal
/// of an unknown key lists them.
fn keys_taken(args: &[&str], file: &str, text: &str) -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(file);
    std::fs::write(&path, text).unwrap();
    let args: Vec<String> = args
        .iter()
        .map(|a| a.replace("FILE", path.to_str().unwrap()))
        .collect();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let r = run_in(dir.path(), &args);
    let all = format!("{}{}", r.stdout, r.stderr);
    let expected = all
        .find("unknown field `zzz`, expected")
        .map(|at| &all[at + "unknown field `zzz`, expected".len()..])
        .unwrap_or_else(|| panic!("no list of keys: {all}"));
    let line = expected.lines().next().unwrap();
    let re = regex::Regex::new(r"`([a-z_]+)`").unwrap();
    re.captures_iter(line).map(|c| c[1].to_owned()).collect()
}

/// The keys a table of the settings page lists, under `heading`: each
/// row's first cell.
fn keys_listed(page: &str, heading: &str) -> BTreeSet<String> {
    let at = page.find(heading).unwrap_or_else(|| panic!("no {heading}"));
    let rest = &page[at + heading.len()..];
    let end = rest.find("\n#").unwrap_or(rest.len());
    let re = regex::Regex::new(r"(?m)^\| `([a-z_]+)` \|").unwrap();
    re.captures_iter(&rest[..end])
        .map(|c| c[1].to_owned())
        .collect()
}

#[test]
fn the_settings_page_lists_every_key_the_files_take() {
    let page = read(&src().join("reference/settings.md"));
    let config = ["doctor", "--config", "FILE", "--profile", "p"];
    let rules = ["validate", "SAMPLE", "--rules", "FILE"];
    let sample = root().join("samples/orders.csv");
    let rules: Vec<String> = rules
        .iter()
        .map(|a| a.replace("SAMPLE", sample.to_str().unwrap()))
        .collect();
    let rules: Vec<&str> = rules.iter().map(String::as_str).collect();
    for (heading, args, file, text) in [
        ("### Top level", &config[..], "c.toml", "zzz = 1\n"),
        (
            "### A profile",
            &config[..],
            "c.toml",
            "[profiles.p]\nzzz = 1\n",
        ),
        (
            "### The create body",
            &config[..],
            "c.toml",
            "[profiles.p.create_fields]\nzzz = 1\n",
        ),
        (
            "### Notifications",
            &config[..],
            "c.toml",
            "[profiles.p.notify]\nzzz = 1\n",
        ),
        ("## The rules file", &rules[..], "r.toml", "zzz = 1\n"),
    ] {
        assert_eq!(
            keys_listed(&page, heading),
            keys_taken(args, file, text),
            "settings.md, {heading}"
        );
    }
}

/// `dcms-bulk ARGS INPUT --report DIR/NAME.report.csv` in `dir`, with
/// INPUT a sample (or a file of `dir` when no sample has its name); the
/// report's path.
fn run_with_report(dir: &Path, args: &[&str], input: &str) -> PathBuf {
    let sample = root().join("samples").join(input);
    let sample = if sample.exists() {
        sample
    } else {
        dir.join(input)
    };
    let report = dir.join(format!("{}-{input}.report.csv", args[0]));
    let mut all = args.to_vec();
    all.extend([
        sample.to_str().unwrap(),
        "--report",
        report.to_str().unwrap(),
    ]);
    let r = run_in(dir, &all);
    assert!(
        [0, 1, 3].contains(&r.code),
        "{args:?} {input}: {}",
        r.stderr
    );
    report
}

/// The header of a report a command wrote.
fn report_header(path: &Path) -> Vec<String> {
    let mut reader = csv::Reader::from_path(path).unwrap();
    reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_report_columns_page_names_every_column_a_report_has() {
    let page = read(&src().join("reference/report-columns.md"));
    let listed: BTreeSet<String> = regex::Regex::new(r"(?m)^\| `([a-z_]+)` \|")
        .unwrap()
        .captures_iter(&page)
        .map(|c| c[1].to_owned())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let mut written = BTreeSet::new();
    for (args, input) in [
        (vec!["validate"], "orders.csv"),
        (vec!["submit", "--sandbox"], "orders.csv"),
        (vec!["cancel", "--sandbox"], "cancels.csv"),
        (vec!["upgrade", "--sandbox"], "upgrades.csv"),
    ] {
        let inputs = report_header(&root().join("samples").join(input));
        let report = run_with_report(dir.path(), &args, input);
        for column in report_header(&report) {
            if !inputs.contains(&column) {
                written.insert(column);
            }
        }
    }
    let missing: Vec<_> = written.difference(&listed).collect();
    assert!(
        missing.is_empty(),
        "report columns not in the manual: {missing:?}"
    );
    // And the page lists none that no report has (status's columns are
    // written by `status`, which asks a live API: named here).
    let status = ["order_status", "product_statuses"].map(str::to_owned);
    let extra: Vec<_> = listed
        .iter()
        .filter(|c| !written.contains(*c) && !status.contains(c))
        .collect();
    assert!(
        extra.is_empty(),
        "the manual lists columns no report has: {extra:?}"
    );
}

#[test]
fn the_log_events_page_names_every_event_the_program_logs() {
    let re = regex::Regex::new(r#"event = "([a-z_]+)""#).unwrap();
    let mut logged = BTreeSet::new();
    for file in files_under(&root().join("src"), "rs") {
        for c in re.captures_iter(&read(&file)) {
            logged.insert(c[1].to_owned());
        }
    }
    assert!(logged.len() > 40, "{logged:?}");
    let page = read(&src().join("reference/log-events.md"));
    // The first cell of each row of the events' tables.
    let named: BTreeSet<String> = page
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split(" |").next())
        .flat_map(|cell| {
            regex::Regex::new(r"([a-z_]+)`")
                .unwrap()
                .captures_iter(cell)
                .map(|c| c[1].to_owned())
                .collect::<Vec<_>>()
        })
        .collect();
    let missing: Vec<_> = logged.difference(&named).collect();
    assert!(
        missing.is_empty(),
        "events not in log-events.md: {missing:?}"
    );
    let extra: Vec<_> = named.difference(&logged).collect();
    assert!(
        extra.is_empty(),
        "log-events.md names events never logged: {extra:?}"
    );
}

/// Text without its code: fenced blocks and inline spans, where a `](`
/// is not a link.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push_str(line);
            out.push('\n');
        }
    }
    regex::Regex::new(r"`[^`\n]*`")
        .unwrap()
        .replace_all(&out, "")
        .into_owned()
}

/// The anchors mdBook gives a page's headings.
fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| {
            l.trim_start_matches('#')
                .trim()
                .to_lowercase()
                .chars()
                .filter_map(|c| match c {
                    ' ' => Some('-'),
                    c if c.is_alphanumeric() || c == '_' || c == '-' => Some(c),
                    _ => None,
                })
                .collect()
        })
        .collect()
}

/// Every link of `file` that stays inside the repository, as
/// (target file, anchor).
fn links(file: &Path) -> Vec<(String, PathBuf, Option<String>)> {
    let text = read(file);
    let re = regex::Regex::new(r"\]\(([^)\s]+)\)").unwrap();
    re.captures_iter(&prose(&text))
        .filter(|c| !c[1].contains("://") && !c[1].starts_with("mailto:"))
        .map(|c| {
            let link = c[1].to_owned();
            let (path, anchor) = match link.split_once('#') {
                Some((p, a)) => (p.to_owned(), Some(a.to_owned())),
                None => (link.clone(), None),
            };
            let target = if path.is_empty() {
                file.to_path_buf()
            } else {
                file.parent().unwrap().join(&path)
            };
            (link, target, anchor)
        })
        .collect()
}

fn pages() -> Vec<PathBuf> {
    files_under(&src(), "md")
}

#[test]
fn every_link_of_the_manual_and_the_readme_leads_somewhere() {
    let mut files = pages();
    files.push(root().join("README.md"));
    let mut broken = Vec::new();
    let mut checked = 0;
    for file in &files {
        for (link, target, anchor) in links(file) {
            checked += 1;
            if !target.exists() {
                broken.push(format!("{}: {link} (no such file)", file.display()));
            } else if let Some(anchor) = anchor
                && !anchors(&read(&target)).contains(&anchor)
            {
                broken.push(format!("{}: {link} (no such heading)", file.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
    assert!(checked > 40, "only {checked} links found");
}

#[test]
fn every_page_is_in_the_table_of_contents() {
    let summary = src().join("SUMMARY.md");
    let listed: BTreeSet<PathBuf> = links(&summary).into_iter().map(|(_, t, _)| t).collect();
    for page in pages() {
        if page != summary {
            assert!(
                listed.contains(&page),
                "{} is not in SUMMARY.md",
                page.display()
            );
        }
    }
}

#[test]
fn the_readme_is_read_in_two_minutes() {
    let readme = read(&root().join("README.md"));
    let lines = readme.lines().count();
    assert!(lines < 150, "README.md has {lines} lines");
    // It opens with the two commands, and says where each guide is.
    let first = readme.find("```").expect("a command block");
    let block = &readme[first..];
    assert!(block.contains("cargo run --release -- submit samples/orders.xlsx --sandbox"));
    assert!(block.contains("cargo test"));
    for guide in [
        "clerk/index.md",
        "operator/index.md",
        "auditor/index.md",
        "reference/commands.md",
    ] {
        assert!(
            readme.contains(&format!("docs/src/{guide}")),
            "the README does not link {guide}"
        );
    }
}

/// Every key of a JSON object, at any depth.
fn keys_of(value: &serde_json::Value, out: &mut BTreeSet<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                out.insert(k.clone());
                keys_of(v, out);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| keys_of(v, out)),
        _ => {}
    }
}

#[test]
fn the_run_facts_page_names_every_key_run_facts_have() {
    let page = read(&src().join("auditor/run-facts.md"));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("broken.xlsx"), b"not a workbook").unwrap();
    let mut keys = BTreeSet::new();
    for (args, input) in [
        (vec!["validate"], "orders.csv"),
        (vec!["submit", "--sandbox"], "orders.csv"),
        (vec!["cancel", "--sandbox"], "cancels.csv"),
        (vec!["submit", "--sandbox"], "broken.xlsx"),
    ] {
        let report = run_with_report(dir.path(), &args, input);
        let facts = format!("{}.run.json", report.display());
        let facts: serde_json::Value = serde_json::from_str(&read(Path::new(&facts))).unwrap();
        keys_of(&facts, &mut keys);
    }
    assert!(
        keys.contains("exit_code") && keys.contains("ledger_run"),
        "{keys:?}"
    );
    let missing: Vec<_> = keys
        .iter()
        .filter(|k| !page.contains(&format!("`{k}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "run facts keys not in run-facts.md: {missing:?}"
    );
}
