//! Helpers for running the real binary on fixture files.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_dcms-bulk"))
}

pub fn run(args: &[&str]) -> Run {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args)
}

pub fn run_in(dir: &Path, args: &[&str]) -> Run {
    let out = bin()
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run dcms-bulk");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn path_str(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The header of an order sheet, and a valid row of it.
pub const HEADER: &str = "branch_id,branch_name,product_id,bin,card_type,quantity,plastic_code,pan_length,pin_generation,delivery_address,pin_code,process_start_time,validity_days,ordered_by";

pub fn row(branch: &str, product: &str, qty: &str) -> String {
    format!(
        "{branch},Pune Camp Branch,{product},412345,PHYSICAL,{qty},0001,16,Y,Flat 1~Camp~Pune~MH,411001,2026-12-01 09:00:00,365,Priya Iyer"
    )
}

/// Reads a CSV report into (header, rows).
pub fn read_report(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rdr = csv::Reader::from_path(path).expect("open report");
    let header = rdr
        .headers()
        .expect("header")
        .iter()
        .map(String::from)
        .collect();
    let rows = rdr
        .records()
        .map(|r| r.expect("record").iter().map(String::from).collect())
        .collect();
    (header, rows)
}

pub fn col(header: &[String], name: &str) -> usize {
    header
        .iter()
        .position(|h| h == name)
        .unwrap_or_else(|| panic!("no column {name}"))
}
