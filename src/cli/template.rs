//! `dcms-bulk template order|cancel|upgrade --out FILE`: write a sheet to
//! fill in.

use std::path::PathBuf;

use clap::Args;

use super::Console;
use crate::error::{Error, Result};
use crate::exit::Exit;
use crate::template::{self, Kind};

#[derive(Debug, Args)]
pub struct TemplateArgs {
    /// Which sheet
    #[arg(value_enum)]
    pub kind: Kind,

    /// Where to write it: .xlsx (drop-down lists, Text id columns, a sheet
    /// describing every column) or .csv
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// Replace FILE if it exists
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &TemplateArgs, console: Console) -> Result<Exit> {
    if args.out.exists() && !args.force {
        return Err(Error::Usage(format!(
            "{} exists; pass --force to replace it",
            args.out.display()
        )));
    }
    template::write(args.kind, &args.out)?;
    if !console.quiet {
        tracing::info!(
            event = "wrote",
            "wrote {} ({} columns, one example row)",
            args.out.display(),
            args.kind.columns().len()
        );
    }
    Ok(Exit::Ok)
}
