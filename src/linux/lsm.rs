//! AppArmor and SELinux: refuse labels the host cannot apply, and set the label the
//! next execve takes on through procfs attr files that are verified to be real procfs
//! (CVE-2019-16884: a fake /proc would swallow the write and leave the process unconfined).

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::errno::Errno;
use nix::fcntl::{open, OFlag};
use nix::sys::stat::Mode;
use nix::sys::statfs::{fstatfs, statfs, PROC_SUPER_MAGIC};
use nix::unistd::write;

const APPARMOR_ENABLED: &str = "/sys/module/apparmor/parameters/enabled";
const SELINUXFS: &str = "/sys/fs/selinux";
/// SELINUX_MAGIC from linux/magic.h.
const SELINUX_MAGIC: libc::__fsword_t = 0xf97c_ff8c;

/// Refuses an AppArmor profile or SELinux label on a host that cannot apply it.
/// Empty strings mean "not set", as in runc.
pub fn validate(
    apparmor_profile: Option<&str>,
    selinux_label: Option<&str>,
    mount_label: Option<&str>,
) -> Result<()> {
    check(
        apparmor_profile,
        selinux_label,
        mount_label,
        apparmor_enabled(),
        selinux_enabled(),
    )
}

fn check(
    apparmor_profile: Option<&str>,
    selinux_label: Option<&str>,
    mount_label: Option<&str>,
    apparmor: bool,
    selinux: bool,
) -> Result<()> {
    let given = |v: Option<&str>| v.is_some_and(|s| !s.is_empty());
    for (field, v) in [
        ("process.apparmorProfile", apparmor_profile),
        ("process.selinuxLabel", selinux_label),
        ("linux.mountLabel", mount_label),
    ] {
        if v.is_some_and(|s| s.contains('\0') || s.contains('\n')) {
            bail!("{field}: invalid value {v:?}");
        }
    }
    if given(apparmor_profile) && !apparmor {
        bail!("process.apparmorProfile: AppArmor is not enabled on this host");
    }
    if given(selinux_label) && !selinux {
        bail!("process.selinuxLabel: SELinux is not enabled on this host");
    }
    if given(mount_label) && !selinux {
        bail!("linux.mountLabel: SELinux is not enabled on this host");
    }
    Ok(())
}

/// AppArmor is enabled when the module parameter reads "Y".
fn apparmor_enabled() -> bool {
    fs::read_to_string(APPARMOR_ENABLED).is_ok_and(|s| s.trim() == "Y")
}

/// SELinux is enabled when selinuxfs is mounted at /sys/fs/selinux.
fn selinux_enabled() -> bool {
    statfs(SELINUXFS).is_ok_and(|s| s.filesystem_type().0 == SELINUX_MAGIC)
}

/// Makes the next execve of this thread enter AppArmor profile `profile`. The kernel
/// refuses a profile that is not loaded (ENOENT), so that fails here, as in runc.
pub fn apply_apparmor_on_exec(profile: &str) -> Result<()> {
    if profile.is_empty() {
        return Ok(());
    }
    change_profile_on_exec(profile)
        .with_context(|| format!("apparmor failed to apply profile {profile:?}"))
}

fn change_profile_on_exec(profile: &str) -> Result<()> {
    // Kernels with LSM stacking have AppArmor's own attr directory; older ones only attr/.
    let mut path = "/proc/thread-self/attr/apparmor/exec";
    let attr = match open_proc_attr(path) {
        Err(e) if is_enoent(&e) => {
            path = "/proc/thread-self/attr/exec";
            open_proc_attr(path)?
        }
        r => r?,
    };
    write_attr(&attr, format!("exec {profile}").as_bytes()).with_context(|| format!("write {path}"))
}

/// Makes the next execve of this thread take SELinux label `label`.
pub fn apply_selinux_on_exec(label: &str) -> Result<()> {
    if label.is_empty() {
        return Ok(());
    }
    let attr = open_proc_attr("/proc/thread-self/attr/exec")?;
    write_attr(&attr, label.as_bytes())
        .with_context(|| format!("process.selinuxLabel: set {label:?} for exec"))
}

fn is_enoent(e: &anyhow::Error) -> bool {
    e.downcast_ref::<Errno>() == Some(&Errno::ENOENT)
}

/// Opens an LSM attr file for writing and checks that it lives on procfs.
fn open_proc_attr(path: &str) -> Result<OwnedFd> {
    let fd = open(
        path,
        OFlag::O_WRONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(anyhow::Error::from)
    .with_context(|| format!("open {path}"))?;
    // SAFETY: open returned a new fd that nothing else owns.
    let fd = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    ensure_procfs(&fd, Path::new(path))?;
    Ok(fd)
}

fn ensure_procfs(fd: &OwnedFd, path: &Path) -> Result<()> {
    let st = fstatfs(fd.as_fd()).with_context(|| format!("fstatfs {}", path.display()))?;
    if st.filesystem_type() != PROC_SUPER_MAGIC {
        bail!(
            "{}: not on procfs, refusing to write an LSM label",
            path.display()
        );
    }
    Ok(())
}

/// The kernel takes an attr value in one write; a short write is an error.
fn write_attr(fd: &OwnedFd, value: &[u8]) -> Result<()> {
    let n = loop {
        match write(fd, value) {
            Err(Errno::EINTR) => continue,
            r => break r?,
        }
    };
    if n != value.len() {
        bail!("short write ({n} of {} bytes)", value.len());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_need_an_enabled_lsm() {
        check(None, None, None, false, false).unwrap();
        check(Some(""), Some(""), Some(""), false, false).unwrap();
        check(Some("docker-default"), None, None, true, false).unwrap();
        check(
            None,
            Some("system_u:system_r:container_t:s0"),
            Some("x"),
            false,
            true,
        )
        .unwrap();
        let e = check(Some("p"), None, None, false, true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "process.apparmorProfile: AppArmor is not enabled on this host"
        );
        let e = check(None, Some("l"), None, true, false)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "process.selinuxLabel: SELinux is not enabled on this host"
        );
        let e = check(None, None, Some("l"), true, false)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "linux.mountLabel: SELinux is not enabled on this host");
        let e = check(Some("a\nb"), None, None, true, true)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("process.apparmorProfile: invalid value"),
            "{e}"
        );
    }

    #[test]
    fn host_detection_matches_this_kernel() {
        // This kernel has neither LSM: any label must be refused.
        if !apparmor_enabled() {
            let e = validate(Some("p"), None, None).unwrap_err().to_string();
            assert!(e.contains("AppArmor is not enabled"), "{e}");
        }
        if !selinux_enabled() {
            assert!(validate(None, None, Some("l")).is_err());
        }
        validate(None, None, None).unwrap();
    }

    #[test]
    fn a_profile_the_kernel_refuses_is_an_error() {
        // Not loaded where AppArmor is enabled (ENOENT); refused where it is not.
        let e = apply_apparmor_on_exec("paddock-unit-test-not-loaded").unwrap_err();
        let e = format!("{e:#}");
        assert!(
            e.starts_with("apparmor failed to apply profile \"paddock-unit-test-not-loaded\": "),
            "{e}"
        );
    }

    #[test]
    fn attr_files_must_be_on_procfs() {
        let dir = std::env::temp_dir().join(format!("paddock-lsm-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let file = dir.join("exec");
        fs::write(&file, "").unwrap();
        let e = open_proc_attr(file.to_str().unwrap())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with("not on procfs, refusing to write an LSM label"),
            "{e}"
        );
        // A symlink as the last component is refused outright (O_NOFOLLOW).
        let link = dir.join("link");
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink("/proc/thread-self/attr/exec", &link).unwrap();
        assert!(open_proc_attr(link.to_str().unwrap()).is_err());
        fs::remove_dir_all(&dir).unwrap();
        // The real attr file passes the procfs check (writing needs an LSM, not done here).
        if Path::new("/proc/thread-self/attr/exec").exists() {
            open_proc_attr("/proc/thread-self/attr/exec").unwrap();
        }
        apply_selinux_on_exec("").unwrap();
        apply_apparmor_on_exec("").unwrap();
    }
}
