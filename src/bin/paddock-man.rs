//! Writes paddock's man pages (section 8, as runc's: paddock.8 and one
//! paddock-<command>.8 per command) into the directory given, rendered from the
//! clap definition of the command line. A separate build product, so that the
//! runtime binary carries no man page generator.

// The runtime's command line, shared as source; only its definition is used here.
#[allow(dead_code)]
#[path = "../cli.rs"]
mod cli;

use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_mangen::Man;

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    if let Err(e) = write_pages(&dir) {
        eprintln!("paddock-man: write man pages to {}: {e}", dir.display());
        std::process::exit(1);
    }
}

fn write_pages(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let mut cmd = cli::Cli::command().disable_help_subcommand(true);
    cmd.build();
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        Man::new(sub.clone()).section("8").generate_to(dir)?;
    }
    Man::new(cmd).section("8").generate_to(dir)?;
    Ok(())
}
