//! Process capabilities: validation against the running kernel, and the final switch to
//! exactly the configured bounding / effective / permitted / inheritable / ambient sets.
//!
//! Sets are handled as 64-bit masks indexed by capability number, so the bounding set can
//! be trimmed of capabilities newer than any name oci-spec knows.

use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use caps::Capability as Cap;
use nix::errno::Errno;
use oci_spec::runtime::{Capabilities, Capability, LinuxCapabilities};

const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// The five configured sets as masks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct CapMasks {
    bounding: u64,
    effective: u64,
    permitted: u64,
    inheritable: u64,
    ambient: u64,
}

/// Checks the sets as runc does when it applies them: effective outside permitted is an
/// error (capset refuses it); an ambient capability outside permitted and inheritable
/// cannot be raised, so it is skipped with runc's warning.
pub fn validate(caps: &LinuxCapabilities) -> Result<()> {
    let m = masks_of(caps);
    if let Some(extra) = first_outside(m.effective, m.permitted) {
        bail!("process.capabilities.effective: {extra} is not in the permitted set");
    }
    let skipped = m.ambient & !(m.permitted & m.inheritable);
    for number in (0..64u8).filter(|n| skipped & (1u64 << n) != 0) {
        crate::logger::warn(&format!(
            "can't raise ambient capability {}: operation not permitted",
            name_of(number)
        ));
    }
    Ok(())
}

/// The capability names in a config's `process.capabilities` that runc ignores with a
/// warning: not spelled as a known `CAP_` name, or unknown to the running kernel. A
/// config written for a newer kernel still runs. Sorted, each name once.
pub fn unavailable_names(data: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Config {
        process: Option<Process>,
    }
    #[derive(serde::Deserialize)]
    struct Process {
        capabilities: Option<std::collections::BTreeMap<String, Option<Vec<String>>>>,
    }
    // A config of the wrong shape is left to the real parser, which names the field.
    let Ok(config) = serde_json::from_slice::<Config>(data) else {
        return Vec::new();
    };
    let names = config
        .process
        .and_then(|p| p.capabilities)
        .into_iter()
        .flatten()
        .flat_map(|(_, set)| set.unwrap_or_default());
    unavailable(names)
}

/// `unavailable_names` of a JSON `capabilities` object (a process.json's).
pub fn unavailable_in(caps: &serde_json::Value) -> Vec<String> {
    let names = caps
        .as_object()
        .into_iter()
        .flat_map(|sets| sets.values())
        .filter_map(|set| set.as_array())
        .flatten()
        .filter_map(|name| name.as_str().map(str::to_string));
    unavailable(names)
}

/// The names runc would not apply, sorted, each once.
pub fn unavailable(names: impl IntoIterator<Item = String>) -> Vec<String> {
    let last_cap = read_last_cap().unwrap_or(63);
    let mut names: Vec<String> = names
        .into_iter()
        .filter(|name| !available(name, last_cap))
        .collect();
    names.sort();
    names.dedup();
    names
}

/// Removes `names` from every set of a JSON `capabilities` object.
pub fn remove_names(caps: &mut serde_json::Value, names: &[String]) {
    let Some(sets) = caps.as_object_mut() else {
        return;
    };
    for set in sets.values_mut().filter_map(|v| v.as_array_mut()) {
        set.retain(|c| !c.as_str().is_some_and(|n| names.iter().any(|x| x == n)));
    }
}

/// The warning runc prints for `unavailable_names`.
pub fn warn_ignored(names: &[String]) {
    if !names.is_empty() {
        crate::logger::warn(&format!(
            "ignoring unknown or unavailable capabilities: [{}]",
            names.join(" ")
        ));
    }
}

/// Exactly a `CAP_` name this binary knows, numbered within the running kernel's range.
fn available(name: &str, last_cap: u8) -> bool {
    caps::all()
        .into_iter()
        .any(|c| c.index() <= last_cap && c.to_string() == name)
        && serde_json::from_value::<Capability>(name.into()).is_ok()
}

/// Every capability name this binary knows (the caps crate's list, as config.json
/// spells it), in kernel number order: the `capabilities` of `paddock features`.
pub fn known_names() -> Vec<String> {
    let mut known: Vec<Cap> = caps::all()
        .into_iter()
        .filter(|c| serde_json::from_value::<Capability>(c.to_string().into()).is_ok())
        .collect();
    known.sort_by_key(|c| c.index());
    known.iter().map(Cap::to_string).collect()
}

/// Keeps the permitted set across the coming setresuid to a non-zero uid.
pub fn prepare_for_setuid() -> Result<()> {
    set_keepcaps(true)
}

/// Switches to exactly the configured sets (`None`: every set empty). Called after setresuid.
pub fn apply(caps: Option<&LinuxCapabilities>) -> Result<()> {
    let wanted = caps.map(masks_of).unwrap_or_default();
    set_keepcaps(false)?;
    // setresuid to a non-zero uid cleared the effective set; CAP_SETPCAP is needed in it
    // to shrink the bounding set, so make everything still permitted effective first.
    let current = capget()?;
    capset(current.permitted, current.permitted, current.inheritable)
        .context("raise effective capabilities to permitted")?;
    drop_bounding_except(wanted.bounding, read_last_cap()?)?;
    capset(wanted.effective, wanted.permitted, wanted.inheritable).with_context(|| {
        format!(
            "set capabilities (effective {}, permitted {}, inheritable {})",
            names(wanted.effective),
            names(wanted.permitted),
            names(wanted.inheritable)
        )
    })?;
    // Ambient capabilities the kernel would refuse were warned about at validation.
    set_ambient(wanted.ambient & wanted.permitted & wanted.inheritable)
}

/// The highest capability number the running kernel knows. Probed with PR_CAPBSET_READ
/// (EINVAL past the last one) rather than read from /proc/sys/kernel/cap_last_cap, because
/// `apply` runs after pivot_root, where /proc belongs to the container image. The kernel's
/// numbers are contiguous, so a binary search finds the last in 7 calls; the answer is the
/// same in every namespace, so init keeps the one its parent found checking the config.
fn read_last_cap() -> Result<u8> {
    static LAST: OnceLock<u8> = OnceLock::new();
    if let Some(last) = LAST.get() {
        return Ok(*last);
    }
    let known = |number: u8| {
        // SAFETY: prctl with integer arguments only.
        let rc =
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(number), 0, 0, 0) };
        rc >= 0
    };
    if !known(0) {
        bail!("prctl PR_CAPBSET_READ: {}", Errno::last().desc());
    }
    // Known: lo; unknown: hi (64 stands for "past any capability mask").
    let (mut lo, mut hi) = (0u8, 64u8);
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if known(mid) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(*LAST.get_or_init(|| lo))
}

/// Name of the lowest capability in `set` that is missing from `allowed`.
fn first_outside(set: u64, allowed: u64) -> Option<String> {
    let extra = set & !allowed;
    (extra != 0).then(|| name_of(extra.trailing_zeros() as u8))
}

fn masks_of(caps: &LinuxCapabilities) -> CapMasks {
    let mask = |set: &Option<Capabilities>| {
        set.iter()
            .flatten()
            .fold(0u64, |acc, c| acc | to_cap(*c).bitmask())
    };
    CapMasks {
        bounding: mask(caps.bounding()),
        effective: mask(caps.effective()),
        permitted: mask(caps.permitted()),
        inheritable: mask(caps.inheritable()),
        ambient: mask(caps.ambient()),
    }
}

fn name_of(number: u8) -> String {
    caps::all()
        .into_iter()
        .find(|c| c.index() == number)
        .map_or_else(|| format!("capability {number}"), |c| c.to_string())
}

fn names(mask: u64) -> String {
    let list: Vec<String> = (0..64u8)
        .filter(|n| mask & (1u64 << n) != 0)
        .map(name_of)
        .collect();
    format!("[{}]", list.join(" "))
}

fn set_keepcaps(keep: bool) -> Result<()> {
    // SAFETY: prctl with integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, libc::c_ulong::from(keep), 0, 0, 0) };
    Errno::result(rc)
        .map(drop)
        .with_context(|| format!("prctl PR_SET_KEEPCAPS {}", u8::from(keep)))
}

/// Drops from the bounding set every capability the kernel knows that is not in `keep`.
fn drop_bounding_except(keep: u64, last_cap: u8) -> Result<()> {
    for number in (0..=last_cap).filter(|n| keep & (1u64 << n) == 0) {
        // SAFETY: prctl with integer arguments only.
        let rc =
            unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(number), 0, 0, 0) };
        Errno::result(rc)
            .map(drop)
            .with_context(|| format!("drop {} from the bounding set", name_of(number)))?;
    }
    Ok(())
}

/// Clears the ambient set, then raises `wanted`. As runc, a cap the kernel will not
/// raise (not in permitted and inheritable, e.g. from `exec --cap`) is skipped with a warning.
fn set_ambient(wanted: u64) -> Result<()> {
    let ambient = |op: libc::c_int, number: u8| {
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                op as libc::c_ulong,
                libc::c_ulong::from(number),
                0,
                0,
            )
        };
        Errno::result(rc).map(drop)
    };
    ambient(libc::PR_CAP_AMBIENT_CLEAR_ALL, 0).context("clear the ambient capability set")?;
    for number in (0..64u8).filter(|n| wanted & (1u64 << n) != 0) {
        if let Err(e) = ambient(libc::PR_CAP_AMBIENT_RAISE, number) {
            crate::logger::warn(&format!(
                "can't raise ambient capability {}: {e}",
                name_of(number)
            ));
        }
    }
    Ok(())
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// One 32-bit half of the three sets (capset v3 takes two: bits 0-31, then 32-63).
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

fn capget() -> Result<CapMasks> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: v3 header and a two-element data array, as the kernel expects.
    let rc = unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) };
    Errno::result(rc).context("capget")?;
    let join = |lo: u32, hi: u32| u64::from(lo) | (u64::from(hi) << 32);
    Ok(CapMasks {
        effective: join(data[0].effective, data[1].effective),
        permitted: join(data[0].permitted, data[1].permitted),
        inheritable: join(data[0].inheritable, data[1].inheritable),
        ..CapMasks::default()
    })
}

/// Sets all three base sets in one call, so no ordering between them can fail halfway.
fn capset(effective: u64, permitted: u64, inheritable: u64) -> Result<()> {
    let mut header = CapHeader {
        version: CAPABILITY_VERSION_3,
        pid: 0,
    };
    let half = |shift: u32| CapData {
        effective: (effective >> shift) as u32,
        permitted: (permitted >> shift) as u32,
        inheritable: (inheritable >> shift) as u32,
    };
    let data = [half(0), half(32)];
    // SAFETY: v3 header and a two-element data array, as the kernel expects.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) };
    Errno::result(rc).map(drop).context("capset")
}

/// oci-spec's names to kernel numbers (through the caps crate, which knows the numbers).
fn to_cap(cap: Capability) -> Cap {
    match cap {
        Capability::AuditControl => Cap::CAP_AUDIT_CONTROL,
        Capability::AuditRead => Cap::CAP_AUDIT_READ,
        Capability::AuditWrite => Cap::CAP_AUDIT_WRITE,
        Capability::BlockSuspend => Cap::CAP_BLOCK_SUSPEND,
        Capability::Bpf => Cap::CAP_BPF,
        Capability::CheckpointRestore => Cap::CAP_CHECKPOINT_RESTORE,
        Capability::Chown => Cap::CAP_CHOWN,
        Capability::DacOverride => Cap::CAP_DAC_OVERRIDE,
        Capability::DacReadSearch => Cap::CAP_DAC_READ_SEARCH,
        Capability::Fowner => Cap::CAP_FOWNER,
        Capability::Fsetid => Cap::CAP_FSETID,
        Capability::IpcLock => Cap::CAP_IPC_LOCK,
        Capability::IpcOwner => Cap::CAP_IPC_OWNER,
        Capability::Kill => Cap::CAP_KILL,
        Capability::Lease => Cap::CAP_LEASE,
        Capability::LinuxImmutable => Cap::CAP_LINUX_IMMUTABLE,
        Capability::MacAdmin => Cap::CAP_MAC_ADMIN,
        Capability::MacOverride => Cap::CAP_MAC_OVERRIDE,
        Capability::Mknod => Cap::CAP_MKNOD,
        Capability::NetAdmin => Cap::CAP_NET_ADMIN,
        Capability::NetBindService => Cap::CAP_NET_BIND_SERVICE,
        Capability::NetBroadcast => Cap::CAP_NET_BROADCAST,
        Capability::NetRaw => Cap::CAP_NET_RAW,
        Capability::Perfmon => Cap::CAP_PERFMON,
        Capability::Setgid => Cap::CAP_SETGID,
        Capability::Setfcap => Cap::CAP_SETFCAP,
        Capability::Setpcap => Cap::CAP_SETPCAP,
        Capability::Setuid => Cap::CAP_SETUID,
        Capability::SysAdmin => Cap::CAP_SYS_ADMIN,
        Capability::SysBoot => Cap::CAP_SYS_BOOT,
        Capability::SysChroot => Cap::CAP_SYS_CHROOT,
        Capability::SysModule => Cap::CAP_SYS_MODULE,
        Capability::SysNice => Cap::CAP_SYS_NICE,
        Capability::SysPacct => Cap::CAP_SYS_PACCT,
        Capability::SysPtrace => Cap::CAP_SYS_PTRACE,
        Capability::SysRawio => Cap::CAP_SYS_RAWIO,
        Capability::SysResource => Cap::CAP_SYS_RESOURCE,
        Capability::SysTime => Cap::CAP_SYS_TIME,
        Capability::SysTtyConfig => Cap::CAP_SYS_TTY_CONFIG,
        Capability::Syslog => Cap::CAP_SYSLOG,
        Capability::WakeAlarm => Cap::CAP_WAKE_ALARM,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> LinuxCapabilities {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn every_oci_name_maps_to_the_kernel_number_of_the_same_name() {
        for cap in caps::all() {
            let oci: Capability = serde_json::from_value(cap.to_string().into()).unwrap();
            assert_eq!(to_cap(oci), cap);
        }
    }

    #[test]
    fn unknown_misspelled_and_too_new_names_are_listed_once_sorted() {
        let data = br#"{"process": {"capabilities": {
            "bounding": ["CAP_CHOWN", "CAP_FOO", "sys_admin", "CAP_KILL"],
            "effective": ["CAP_FOO", "CAP_CHOWN"], "ambient": null}}}"#;
        assert_eq!(unavailable_names(data), ["CAP_FOO", "sys_admin"]);
        assert!(unavailable_names(b"{}").is_empty());
        assert!(unavailable_names(br#"{"process": {"capabilities": 3}}"#).is_empty());
        assert!(!available("CAP_BPF", 38));
        assert!(available("CAP_BPF", 39));
    }

    #[test]
    fn removes_names_from_every_set() {
        let mut v = serde_json::json!({"bounding": ["CAP_A", "CAP_KILL"], "ambient": ["CAP_A"]});
        remove_names(&mut v, &["CAP_A".to_string()]);
        assert_eq!(
            v,
            serde_json::json!({"bounding": ["CAP_KILL"], "ambient": []})
        );
    }

    #[test]
    fn effective_must_be_permitted_and_ambient_outside_is_only_skipped() {
        let caps = parse(r#"{"effective": ["CAP_KILL"], "permitted": []}"#);
        let err = validate(&caps).unwrap_err().to_string();
        assert_eq!(
            err,
            "process.capabilities.effective: CAP_KILL is not in the permitted set"
        );
        let caps = parse(r#"{"permitted": ["CAP_KILL"], "ambient": ["CAP_KILL"]}"#);
        validate(&caps).unwrap();
    }

    #[test]
    fn masks_and_names() {
        let caps = parse(r#"{"bounding": ["CAP_CHOWN", "CAP_KILL", "cap_sys_admin"]}"#);
        let m = masks_of(&caps);
        assert_eq!(m.bounding, (1 << 0) | (1 << 5) | (1 << 21));
        assert_eq!(m.effective, 0);
        assert_eq!(names(m.bounding), "[CAP_CHOWN CAP_KILL CAP_SYS_ADMIN]");
        assert_eq!(name_of(63), "capability 63");
    }

    #[test]
    fn last_cap_probe_agrees_with_proc() {
        let text = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap").unwrap();
        assert_eq!(read_last_cap().unwrap(), text.trim().parse::<u8>().unwrap());
    }
}
