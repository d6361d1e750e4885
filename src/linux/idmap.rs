//! Mount trees the parent opens for init: id-mapped bind mounts (options
//! `idmap`/`ridmap`, or `mounts[].uidMappings`/`gidMappings`), and, in a user
//! namespace, every bind source as a fallback for sources init cannot reach as
//! the container's root (a 0700 state directory holding the notify socket, say).
//!
//! As runc 1.5: open_tree(OPEN_TREE_CLONE) of the source with the host's
//! credentials, MOUNT_ATTR_IDMAP set on the detached copy through a user namespace
//! that carries the mount's mappings (or the container's, or the one joined by
//! path), and init attaches the copy with move_mount. The trees are opened before
//! the clone, so init inherits them: no fd passing is needed.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use oci_spec::runtime::{LinuxIdMapping, Spec};
use serde_json::Value;

use super::namespaces::{self, Plan};

/// How one mount is id-mapped (config.json's fields, which oci-spec 0.8 drops).
#[derive(Debug, Default, Clone)]
pub struct MountIdmap {
    /// `ridmap`: the mapping applies to every mount below the source as well.
    pub recursive: bool,
    /// Empty: the container's own mappings.
    pub uid: Vec<LinuxIdMapping>,
    pub gid: Vec<LinuxIdMapping>,
}

/// A tree opened for mounts[i]: `idmapped` ones must be used; the others only
/// where init cannot open the source itself.
pub struct Tree {
    pub fd: OwnedFd,
    pub idmapped: bool,
}

/// The id-mapping of each mount, read from the raw config and checked as runc does.
pub fn parse(config: &Value, spec: &Spec, plan: &Plan) -> Result<Vec<Option<MountIdmap>>> {
    let raw = config["mounts"].as_array().cloned().unwrap_or_default();
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let linux = spec.linux().as_ref();
    let mut out = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let field = |name: &str| -> Result<Vec<LinuxIdMapping>> {
            match raw.get(i).and_then(|r| r.get(name)) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(v) => {
                    serde_json::from_value(v.clone()).with_context(|| format!("mounts[{i}].{name}"))
                }
            }
        };
        let (uid, gid) = (field("uidMappings")?, field("gidMappings")?);
        let opts = m.options().as_deref().unwrap_or_default();
        let recursive = opts.iter().any(|o| o == "ridmap");
        let asked = recursive || opts.iter().any(|o| o == "idmap");
        if !asked && uid.is_empty() && gid.is_empty() {
            out.push(None);
            continue;
        }
        let bind =
            opts.iter().any(|o| o == "bind" || o == "rbind") || m.typ().as_deref() == Some("bind");
        if !bind {
            bail!("mounts[{i}]: id-mapped mounts are only supported for bind-mounts");
        }
        if !super::rootless::euid_is_root() {
            bail!("mounts[{i}]: id-mapped mounts are not supported for rootless containers");
        }
        namespaces::validate_mappings(&format!("mounts[{i}].uidMappings"), &uid)?;
        namespaces::validate_mappings(&format!("mounts[{i}].gidMappings"), &gid)?;
        let own = |maps: Option<&Vec<LinuxIdMapping>>| maps.cloned().unwrap_or_default();
        let (uid, gid) = if uid.is_empty() && gid.is_empty() && plan.new_user() {
            (
                own(linux.and_then(|l| l.uid_mappings().as_ref())),
                own(linux.and_then(|l| l.gid_mappings().as_ref())),
            )
        } else {
            (uid, gid)
        };
        let joined = plan.join_of(libc::CLONE_NEWUSER).is_some();
        if (uid.is_empty() || gid.is_empty()) && !(joined && uid.is_empty() && gid.is_empty()) {
            bail!("mounts[{i}]: id-mapped mounts must have both uid and gid mappings specified");
        }
        out.push(Some(MountIdmap {
            recursive,
            uid,
            gid,
        }));
    }
    Ok(out)
}

const OPEN_TREE_CLONE: libc::c_uint = 1;
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 0x4;
const MOVE_MOUNT_T_EMPTY_PATH: libc::c_uint = 0x40;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// Opens the trees init needs, in the parent, before the clone. `userns`: the
/// container has a user namespace and paddock runs as root (a user without
/// privileges can neither clone trees nor help with access it lacks itself).
pub fn open_trees(
    spec: &Spec,
    idmaps: &[Option<MountIdmap>],
    bundle: &Path,
    plan: &Plan,
) -> Result<Vec<Option<Tree>>> {
    let mounts = spec.mounts().as_deref().unwrap_or_default();
    let fallback = plan.has(libc::CLONE_NEWUSER) && super::rootless::euid_is_root();
    let mut trees = Vec::new();
    for (i, m) in mounts.iter().enumerate() {
        let opts = m.options().as_deref().unwrap_or_default();
        let bind =
            opts.iter().any(|o| o == "bind" || o == "rbind") || m.typ().as_deref() == Some("bind");
        let idmap = idmaps.get(i).and_then(Option::as_ref);
        if !bind || (idmap.is_none() && !fallback) {
            trees.push(None);
            continue;
        }
        let source = bundle.join(m.source().as_deref().unwrap_or(Path::new("")));
        let recursive = opts.iter().any(|o| o == "rbind");
        let tree = match (clone_tree(&source, recursive), idmap) {
            (Ok(fd), None) => Some(Tree {
                fd,
                idmapped: false,
            }),
            // Init reports a missing or unreadable source itself.
            (Err(_), None) => None,
            (Err(e), Some(_)) => return Err(e.context(format!("mounts[{i}]"))),
            (Ok(fd), Some(map)) => {
                set_idmap(&fd, map, plan)
                    .with_context(|| format!("mounts[{i}]: id-map {}", source.display()))?;
                Some(Tree { fd, idmapped: true })
            }
        };
        trees.push(tree);
    }
    Ok(trees)
}

fn clone_tree(source: &Path, recursive: bool) -> Result<OwnedFd> {
    let path = std::ffi::CString::new(source.as_os_str().as_encoded_bytes())
        .context("source path contains a NUL byte")?;
    let mut flags = OPEN_TREE_CLONE | libc::O_CLOEXEC as libc::c_uint;
    if recursive {
        flags |= libc::AT_RECURSIVE as libc::c_uint;
    }
    // SAFETY: a valid C string; open_tree returns a new fd or -1.
    let fd = unsafe { libc::syscall(libc::SYS_open_tree, libc::AT_FDCWD, path.as_ptr(), flags) };
    Errno::result(fd).with_context(|| format!("open_tree {}", source.display()))?;
    // SAFETY: the kernel just gave us this fd.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

fn set_idmap(tree: &OwnedFd, map: &MountIdmap, plan: &Plan) -> Result<()> {
    let userns = match plan.join_of(libc::CLONE_NEWUSER) {
        Some(j) if map.uid.is_empty() => namespaces::open_ns(j)?,
        _ => userns_with_maps(&map.uid, &map.gid)?,
    };
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    let mut flags = libc::AT_EMPTY_PATH;
    if map.recursive {
        flags |= libc::AT_RECURSIVE;
    }
    // SAFETY: the path is a valid C string, attr outlives the call, size matches.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            tree.as_raw_fd(),
            c"".as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    match Errno::result(ret) {
        Ok(_) => Ok(()),
        Err(Errno::EINVAL) => bail!(
            "set MOUNT_ATTR_IDMAP: {} (the filesystem cannot be id-mapped on this kernel)",
            Errno::EINVAL
        ),
        Err(e) => Err(e).context("set MOUNT_ATTR_IDMAP"),
    }
}

/// A user namespace with these maps, held by its fd: a child is forked into a new
/// one, the maps are written, the namespace is opened and the child killed.
fn userns_with_maps(uid: &[LinuxIdMapping], gid: &[LinuxIdMapping]) -> Result<OwnedFd> {
    // SAFETY: fork-style clone of a single-threaded process; the child only pauses.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong,
            0,
            0,
            0,
            0,
        )
    };
    if pid == 0 {
        loop {
            // SAFETY: pause has no preconditions; the parent kills us.
            unsafe { libc::pause() };
        }
    }
    if pid < 0 {
        return Err(std::io::Error::last_os_error())
            .context("clone a user namespace for the id-mapping");
    }
    let pid = pid as i32;
    let result = (|| {
        let write = |file: &str, maps: &[LinuxIdMapping]| {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, namespaces::map_text(maps))
                .with_context(|| format!("write {path}"))
        };
        write("uid_map", uid)?;
        write("gid_map", gid)?;
        let ns = File::open(format!("/proc/{pid}/ns/user"))
            .context("open the id-mapping's user namespace")?;
        Ok(OwnedFd::from(ns))
    })();
    crate::process::kill_and_reap(pid);
    result
}

/// EACCES or EPERM anywhere in the chain: init may not reach a path the parent can.
pub fn is_access_error(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        let errno = c.downcast_ref::<Errno>().map(|e| *e as i32).or_else(|| {
            c.downcast_ref::<std::io::Error>()
                .and_then(|e| e.raw_os_error())
        });
        errno.is_some_and(|n| n == libc::EACCES || n == libc::EPERM)
    })
}

/// In init: attaches `tree` on the mount point `target` names.
pub fn attach(tree: &OwnedFd, target: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    // SAFETY: valid fds and C strings.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            tree.as_raw_fd(),
            c"".as_ptr(),
            target.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    };
    Errno::result(ret).map(drop).context("move_mount")
}
