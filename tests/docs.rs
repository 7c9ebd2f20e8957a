//! One truth in the help, the man page and the manual (`docs/src`): the
//! exit codes, the environment variables and the defaults each says are
//! the same, and the same as the program's.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use clap::CommandFactory;
use common::*;
use dcms_bulk::cli::Cli;
use dcms_bulk::exit::CODES;

/// A page of the manual.
fn page(path: &str) -> String {
    std::fs::read_to_string(root().join("docs/src").join(path)).unwrap()
}

/// The whole manual, every page one after another.
fn manual() -> String {
    files_under(&root().join("docs/src"), "md")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect::<Vec<_>>()
        .join("\n\n")
}

fn man_page() -> String {
    let r = run(&["man"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    r.stdout
}

#[test]
fn the_exit_codes_agree_everywhere() {
    let help = run(&["--help"]).stdout;
    let man = man_page();
    let codes = page("reference/exit-codes.md");
    assert!(man.contains(".SH \"EXIT STATUS\""), "{man}");
    for (exit, name, meaning) in CODES {
        let code = exit.code();
        assert!(
            help.contains(&format!("{code:>3}  {meaning}")),
            "--help lacks {code}: {help}"
        );
        assert!(
            man.contains(&format!("\\fB{code}\\fR ({name})")),
            "the man page lacks {code}"
        );
        assert!(
            codes.contains(&format!("| {code} | `{name}` |")),
            "the manual's exit codes lack {code} {name}"
        );
    }
    // And none that the program does not have.
    let table: BTreeSet<i32> = codes
        .lines()
        .filter_map(|l| l.strip_prefix("| "))
        .filter_map(|l| l.split(" | `").next()?.trim().parse().ok())
        .collect();
    let known: BTreeSet<i32> = CODES.iter().map(|(e, _, _)| e.code()).collect();
    assert_eq!(table, known);
}

/// Every `DCMS_…` name in `text`.
fn variables(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"DCMS_[A-Z_]*[A-Z]").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

#[test]
fn the_environment_agrees_everywhere() {
    // What the program reads: every name in its source (but the table of
    // them the man page is made from).
    let source: String = files_under(&root().join("src"), "rs")
        .iter()
        .filter(|path| !path.ends_with("cli/docs.rs"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    let read = variables(&source);
    let man = man_page();
    let section = |text: &str, from: &str, to: &str| -> String {
        let start = text.find(from).unwrap_or_else(|| panic!("no {from}"));
        let rest = &text[start..];
        let end = rest[from.len()..]
            .find(to)
            .map_or(rest.len(), |e| e + from.len());
        rest[..end].to_owned()
    };
    let in_man = variables(&section(&man, ".SH ENVIRONMENT", ".SH "));
    assert_eq!(in_man, read, "the man page's ENVIRONMENT");
    let in_manual = variables(&page("reference/environment.md"));
    assert_eq!(in_manual, read, "the manual's environment variables");
    assert!(man.contains(".SH FILES"), "{man}");
    // Each variable a flag falls back on is named in that flag's help.
    let mut shown = BTreeSet::new();
    for sub in Cli::command().get_subcommands() {
        for arg in sub.get_arguments() {
            if let Some(env) = arg.get_env() {
                shown.insert(env.to_string_lossy().into_owned());
            }
        }
    }
    assert!(shown.is_subset(&read), "{shown:?}");
}

/// A default as it is compared: no spaces or thousands separators,
/// minutes as `m`.
fn normal(v: &str) -> String {
    v.trim()
        .replace("min", "m")
        .chars()
        .filter(|c| !c.is_whitespace() && *c != ',')
        .collect()
}

#[test]
fn the_defaults_the_manual_names_are_the_programs() {
    // Every flag's default, over all commands.
    let mut defaults: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for sub in Cli::command().get_subcommands() {
        for arg in sub.get_arguments() {
            let (Some(long), values) = (arg.get_long(), arg.get_default_values()) else {
                continue;
            };
            for v in values {
                defaults
                    .entry(long.to_owned())
                    .or_default()
                    .insert(normal(&v.to_string_lossy()));
            }
        }
    }
    let manual = manual();
    let mut checked = 0;
    for (long, values) in &defaults {
        let flag = format!("`--{long}");
        let mut at = 0;
        while let Some(found) = manual[at..].find(&flag) {
            let start = at + found + flag.len();
            at = start;
            // The flag's own words: up to the next flag or paragraph.
            let rest = &manual[start..];
            let end = ["`--", "\n\n", "|"]
                .iter()
                .filter_map(|s| rest.find(s))
                .min()
                .unwrap_or(rest.len())
                .min(160);
            let words = &rest[..end];
            let Some(d) = words.find("(default ").or_else(|| words.find(", default ")) else {
                continue;
            };
            let after = &words[d..];
            let after = &after[after.find("default ").unwrap() + "default ".len()..];
            let value = after
                .split([')', ';'])
                .next()
                .unwrap()
                .split(": ")
                .next()
                .unwrap()
                .split(", ")
                .next()
                .unwrap();
            assert!(
                values.contains(&normal(value)),
                "the manual says --{long} defaults to {value:?}; the program: {values:?}"
            );
            checked += 1;
        }
    }
    eprintln!("{checked} defaults named in the manual agree");
    assert!(checked >= 8, "only {checked} defaults named in the manual");
    // The batch id: no salt unless given, as the manual says.
    let help = run(&["submit", "--help"]).stdout;
    assert!(!help.contains("input file's SHA-256"), "{help}");
    assert!(manual.contains("The salt is empty unless `--batch-id` gives one"));
}

/// `-` where a command cannot read standard input: a usage error that
/// says so, and nothing written.
#[test]
fn standard_input_is_refused_where_it_cannot_be_read() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        vec!["submit", "-", "--sandbox"],
        vec!["watch", "-", "--sandbox"],
        vec!["status", "-"],
        vec!["verify", "-"],
        vec!["cancel", "-", "--sandbox"],
    ] {
        let r = run_in(dir.path(), &args);
        assert_eq!(r.code, dcms_bulk::exit::USAGE, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("standard input (-) is not read here"),
            "{}",
            r.stderr
        );
    }
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn the_version_names_the_commit_it_was_built_from() {
    let r = run(&["--version"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let version = env!("CARGO_PKG_VERSION");
    let re = regex::Regex::new(r"^dcms-bulk (\S+) \(commit ([0-9a-f]{12}(-modified)?|[^)]+)\)\n$")
        .unwrap();
    let caps = re
        .captures(&r.stdout)
        .unwrap_or_else(|| panic!("{:?}", r.stdout));
    assert_eq!(&caps[1], version);
    // Built from this clone: its commit (a build of a tarball says the
    // DCMS_BULK_COMMIT it was given).
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(root())
        .output();
    if let Ok(head) = head
        && head.status.success()
        && std::env::var_os("DCMS_BULK_COMMIT").is_none()
    {
        let head = String::from_utf8_lossy(&head.stdout);
        assert!(caps[2].starts_with(head.trim()), "{} vs {head}", &caps[2]);
    }
}
