//! paddock: a low-level OCI container runtime, compatible with runc's CLI.

mod cli;
mod commands;
mod error;
mod linux;
mod logger;
mod process;
mod spec;
mod state;

use std::io::Write;

use anyhow::Result;
use clap::error::ErrorKind;
use clap::Parser;

use cli::{Cli, Command};
use commands::Globals;

fn main() {
    let args = cli::normalize_args(std::env::args());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
            print_stdout(&e.to_string());
            std::process::exit(0);
        }
        Err(e) => {
            logger::write_stderr(&format!("{}\n", one_line_usage_error(&e.to_string())));
            // runc's CLI library answers an unknown command with exit status 3.
            let code = if e.kind() == ErrorKind::InvalidSubcommand {
                3
            } else {
                1
            };
            std::process::exit(code);
        }
    };
    if let Err(e) = logger::init(cli.log.as_deref(), cli.log_format, cli.debug) {
        logger::write_stderr(&format!("{e:#}\n"));
        std::process::exit(1);
    }
    let result = dispatch(&cli);
    logger::release_warnings();
    let code = match result {
        Ok(code) => code,
        Err(e) => {
            logger::error(&format!("{e:#}"));
            1
        }
    };
    std::process::exit(code);
}

fn dispatch(cli: &Cli) -> Result<i32> {
    if cli.version {
        print_stdout(&version());
        return Ok(0);
    }
    let rootless_cgroups = linux::rootless::rootless_cgroups(cli.rootless.as_deref())?;
    let (root, from_xdg) = match &cli.root {
        Some(r) => (r.clone(), false),
        None => linux::rootless::default_root(),
    };
    let g = Globals {
        root,
        systemd_cgroup: cli.systemd_cgroup,
        rootless_cgroups,
    };
    let Some(command) = &cli.command else {
        anyhow::bail!("no command given (try --help)");
    };
    if logger::debug_enabled() {
        let argv: Vec<String> = std::env::args().collect();
        logger::debug(&format!("{} (root {})", argv.join(" "), g.root.display()));
    }
    if matches!(
        command,
        Command::Create(_) | Command::Run(_) | Command::Exec(_)
    ) {
        // These put a process into a container and may re-execute themselves from a
        // sealed copy once they know they must (linux/exeseal.rs): warnings wait till then.
        logger::hold_warnings();
    }
    if from_xdg {
        linux::rootless::prepare_xdg_root(&g.root)?;
    }
    match command {
        Command::Create(a) => commands::create::create(&g, a)?,
        Command::Start(a) => commands::start::start(&g, &a.id)?,
        Command::Run(a) => return commands::run::run(&g, a),
        Command::State(a) => commands::state::state(&g, &a.id)?,
        Command::Kill(a) => commands::kill::kill(&g, a)?,
        Command::Delete(a) => commands::delete::delete(&g, a)?,
        Command::List(a) => commands::list::list(&g, a, cli.root.is_some())?,
        Command::Spec(a) => commands::spec::spec(a)?,
        Command::Exec(a) => return commands::exec::exec(&g, a),
        Command::Pause(a) => commands::pause::pause(&g, &a.id)?,
        Command::Resume(a) => commands::resume::resume(&g, &a.id)?,
        Command::Update(a) => commands::update::update(&g, a)?,
        Command::Ps(a) => commands::ps::ps(&g, a)?,
        Command::Events(a) => commands::events::events(&g, a)?,
        Command::Features => commands::features::features()?,
        Command::Checkpoint(a) => commands::checkpoint::checkpoint(&g, a)?,
        Command::Restore(a) => return commands::restore::restore(&g, a),
        Command::Completion(a) => commands::completion::completion(a)?,
    }
    Ok(0)
}

/// clap's multi-line error up to the usage text, folded into one line.
fn one_line_usage_error(text: &str) -> String {
    let lines: Vec<&str> = text
        .lines()
        .take_while(|l| !l.starts_with("Usage:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    lines.join(" ").trim_start_matches("error: ").to_string()
}

fn version() -> String {
    let seccomp =
        libseccomp::ScmpVersion::current().map_or("unknown".to_string(), |v| v.to_string());
    format!(
        "paddock version {}\nspec: {}\nlibseccomp: {seccomp}\n",
        env!("CARGO_PKG_VERSION"),
        state::OCI_VERSION
    )
}

/// Stdout writes never panic: a caller may close the pipe early.
pub fn print_stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
