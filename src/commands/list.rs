use anyhow::{bail, Context, Result};

use super::Globals;
use crate::cli::ListArgs;
use crate::cli::ListFormat;

/// A missing root is an empty list only when it is the default one (no container was
/// ever made); a missing `--root` given by the caller is an error, as in runc 1.5.
pub fn list(g: &Globals, args: &ListArgs, root_given: bool) -> Result<()> {
    if root_given && !g.root.exists() {
        bail!("open {}: no such file or directory", g.root.display());
    }
    let containers = crate::state::list(&g.root)?;
    let out = if args.quiet {
        containers.iter().map(|c| format!("{}\n", c.id)).collect()
    } else if args.format == ListFormat::Json && containers.is_empty() {
        // runc encodes its empty (nil) list as JSON null.
        "null\n".to_string()
    } else if args.format == ListFormat::Json {
        let states: Vec<_> = containers.iter().map(|c| c.oci_state()).collect();
        format!(
            "{}\n",
            serde_json::to_string(&states).context("encode list")?
        )
    } else {
        table(&containers)
    };
    crate::print_stdout(&out);
    Ok(())
}

fn table(containers: &[crate::state::Container]) -> String {
    let mut rows = vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
    for c in containers {
        let s = c.oci_state();
        rows.push([
            c.id.clone(),
            s.pid.to_string(),
            s.status.to_string(),
            c.bundle.display().to_string(),
            c.created.clone(),
            c.owner.clone(),
        ]);
    }
    // runc's tabwriter layout: each column but the last is at least 12 wide and
    // 3 wider than its widest cell; the last is not padded.
    let widths: Vec<usize> = (0..5)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .map(|w| (w + 3).max(12))
        .collect();
    rows.iter()
        .map(|r| {
            let padded: String = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{padded}{}\n", r[5])
        })
        .collect()
}
