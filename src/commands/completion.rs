//! `completion SHELL`: the shell's completion script, generated from the clap
//! definition of the command line (so it never lags behind the flags).

use anyhow::Result;
use clap::CommandFactory;
use clap_complete::{generate, shells};

use crate::cli::{Cli, CompletionArgs, Shell};

pub fn completion(a: &CompletionArgs) -> Result<()> {
    let mut cmd = Cli::command();
    let mut out = Vec::new();
    match a.shell {
        Shell::Bash => generate(shells::Bash, &mut cmd, "paddock", &mut out),
        Shell::Zsh => generate(shells::Zsh, &mut cmd, "paddock", &mut out),
        Shell::Fish => generate(shells::Fish, &mut cmd, "paddock", &mut out),
    }
    crate::print_stdout(&String::from_utf8_lossy(&out));
    Ok(())
}
