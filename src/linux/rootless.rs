//! Rootless mode: paddock run by a user without privileges on the host (runc's
//! RootlessEUID), and whether the container's cgroup may be missing (runc's
//! RootlessCgroups, `--rootless true|false|auto`).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

use crate::linux::cgroups::{resources, v2, Cgroup};

/// The default state root of runc 1.5, renamed: `$XDG_RUNTIME_DIR/paddock` for a user
/// without privileges (or root inside a user namespace when $USER is not root),
/// `/run/paddock` otherwise — root ignores XDG_RUNTIME_DIR, which Podman may pass
/// set to another user's directory. The second value says XDG_RUNTIME_DIR was used.
pub fn default_root() -> (PathBuf, bool) {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|v| !v.is_empty());
    match xdg {
        Some(dir) if honors_xdg_runtime_dir() => (PathBuf::from(dir).join("paddock"), true),
        _ => (PathBuf::from(crate::state::DEFAULT_ROOT), false),
    }
}

fn honors_xdg_runtime_dir() -> bool {
    if !euid_is_root() {
        return true;
    }
    running_in_userns() && std::env::var("USER").map_or(true, |u| u != "root")
}

/// As runc for a root taken from XDG_RUNTIME_DIR: made 0700 with the sticky bit,
/// which keeps the XDG cleaner from removing it.
pub fn prepare_xdg_root(root: &std::path::Path) -> Result<()> {
    fs::create_dir_all(root).with_context(|| {
        format!(
            "--root: create {}: the path in $XDG_RUNTIME_DIR must be writable by the user",
            root.display()
        )
    })?;
    fs::set_permissions(root, fs::Permissions::from_mode(0o1700))
        .with_context(|| format!("--root: chmod {}", root.display()))
}

pub fn euid_is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// True inside a user namespace other than the initial one (its uid_map is not the
/// identity over the whole range).
pub fn running_in_userns() -> bool {
    match fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => map.split_whitespace().collect::<Vec<_>>() != ["0", "0", "4294967295"],
        Err(_) => false,
    }
}

/// `--rootless`: whether the container may go without a cgroup (runc's rootless
/// cgroup manager). "auto" (the default) means yes for a user without privileges,
/// and for root inside a user namespace with the cgroupfs driver (runc cannot tell
/// there whether the cgroup is writable either).
pub fn rootless_cgroups(flag: Option<&str>) -> Result<bool> {
    match flag {
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        None | Some("auto") => Ok(!euid_is_root() || running_in_userns()),
        Some(v) => bail!("--rootless: invalid value {v:?} (true, false or auto)"),
    }
}

/// The errors that mean "no permission to make this cgroup", which a rootless
/// container survives (runc's list: EPERM, EACCES, EROFS).
pub fn is_permission_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::raw_os_error)
            .is_some_and(|n| n == libc::EPERM || n == libc::EACCES || n == libc::EROFS)
    })
}

/// As runc for a user without privileges: a mount's uid=/gid= option must name an
/// id the container's maps cover (the kernel would refuse it later, less clearly).
pub fn check_mount_ids(spec: &Spec) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uid = linux
        .and_then(|l| l.uid_mappings().as_deref())
        .unwrap_or_default();
    let gid = linux
        .and_then(|l| l.gid_mappings().as_deref())
        .unwrap_or_default();
    for (i, m) in spec
        .mounts()
        .as_deref()
        .unwrap_or_default()
        .iter()
        .enumerate()
    {
        for opt in m.options().as_deref().unwrap_or_default() {
            let (maps, value) = match (opt.strip_prefix("uid="), opt.strip_prefix("gid=")) {
                (Some(v), _) => (uid, v),
                (_, Some(v)) => (gid, v),
                _ => continue,
            };
            // As runc: a value that is not a number is left to the filesystem.
            let Ok(id) = value.parse::<u32>() else {
                continue;
            };
            if !super::namespaces::maps_contain(maps, id) {
                bail!("mounts[{i}].options: cannot specify {opt} mount option for rootless container: the id is not mapped in the user namespace");
            }
        }
    }
    Ok(())
}

/// The container's cgroup with `--rootless` (runc's rootless cgroup manager): made
/// where the user may (a delegated v2 subtree named by linux.cgroupsPath), else the
/// container goes without one, with a warning, unless it asks for a cgroup path or
/// for limits. Device rules are not applied (attaching a device program needs
/// privileges on the host; runc ignores their errors too).
pub fn make_cgroup(rel: &std::path::Path, explicit_path: bool, spec: &Spec) -> Result<Cgroup> {
    let linux = spec.linux().as_ref();
    let mut r = linux
        .and_then(|l| l.resources().clone())
        .unwrap_or_default();
    r.set_devices(None);
    let limits = needs_controllers(&r);
    let mut cg = match Cgroup::create(rel) {
        Ok(cg) => cg,
        Err(e) if is_permission_error(&e) && !explicit_path && !limits => {
            crate::logger::warn(&format!(
                "rootless container without a cgroup ({e:#}): resource limits, pause and the cgroup's process list are not available"
            ));
            if !linux
                .and_then(|l| l.namespaces().as_deref())
                .unwrap_or_default()
                .iter()
                .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Pid)
            {
                crate::logger::warn("Creating a rootless container with no cgroup and no private pid namespace. Such configuration is strongly discouraged (as it is impossible to properly kill all container's processes) and will result in an error in a future runc version.");
            }
            return Ok(Cgroup::none());
        }
        Err(e) if is_permission_error(&e) && !explicit_path => return Err(e.context(
            "rootless needs no limits + no cgrouppath when no permission is granted for cgroups",
        )),
        Err(e) => return Err(e),
    };
    let result = cg
        .enter_v2(v2::uses_domain_controllers(&r))
        .and_then(|()| resources::apply(&cg, &r, None));
    match result {
        Ok(()) => Ok(cg),
        Err(e) => {
            cg.discard();
            Err(e)
        }
    }
}

/// Whether linux.resources sets anything besides device rules (runc's
/// needAnyControllers): a limit that a missing cgroup could not enforce.
fn needs_controllers(r: &oci_spec::runtime::LinuxResources) -> bool {
    let v = serde_json::to_value(r).unwrap_or_default();
    v.as_object().is_some_and(|o| {
        o.iter().any(|(k, v)| {
            k != "devices"
                && match v {
                    serde_json::Value::Null => false,
                    serde_json::Value::Object(m) => m.values().any(|x| !x.is_null()),
                    serde_json::Value::Array(a) => !a.is_empty(),
                    _ => true,
                }
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rootless_flag_values() {
        assert!(rootless_cgroups(Some("true")).unwrap());
        assert!(!rootless_cgroups(Some("false")).unwrap());
        let e = rootless_cgroups(Some("yes")).unwrap_err().to_string();
        assert_eq!(e, "--rootless: invalid value \"yes\" (true, false or auto)");
    }

    #[test]
    fn only_limits_need_controllers() {
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_str(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#).unwrap();
        assert!(!needs_controllers(&r));
        let r: oci_spec::runtime::LinuxResources =
            serde_json::from_str(r#"{"pids": {"limit": 10}}"#).unwrap();
        assert!(needs_controllers(&r));
        assert!(!needs_controllers(&Default::default()));
    }

    #[test]
    fn permission_errors_are_found_in_the_chain() {
        let io = std::io::Error::from_raw_os_error(libc::EACCES);
        let e = anyhow::Error::new(io).context("create cgroup /x");
        assert!(is_permission_error(&e));
        let io = std::io::Error::from_raw_os_error(libc::ENOENT);
        assert!(!is_permission_error(&anyhow::Error::new(io)));
    }
}
