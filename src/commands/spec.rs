use std::fs::OpenOptions;
use std::io::Write;

use anyhow::{bail, Context, Result};

use super::spec_default::default_spec;
use crate::cli::SpecArgs;

/// Writes a default config.json into the bundle; an existing one is left alone.
pub fn spec(args: &SpecArgs) -> Result<()> {
    let path = args.bundle.join("config.json");
    let mut spec = default_spec(args.rootless);
    if let Some(profile) = &args.seccomp {
        spec["linux"]["seccomp"] = seccomp_profile(profile)?;
    }
    let json = serde_json::to_string_pretty(&spec).context("encode spec")?;
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

/// The built-in default profile (seccomp-profiles/default.json), or a profile file;
/// either must be a valid `linux.seccomp` object.
fn seccomp_profile(name: &str) -> Result<serde_json::Value> {
    let text = if name == "default" {
        DEFAULT_SECCOMP.to_string()
    } else {
        std::fs::read_to_string(name).with_context(|| format!("--seccomp: read {name}"))?
    };
    let profile: oci_spec::runtime::LinuxSeccomp =
        serde_json::from_str(&text).with_context(|| format!("--seccomp: {name}"))?;
    crate::linux::seccomp::validate(&profile).with_context(|| format!("--seccomp: {name}"))?;
    serde_json::to_value(profile).context("encode seccomp profile")
}

const DEFAULT_SECCOMP: &str = include_str!("../../seccomp-profiles/default.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_default_profile_is_valid() {
        let v = seccomp_profile("default").unwrap();
        assert_eq!(v["defaultAction"], "SCMP_ACT_ERRNO");
        assert!(seccomp_profile("/nonexistent.json").is_err());
    }
}
