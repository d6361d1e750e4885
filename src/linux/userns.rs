//! The id maps of a new user namespace, written by the parent once the child
//! exists. As root every map is written directly; a user without privileges can
//! write only a map of its own id (after "deny" in setgroups for the gid map), so
//! anything else goes through the setuid helpers newuidmap/newgidmap, which allow
//! the ranges /etc/subuid and /etc/subgid give that user (runc does the same).

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{Linux, LinuxIdMapping};

use super::namespaces::map_text;

/// Writes setgroups (where needed), uid_map and gid_map of `pid`'s user namespace.
pub fn write_id_maps(pid: i32, linux: &Linux) -> Result<()> {
    // Without CAP_SETGID the kernel takes a gid map only after setgroups is denied
    // (a user could otherwise drop groups that deny it access); as runc.
    if !caps::has_cap(None, caps::CapSet::Effective, caps::Capability::CAP_SETGID).unwrap_or(false)
    {
        let path = format!("/proc/{pid}/setgroups");
        fs::write(&path, "deny").with_context(|| format!("write {path}"))?;
    }
    let uid = linux.uid_mappings().as_deref().unwrap_or_default();
    let gid = linux.gid_mappings().as_deref().unwrap_or_default();
    write_map(pid, "uid_map", "newuidmap", uid).context("linux.uidMappings")?;
    write_map(pid, "gid_map", "newgidmap", gid).context("linux.gidMappings")
}

fn write_map(pid: i32, file: &str, helper: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    if maps.is_empty() {
        return Ok(());
    }
    let path = format!("/proc/{pid}/{file}");
    match fs::write(&path, map_text(maps)) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => run_helper(pid, helper, maps)
            .with_context(|| format!("write {path}: {e}; tried {helper}")),
        Err(e) => Err(e).with_context(|| format!("write {path}")),
    }
}

fn run_helper(pid: i32, helper: &str, maps: &[LinuxIdMapping]) -> Result<()> {
    let Some(exe) = find_in_path(helper) else {
        bail!("{helper} not found in PATH (Debian package uidmap), needed to map ids other than the user's own");
    };
    let mut cmd = Command::new(&exe);
    cmd.arg(pid.to_string());
    for m in maps {
        cmd.args([
            m.container_id().to_string(),
            m.host_id().to_string(),
            m.size().to_string(),
        ]);
    }
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .with_context(|| format!("run {}", exe.display()))?;
    if !out.status.success() {
        let why = String::from_utf8_lossy(&out.stderr);
        let why = why.trim().replace('\n', "; ");
        bail!("{helper} failed ({}): {why}", out.status);
    }
    Ok(())
}

fn find_in_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into());
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}
