//! Test-only CRI client for integration/cri.sh. It talks to containerd's CRI plugin over its unix
//! socket exactly as the kubelet does, and prints one `PASS: ...` or `FAIL: ...` line per check.
//!
//! Usage:
//!   cri-client --socket PATH version
//!   cri-client --socket PATH scenario --handler NAME --image REF --work DIR [--hook PROGRAM]
//!
//! `scenario` runs a pod (host network) of two containers through one runtime class and removes
//! it again; `--hook PROGRAM` is run as `PROGRAM pod-running POD_ID CONTAINER_ID...` while the
//! pod runs, with stdout shared, so the caller can add host-side checks. Exit status: 0 when
//! every check passed, 1 when one failed, 2 on bad usage.

mod cri;
mod exits;
mod inside;
mod probe;
mod report;
mod scenario;
mod specs;
mod steps;

use anyhow::{bail, Context, Result};
use std::path::PathBuf;

struct Args {
    socket: PathBuf,
    command: String,
    handler: String,
    image: String,
    work: PathBuf,
    hook: Option<PathBuf>,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        socket: PathBuf::new(),
        command: String::new(),
        handler: String::new(),
        image: String::new(),
        work: PathBuf::new(),
        hook: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--socket" => args.socket = value()?.into(),
            "--handler" => args.handler = value()?,
            "--image" => args.image = value()?,
            "--work" => args.work = value()?.into(),
            "--hook" => args.hook = Some(value()?.into()),
            "version" | "scenario" if args.command.is_empty() => args.command = a,
            _ => bail!("unknown argument {a:?}"),
        }
    }
    if args.socket.as_os_str().is_empty() {
        bail!("--socket is required");
    }
    if args.command == "scenario"
        && (args.handler.is_empty() || args.image.is_empty() || args.work.as_os_str().is_empty())
    {
        bail!("scenario needs --handler, --image and --work");
    }
    Ok(args)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cri-client: {e:#}");
            std::process::exit(2);
        }
    };
    let result = match args.command.as_str() {
        "version" => version(&args).await,
        "scenario" => {
            let opts = scenario::Options {
                handler: args.handler.clone(),
                image: args.image.clone(),
                work: args.work.clone(),
                hook: args.hook.clone(),
            };
            match cri::Cri::connect(&args.socket).await {
                Ok(c) => Ok(scenario::run(c, &opts).await),
                Err(e) => Err(e),
            }
        }
        _ => Err(anyhow::anyhow!("no command: version or scenario")),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            println!("FAIL: cri-client: {e:#}");
            std::process::exit(1);
        }
    }
}

/// Prints the runtime's name and CRI version; used to wait until the CRI plugin answers.
async fn version(args: &Args) -> Result<bool> {
    let mut c = cri::Cri::connect(&args.socket).await?;
    let v = c.version().await?;
    println!(
        "{} {} (CRI {})",
        v.runtime_name, v.runtime_version, v.runtime_api_version
    );
    Ok(true)
}
