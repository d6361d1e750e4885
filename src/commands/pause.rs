//! `pause ID`: freeze every process of a created or running container.

use std::path::Path;

use anyhow::{bail, Result};

use super::Globals;
use crate::error::RuntimeError;
use crate::linux::cgroups::{freezer, Cgroup};
use crate::state::{StateDir, Status};

pub fn pause(g: &Globals, id: &str) -> Result<()> {
    let sd = StateDir::open(&g.root, id)?;
    let c = sd.load()?;
    match c.status() {
        Status::Created | Status::Running => {}
        Status::Paused => bail!("container {id} is already paused"),
        Status::Stopped | Status::Creating => return Err(RuntimeError::NotRunning.into()),
    }
    freezer::freeze(&Cgroup::open(Path::new(&c.cgroup_path))?)
}
