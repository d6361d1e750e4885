//! `resume ID`: thaw a paused container.

use std::path::Path;

use anyhow::{bail, Result};

use super::Globals;
use crate::linux::cgroups::{freezer, Cgroup};
use crate::state::{StateDir, Status};

pub fn resume(g: &Globals, id: &str) -> Result<()> {
    let sd = StateDir::open(&g.root, id)?;
    let c = sd.load()?;
    if c.status() != Status::Paused {
        bail!("container not paused");
    }
    freezer::thaw(&Cgroup::open(Path::new(&c.cgroup_path))?)
}
