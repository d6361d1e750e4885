//! linux.resources: validated before anything exists (spec.rs), planned as a
//! list of cgroup file writes (v1.rs / v2.rs, pure), then applied. Every file a
//! plan needs is checked first, so an unsupported controller changes nothing;
//! a write the kernel refuses rolls the earlier single-value writes back.

use std::fs::{self, File};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDevice, LinuxDeviceType, LinuxMemory, LinuxResources, Spec};

use super::{devices, devices_bpf, read_kernel_text, v1, v2, Cgroup};

/// What to do when no target file of a write exists on this host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missing {
    /// The config asked for something this host cannot do: an error naming the field.
    Error,
    /// Deprecated or removed by the kernel: a warning, then go on.
    Warn,
    /// Optional on this kernel (memsw without swap accounting, cfs burst): go on quietly.
    Skip,
}

/// One cgroup file write. `targets` are alternatives: the first file that exists wins
/// (e.g. blkio.weight, else blkio.bfq.weight, each with its own value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Write {
    pub field: String,
    /// v1 controller ("memory", ...) whose hierarchy holds the file; "" for the v2 directory.
    pub ctrl: &'static str,
    pub targets: Vec<(String, String)>,
    pub missing: Missing,
    /// The kernel may refuse this value (EINVAL) until a later write of the plan
    /// lands (a shorter cfs period before the new quota): try again after it.
    pub retry_later: bool,
}

impl Write {
    pub fn new(field: &str, ctrl: &'static str, file: &str, value: impl ToString) -> Write {
        Write {
            field: field.to_string(),
            ctrl,
            targets: vec![(file.to_string(), value.to_string())],
            missing: Missing::Error,
            retry_later: false,
        }
    }

    pub fn or(mut self, file: &str, value: impl ToString) -> Write {
        self.targets.push((file.to_string(), value.to_string()));
        self
    }

    pub fn warn_if_missing(mut self) -> Write {
        self.missing = Missing::Warn;
        self
    }

    pub fn skip_if_missing(mut self) -> Write {
        self.missing = Missing::Skip;
        self
    }

    pub fn retry_later(mut self) -> Write {
        self.retry_later = true;
        self
    }
}

/// At create: linux.resources (if any) and, on v1, the device allow-list with
/// linux.devices. On error the cgroup is removed again.
pub fn apply_spec(mut cg: Cgroup, spec: &Spec) -> Result<Cgroup> {
    let linux = spec.linux().as_ref();
    let default = LinuxResources::default();
    let r = linux
        .and_then(|l| l.resources().as_ref())
        .unwrap_or(&default);
    let devices = linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    let domain = v2::uses_domain_controllers(r);
    let result = cg
        .enter_v2(domain)
        .and_then(|()| apply(&cg, r, Some(devices)));
    match result {
        Ok(()) => Ok(cg),
        Err(e) => {
            cg.discard();
            Err(e)
        }
    }
}

/// Writes the plan for `r` into the container's cgroup. `devices` (linux.devices)
/// take runc's default rules' place where they name the same path; None
/// leaves devices alone unless `r` has rules (v1) or altogether (v2's program).
pub fn apply(cg: &Cgroup, r: &LinuxResources, devices: Option<&[LinuxDevice]>) -> Result<()> {
    validate(r)?;
    if cg.is_pure_v2() {
        let plan = v2::plan(r)?;
        if let (Some(m), Some(d)) = (r.memory(), cg.v2_dir()) {
            check_before_update(m, d)?;
        }
        apply_plan(cg, &plan)?;
        // At create: the device program, attached before init runs.
        if let Some(created) = devices {
            let dir = cg.v2_dir().context("cgroup v2 directory")?;
            let rules = r.devices().as_deref().unwrap_or_default();
            devices_bpf::apply(dir, &devices::effective(rules, created))?;
        }
        return Ok(());
    }
    // Only a memory setting's plan looks at the current limit.
    let cur_limit = cg
        .v1_dir("memory")
        .filter(|_| r.memory().is_some())
        .and_then(|d| read_kernel_text(d.join("memory.limit_in_bytes")).ok())
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(i64::MAX);
    apply_plan(cg, &v1::plan(r, devices, cur_limit)?)?;
    let shares = r
        .cpu()
        .as_ref()
        .and_then(|c| c.shares())
        .filter(|s| *s != 0);
    if let (Some(want), Some(dir)) = (shares, cg.v1_dir("cpu")) {
        check_shares(want, &dir.join("cpu.shares"))?;
    }
    Ok(())
}

/// The checks `apply` makes before its first write, for the systemd driver to
/// make before it changes the unit (systemd writes the files itself).
pub fn check_update(cg: &Cgroup, r: &LinuxResources) -> Result<()> {
    validate(r)?;
    if let (true, Some(m), Some(d)) = (cg.is_pure_v2(), r.memory(), cg.v2_dir()) {
        check_before_update(m, d)?;
    }
    Ok(())
}

/// memory.checkBeforeUpdate on v2, as runc: a limit at or below what the
/// cgroup uses now is refused (best effort: no usage file, no check).
fn check_before_update(m: &LinuxMemory, dir: &Path) -> Result<()> {
    if m.check_before_update() != Some(true) {
        return Ok(());
    }
    let Some(usage) = fs::read_to_string(dir.join("memory.current"))
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
    else {
        return Ok(());
    };
    let checks = [("memory+swap", m.swap()), ("memory", m.limit())];
    for (what, limit) in checks {
        if let Some(l) = limit.filter(|l| *l > 0) {
            if l as u64 <= usage {
                bail!("linux.resources.memory: rejecting {what} limit {l} <= usage {usage}");
            }
        }
    }
    Ok(())
}

/// The kernel clamps cpu.shares silently; say so as runc does.
fn check_shares(want: u64, file: &Path) -> Result<()> {
    let got: u64 = fs::read_to_string(file)
        .with_context(|| format!("read {}", file.display()))?
        .trim()
        .parse()
        .with_context(|| format!("parse {}", file.display()))?;
    if want > got {
        bail!("the maximum allowed cpu-shares is {got}");
    }
    if want < got {
        bail!("the minimum allowed cpu-shares is {got}");
    }
    Ok(())
}

/// Resolves every write to a file (or a warning), then writes them in order.
pub fn apply_plan(cg: &Cgroup, plan: &[Write]) -> Result<()> {
    let mut resolved: Vec<(&Write, PathBuf, &str)> = Vec::new();
    // Whether each file exists, asked once: the device list writes the same two files many times.
    let mut exists: Vec<(PathBuf, bool)> = Vec::new();
    let mut check = |p: &Path| match exists.iter().find(|(q, _)| q == p) {
        Some((_, e)) => *e,
        None => {
            let e = p.exists();
            exists.push((p.to_path_buf(), e));
            e
        }
    };
    for w in plan {
        let dir = if w.ctrl.is_empty() {
            cg.v2_dir()
        } else {
            cg.v1_dir(w.ctrl)
        };
        let found = dir.and_then(|d| {
            w.targets
                .iter()
                .map(|(f, v)| (d.join(f), v.as_str()))
                .find(|(p, _)| check(p))
        });
        match (found, w.missing) {
            (Some((p, v)), _) => resolved.push((w, p, v)),
            (None, Missing::Warn) => crate::logger::warn(&format!(
                "{}: {} is not available on this kernel; ignored",
                w.field, w.targets[0].0
            )),
            (None, Missing::Skip) => {}
            (None, Missing::Error) => bail!("{}: {}", w.field, unsupported(w, dir)),
        }
    }
    let mut undo: Vec<(PathBuf, String)> = Vec::new();
    // Writes refused for now: retried after each later write that lands.
    let mut later: Vec<(&Write, PathBuf, &str, Option<String>, std::io::Error)> = Vec::new();
    let rollback = |undo: &[(PathBuf, String)]| {
        for (p, v) in undo.iter().rev() {
            let _ = fs::write(p, v);
        }
    };
    let mut files = OpenFiles::default();
    for (w, path, value) in resolved {
        let old = restorable(&path);
        match files.write(&path, value) {
            Ok(()) => {
                undo.extend(old.map(|old| (path, old)));
                later.retain_mut(|(_, p, v, old, _)| {
                    let landed = fs::write(&*p, v).is_ok();
                    if landed {
                        undo.extend(old.take().map(|old| (p.clone(), old)));
                    }
                    !landed
                });
            }
            Err(e) if w.retry_later && e.raw_os_error() == Some(libc::EINVAL) => {
                later.push((w, path, value, old, e));
            }
            Err(e) => {
                rollback(&undo);
                return Err(e).with_context(|| {
                    format!("{}: write {:?} to {}", w.field, value, path.display())
                });
            }
        }
    }
    if let Some((w, path, value, _, e)) = later.into_iter().next() {
        rollback(&undo);
        return Err(e)
            .with_context(|| format!("{}: write {:?} to {}", w.field, value, path.display()));
    }
    Ok(())
}

/// The files of one plan, each opened once: the device list writes devices.allow a
/// dozen times. Every write(2) to a cgroup file is one request to the kernel, whether
/// or not the file was opened for it alone, and the handlers ignore the offset.
#[derive(Default)]
struct OpenFiles(Vec<(PathBuf, File)>);

impl OpenFiles {
    /// What `fs::write` does, on the file's open descriptor.
    fn write(&mut self, path: &Path, value: &str) -> io::Result<()> {
        let i = match self.0.iter().position(|(p, _)| p == path) {
            Some(i) => i,
            None => {
                let f = File::options()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(path)?;
                self.0.push((path.to_path_buf(), f));
                self.0.len() - 1
            }
        };
        self.0[i].1.write_all(value.as_bytes())
    }
}

fn unsupported(w: &Write, dir: Option<&Path>) -> String {
    let file = &w.targets[0].0;
    match dir {
        None if w.ctrl.is_empty() => {
            format!("needs cgroup v2 ({file}), which this host does not have for the container")
        }
        None => format!(
            "the {} cgroup controller is not available on this host",
            w.ctrl
        ),
        Some(d) => format!(
            "not supported on this host: {} does not exist",
            d.join(file).display()
        ),
    }
}

/// The current value, when the file holds one line that can be written back.
fn restorable(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_string_lossy();
    if name.starts_with("devices.") || name == "cgroup.event_control" {
        return None;
    }
    let old = read_kernel_text(path).ok()?;
    let old = old.trim_end();
    (!old.is_empty() && !old.contains('\n')).then(|| old.to_string())
}

/// Checks that need no kernel: ranges, formats, and the unified keys.
pub fn validate(r: &LinuxResources) -> Result<()> {
    if let Some(c) = r.cpu() {
        if let (Some(q), Some(b)) = (c.quota(), c.burst()) {
            if q > 0 && b > q as u64 {
                bail!("linux.resources.cpu.burst: {b} must not be larger than quota {q}");
            }
        }
        if let Some(i) = c.idle() {
            if !(0..=1).contains(&i) {
                bail!("linux.resources.cpu.idle: must be 0 or 1, got {i}");
            }
        }
        check_list("linux.resources.cpu.cpus", c.cpus().as_deref())?;
        check_list("linux.resources.cpu.mems", c.mems().as_deref())?;
    }
    if let Some(m) = r.memory() {
        if let Some(s) = m.swappiness() {
            if s > 100 {
                bail!("linux.resources.memory.swappiness: must be 0 to 100, got {s}");
            }
        }
        if let (Some(l), Some(s)) = (m.limit(), m.swap()) {
            if l > 0 && s > 0 && s < l {
                bail!("linux.resources.memory.swap: memory+swap limit should be >= memory limit (memory+swap {s}, memory {l})");
            }
        }
    }
    if let Some(b) = r.block_io() {
        check_weight("linux.resources.blockIO.weight", b.weight())?;
        check_weight("linux.resources.blockIO.leafWeight", b.leaf_weight())?;
        for (i, d) in b.weight_device().iter().flatten().enumerate() {
            check_weight(
                &format!("linux.resources.blockIO.weightDevice[{i}].weight"),
                d.weight(),
            )?;
        }
    }
    for (i, h) in r.hugepage_limits().iter().flatten().enumerate() {
        page_size(h.page_size())
            .with_context(|| format!("linux.resources.hugepageLimits[{i}].pageSize"))?;
    }
    for (i, d) in r.devices().iter().flatten().enumerate() {
        // As runc: the access string is required, and only a, b, c are cgroup types.
        let access = d.access().as_deref().unwrap_or_default();
        if access.is_empty() {
            bail!("linux.resources.devices[{i}].access: must not be empty");
        }
        if !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
            bail!(
                "linux.resources.devices[{i}].access: must be made of r, w and m, got {access:?}"
            );
        }
        if let Some(t) = d.typ().filter(|t| {
            !matches!(
                t,
                LinuxDeviceType::A | LinuxDeviceType::B | LinuxDeviceType::C
            )
        }) {
            bail!(
                "linux.resources.devices[{i}].type: invalid cgroup device type {:?} (a, b or c)",
                t.as_str()
            );
        }
    }
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        check_unified_key(key)?;
    }
    Ok(())
}

/// A unified key names one file in the container's own cgroup directory.
pub fn check_unified_key(key: &str) -> Result<()> {
    if key.is_empty()
        || key.contains('/')
        || key == "."
        || key == ".."
        || key.contains("..")
        || !key.contains('.')
    {
        bail!("linux.resources.unified: {key:?} is not a cgroup file name (controller.file, no '/' or '..')");
    }
    Ok(())
}

fn check_weight(field: &str, w: Option<u16>) -> Result<()> {
    match w {
        Some(w) if w != 0 && !(10..=1000).contains(&w) => {
            bail!("{field}: must be 10 to 1000, got {w}")
        }
        _ => Ok(()),
    }
}

/// "0-3,7": numbers and ranges separated by commas.
fn check_list(field: &str, list: Option<&str>) -> Result<()> {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return Ok(());
    };
    for part in list.split(',') {
        let mut ends = part.trim().splitn(2, '-');
        let ok = ends.all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
        if !ok {
            bail!("{field}: {list:?} is not a list like 0-3,7");
        }
    }
    Ok(())
}

/// "2MB" -> "2MB" after checking it is a size with a unit, as the hugetlb files spell it.
pub fn page_size(s: &str) -> Result<String> {
    let digits: String = s.chars().take_while(|c| c.is_ascii_digit()).collect();
    let unit = &s[digits.len()..];
    if digits.is_empty() || !matches!(unit, "KB" | "MB" | "GB" | "TB") {
        bail!("{s:?} is not a page size like 2MB or 1GB");
    }
    Ok(s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn validation_names_the_field() {
        for (json, field) in [
            (r#"{"cpu":{"quota":1000,"burst":2000}}"#, "cpu.burst"),
            (r#"{"cpu":{"cpus":"0-x"}}"#, "cpu.cpus"),
            (r#"{"memory":{"swappiness":101}}"#, "memory.swappiness"),
            (r#"{"memory":{"limit":100,"swap":50}}"#, "memory.swap"),
            (r#"{"blockIO":{"weight":5}}"#, "blockIO.weight"),
            (
                r#"{"hugepageLimits":[{"pageSize":"2M","limit":1}]}"#,
                "hugepageLimits[0]",
            ),
            (r#"{"unified":{"../x":"1"}}"#, "unified"),
            (r#"{"unified":{"a/b.c":"1"}}"#, "unified"),
            (
                r#"{"devices":[{"allow":true,"access":"rwx"}]}"#,
                "devices[0]",
            ),
            (r#"{"devices":[{"allow":true}]}"#, "devices[0].access"),
            (
                r#"{"devices":[{"allow":true,"type":"p","access":"r"}]}"#,
                "devices[0].type",
            ),
        ] {
            let e = format!("{:#}", validate(&res(json)).unwrap_err());
            assert!(e.contains(field), "{json}: {e}");
        }
        validate(&res(
            r#"{"cpu":{"cpus":"0-3,7","quota":2000,"burst":1000},"memory":{"limit":100,"swap":-1},"unified":{"memory.high":"1"}}"#,
        ))
        .unwrap();
    }
}
