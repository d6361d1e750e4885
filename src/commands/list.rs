use anyhow::{Context, Result};

use super::Globals;
use crate::cli::ListArgs;
use crate::cli::ListFormat;

pub fn list(g: &Globals, args: &ListArgs) -> Result<()> {
    let containers = crate::state::list(&g.root)?;
    let out = if args.quiet {
        containers.iter().map(|c| format!("{}\n", c.id)).collect()
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
    let widths: Vec<usize> = (0..6)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{}\n", cells.join("   ").trim_end())
        })
        .collect()
}
