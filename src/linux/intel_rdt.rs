//! linux.intelRdt. runc refuses it where the host has no resctrl filesystem mounted,
//! in its own words; paddock does the same. Where resctrl is mounted, paddock does not
//! make or join resctrl groups, so it refuses the field by name instead of ignoring it.

use anyhow::{bail, Result};

/// RDTGROUP_SUPER_MAGIC of linux/magic.h.
const RESCTRL_MAGIC: libc::c_long = 0x7655821;

/// Fails when config.json sets linux.intelRdt (any object, even `{}`, as runc reads it).
pub fn check(config: &serde_json::Value) -> Result<()> {
    if config["linux"]["intelRdt"].is_null() {
        return Ok(());
    }
    if !resctrl_mounted() {
        bail!("linux.intelRdt: intelRdt is specified in config, but Intel RDT is not enabled");
    }
    bail!("linux.intelRdt: not supported (paddock does not manage resctrl groups)")
}

/// As runc: resctrl at /sys/fs/resctrl, or mounted anywhere else.
fn resctrl_mounted() -> bool {
    if nix::sys::statfs::statfs("/sys/fs/resctrl")
        .is_ok_and(|s| s.filesystem_type().0 as libc::c_long == RESCTRL_MAGIC)
    {
        return true;
    }
    std::fs::read_to_string("/proc/self/mountinfo").is_ok_and(|m| {
        m.lines()
            .filter_map(|l| l.split_once(" - ").map(|(_, rest)| rest))
            .any(|rest| rest.split(' ').next() == Some("resctrl"))
    })
}
