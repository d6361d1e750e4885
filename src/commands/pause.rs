//! `pause ID`: freeze every process of a created or running container.

use std::path::Path;

use anyhow::Result;

use super::Globals;
use crate::error::RuntimeError;
use crate::linux::cgroups::{freezer, Cgroup};
use crate::state::{StateDir, Status};

pub fn pause(g: &Globals, id: &str) -> Result<()> {
    let sd = StateDir::open(&g.root, id)?;
    let c = sd.load()?;
    // As runc: only a created or running container can be paused; anything
    // else (already paused too) is "container not running".
    if !matches!(c.status(), Status::Created | Status::Running) {
        return Err(RuntimeError::NotRunning.into());
    }
    freezer::freeze(&Cgroup::open(Path::new(&c.cgroup_path))?)
}
