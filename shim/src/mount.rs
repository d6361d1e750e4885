//! The rootfs mounts containerd hands to Create (an overlay, or a bind mount for the native
//! snapshotter), mounted on <bundle>/rootfs, and unmounted again at delete.

use std::path::Path;

use anyhow::{Context, Result};
use containerd_shim::protos::types::mount::Mount;
use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Mount option words that are flags; everything else goes to the filesystem as data.
fn flag(opt: &str) -> Option<(bool, MsFlags)> {
    Some(match opt {
        "ro" => (true, MsFlags::MS_RDONLY),
        "rw" => (false, MsFlags::MS_RDONLY),
        "bind" => (true, MsFlags::MS_BIND),
        "rbind" => (true, MsFlags::MS_BIND | MsFlags::MS_REC),
        "nosuid" => (true, MsFlags::MS_NOSUID),
        "suid" => (false, MsFlags::MS_NOSUID),
        "nodev" => (true, MsFlags::MS_NODEV),
        "dev" => (false, MsFlags::MS_NODEV),
        "noexec" => (true, MsFlags::MS_NOEXEC),
        "exec" => (false, MsFlags::MS_NOEXEC),
        "noatime" => (true, MsFlags::MS_NOATIME),
        "relatime" => (true, MsFlags::MS_RELATIME),
        "nodiratime" => (true, MsFlags::MS_NODIRATIME),
        "sync" => (true, MsFlags::MS_SYNCHRONOUS),
        "remount" => (true, MsFlags::MS_REMOUNT),
        "defaults" => (false, MsFlags::empty()),
        _ => return None,
    })
}

fn parse(options: &[String]) -> (MsFlags, String) {
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    for o in options {
        match flag(o) {
            Some((true, f)) => flags |= f,
            Some((false, f)) => flags &= !f,
            None => data.push(o.as_str()),
        }
    }
    (flags, data.join(","))
}

/// Mount every entry on `target`, in order; on failure undo what was mounted.
pub fn mount_all(mounts: &[Mount], target: &Path) -> Result<()> {
    for (i, m) in mounts.iter().enumerate() {
        if let Err(e) = mount_one(m, target) {
            if i > 0 {
                let _ = unmount_all(target);
            }
            return Err(e);
        }
    }
    Ok(())
}

fn mount_one(m: &Mount, target: &Path) -> Result<()> {
    let (flags, data) = parse(&m.options);
    let fstype = (!m.type_.is_empty() && m.type_ != "bind").then_some(m.type_.as_str());
    let data = (!data.is_empty()).then_some(data.as_str());
    mount(
        Some(m.source.as_str()),
        target,
        fstype,
        flags & !MsFlags::MS_RDONLY | bind_ro(flags),
        data,
    )
    .with_context(|| format!("mount {} ({}) on {}", m.source, m.type_, target.display()))?;
    // A read-only bind mount needs a remount to take the flag.
    if flags.contains(MsFlags::MS_BIND) && flags.contains(MsFlags::MS_RDONLY) {
        mount(
            None::<&str>,
            target,
            None::<&str>,
            flags | MsFlags::MS_REMOUNT,
            None::<&str>,
        )
        .with_context(|| format!("remount {} read-only", target.display()))?;
    }
    Ok(())
}

fn bind_ro(flags: MsFlags) -> MsFlags {
    if flags.contains(MsFlags::MS_BIND) {
        MsFlags::empty()
    } else {
        flags & MsFlags::MS_RDONLY
    }
}

/// Unmount everything stacked on `target` (EINVAL: nothing mounted there any more).
pub fn unmount_all(target: &Path) -> Result<()> {
    for _ in 0..64 {
        match umount2(target, MntFlags::UMOUNT_NOFOLLOW) {
            Ok(()) => continue,
            Err(Errno::EINVAL) | Err(Errno::ENOENT) => return Ok(()),
            Err(Errno::EBUSY) => {
                umount2(target, MntFlags::MNT_DETACH | MntFlags::UMOUNT_NOFOLLOW)
                    .with_context(|| format!("unmount {}", target.display()))?;
            }
            Err(e) => return Err(e).with_context(|| format!("unmount {}", target.display())),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_split_into_flags_and_data() {
        let o: Vec<String> = ["ro", "rbind", "lowerdir=/a:/b", "index=off"]
            .map(String::from)
            .into();
        let (f, d) = parse(&o);
        assert!(f.contains(MsFlags::MS_RDONLY | MsFlags::MS_BIND | MsFlags::MS_REC));
        assert_eq!(d, "lowerdir=/a:/b,index=off");
    }
}
