use anyhow::{Context, Result};

use super::Globals;
use crate::state::StateDir;

/// Prints the OCI state (plus `created` and `owner`) as JSON, and nothing else.
pub fn state(g: &Globals, id: &str) -> Result<()> {
    let sd = StateDir::open(&g.root, id)?;
    let c = sd.load()?;
    let json = serde_json::to_string_pretty(&c.oci_state()).context("encode state")?;
    crate::print_stdout(&format!("{json}\n"));
    Ok(())
}
