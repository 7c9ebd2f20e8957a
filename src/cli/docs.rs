//! `dcms-bulk completions SHELL` and `dcms-bulk man`: the shell
//! completions (clap_complete) and the manual pages (clap_mangen), made
//! from the same command-line definition as `--help`.

use std::path::PathBuf;

use clap::{Args, CommandFactory};

use super::{Cli, print_stdout};
use crate::error::{Error, Result};
use crate::exit::Exit;

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete for
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write dcms-bulk.1 and a page for each command (dcms-bulk-submit.1,
    /// ...) into this folder, instead of the main page on stdout
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

pub fn completions(args: &CompletionsArgs) -> Result<Exit> {
    let mut out = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "dcms-bulk", &mut out);
    print_stdout(&String::from_utf8_lossy(&out)).map_err(Error::Stdout)?;
    Ok(Exit::Ok)
}

pub fn man(args: &ManArgs) -> Result<Exit> {
    let cmd = Cli::command();
    let Some(dir) = &args.dir else {
        let page = render(cmd)?;
        print_stdout(&String::from_utf8_lossy(&page)).map_err(Error::Stdout)?;
        return Ok(Exit::Ok);
    };
    std::fs::create_dir_all(dir).map_err(|e| Error::report(dir, e))?;
    let mut pages = vec![("dcms-bulk".to_string(), cmd.clone())];
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("dcms-bulk-{}", sub.get_name());
        pages.push((name.clone(), sub.clone().name(name)));
    }
    for (name, page) in pages {
        let path = dir.join(format!("{name}.1"));
        crate::files::write_atomic(&path, &render(page)?).map_err(|e| Error::report(&path, e))?;
    }
    Ok(Exit::Ok)
}

fn render(cmd: clap::Command) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(Error::Stdout)?;
    Ok(out)
}
