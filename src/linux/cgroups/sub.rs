//! `exec --cgroup [ctrl[,ctrl]:]path` (repeatable), as runc parses it: the new
//! process joins existing sub-cgroups of the container's cgroup, per controller
//! or (without a prefix, given once) in every hierarchy.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Result};

use super::Cgroup;

/// `--cgroup` arguments as a map from controller ("" for all) to sub-path.
pub fn parse(args: &[String]) -> Result<BTreeMap<String, PathBuf>> {
    let mut subs = BTreeMap::new();
    for arg in args {
        let (ctrls, path) = match arg.split_once(':') {
            Some((c, p)) => (c.split(',').collect::<Vec<_>>(), p),
            None if args.len() == 1 => (vec![""], arg.as_str()),
            None => bail!("invalid --cgroup argument: {arg} (missing <controller>: prefix)"),
        };
        let rel = Path::new(path.trim_start_matches('/'));
        if rel.as_os_str().is_empty()
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            bail!("invalid --cgroup argument: {arg} (the path must stay inside the container's cgroup)");
        }
        for c in ctrls {
            if c.is_empty() && arg.contains(':') {
                bail!("invalid --cgroup argument: {arg} (empty <controller> prefix)");
            }
            if subs.insert(c.to_string(), rel.to_path_buf()).is_some() {
                bail!("invalid --cgroup argument(s): controller {c} specified multiple times");
            }
        }
    }
    Ok(subs)
}

impl Cgroup {
    /// The same cgroup with the sub-cgroups of `args` (which must exist) below
    /// it; hierarchies not named keep the container's own directory.
    pub fn with_subs(&self, args: &[String]) -> Result<Cgroup> {
        let subs = parse(args)?;
        let pure_v2 = self.is_pure_v2();
        let mut cg = Cgroup {
            dirs: Vec::new(),
            hiers: self.hiers.clone(),
            made: Default::default(),
        };
        for (dir, h) in self.dirs.iter().zip(&self.hiers) {
            let sub = subs.get("").or_else(|| {
                subs.iter()
                    .find(|(c, _)| pure_v2 || h.controllers.iter().any(|x| x == *c))
                    .map(|(_, p)| p)
            });
            let Some(sub) = sub else {
                cg.dirs.push(dir.clone());
                continue;
            };
            let d = dir.join(sub);
            if !d.is_dir() {
                bail!("--cgroup: {} does not exist", d.display());
            }
            cg.dirs.push(d);
        }
        for c in subs.keys().filter(|c| !c.is_empty()) {
            let known = pure_v2
                || self
                    .hiers
                    .iter()
                    .any(|h| h.controllers.iter().any(|x| x == c));
            if !known {
                bail!("--cgroup: unknown controller {c}");
            }
        }
        Ok(cg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_like_runc() {
        let m = parse(&args(&["memory,pids:a", "cpu:/b/c"])).unwrap();
        assert_eq!(m["memory"], Path::new("a"));
        assert_eq!(m["pids"], Path::new("a"));
        assert_eq!(m["cpu"], Path::new("b/c"));
        assert_eq!(parse(&args(&["x"])).unwrap()[""], Path::new("x"));
        for bad in [
            &["x", "cpu:y"][..],
            &[":y"],
            &["cpu:a", "cpu:b"],
            &["cpu:../a"],
            &["cpu:"],
        ] {
            assert!(parse(&args(bad)).is_err(), "{bad:?}");
        }
    }
}
