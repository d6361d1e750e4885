use std::fs::OpenOptions;
use std::io::Write;

use anyhow::{bail, Context, Result};

use super::spec_default::default_spec;
use crate::cli::SpecArgs;

/// Writes a default config.json into the bundle; an existing one is left alone.
pub fn spec(args: &SpecArgs) -> Result<()> {
    let path = args.bundle.join("config.json");
    let json = serde_json::to_string_pretty(&default_spec(args.rootless)).context("encode spec")?;
    let mut f = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("{} exists: remove it first", path.display())
        }
        Err(e) => return Err(e).with_context(|| format!("--bundle: create {}", path.display())),
    };
    f.write_all(json.as_bytes())
        .and_then(|()| f.write_all(b"\n"))
        .with_context(|| format!("write {}", path.display()))
}
