//! `update ID`: new resource limits from `--resources FILE|-` (JSON
//! LinuxResources) and runc's flags. Every value is parsed and validated before
//! the first write; a write the kernel refuses rolls the earlier ones back.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources, Spec};

use super::Globals;
use crate::cli::UpdateArgs;
use crate::error::RuntimeError;
use crate::linux::cgroups::{resources, systemd, Cgroup};
use crate::state::{StateDir, Status};

pub fn update(g: &Globals, args: &UpdateArgs) -> Result<()> {
    let r = requested(args)?;
    let sd = StateDir::open(&g.root, &args.id)?;
    let c = sd.load()?;
    if matches!(c.status(), Status::Stopped | Status::Creating) {
        return Err(RuntimeError::NotRunning.into());
    }
    check_intel_rdt(args)?;
    let mut spec = sd.load_config()?;
    let stored = spec
        .linux()
        .as_ref()
        .and_then(|l| l.resources().as_ref())
        .and_then(|r| *r.memory());
    let mut r = with_stored_memory(r, stored.as_ref());
    let cg = Cgroup::open(Path::new(&c.cgroup_path))?;
    if c.systemd_cgroup {
        // As runc: systemd's properties first, then the files, so both agree.
        resources::check_update(&cg, &r)?;
        systemd::round_cpu_quota(&mut r);
        let mut m = systemd::Manager::connect()?;
        let props = systemd::resource_props(&r, systemd::host_is_v2()?, &mut || m.version())?;
        m.set(systemd::unit_name(&c.cgroup_path), props)?;
    }
    resources::apply(&cg, &r, None)?;
    if let Some(m) = r.memory() {
        store_memory(&mut spec, m);
        sd.save_config(&spec)?;
    }
    Ok(())
}

/// As runc, the memory values combine with the ones the container has (its
/// config, changed by earlier updates): a new limit keeps the stored
/// memory+swap and the other way round. An unlimited memory limit without a
/// swap value clears the stored swap, so swap becomes unlimited too.
fn with_stored_memory(mut r: LinuxResources, stored: Option<&LinuxMemory>) -> LinuxResources {
    let Some(mut m) = *r.memory() else {
        return r;
    };
    if m.limit() == Some(-1) && m.swap().is_none() {
        m.set_swap(Some(0));
    }
    if let Some(s) = stored {
        m.set_limit(m.limit().or(s.limit()));
        m.set_swap(m.swap().or(s.swap()));
        m.set_reservation(m.reservation().or(s.reservation()));
    }
    r.set_memory(Some(m));
    r
}

/// Records the limits `update` set in the container's saved config.
fn store_memory(spec: &mut Spec, m: &LinuxMemory) {
    let mut linux = spec.linux().clone().unwrap_or_default();
    let mut res = linux.resources().clone().unwrap_or_default();
    let mut stored = res.memory().unwrap_or_default();
    stored.set_limit(m.limit());
    stored.set_swap(m.swap());
    stored.set_reservation(m.reservation());
    res.set_memory(Some(stored));
    linux.set_resources(Some(res));
    spec.set_linux(Some(linux));
}

/// paddock never sets up Intel RDT (linux.intelRdt is refused at create), so
/// there is nothing to update: runc's errors, host support checked first.
fn check_intel_rdt(a: &UpdateArgs) -> Result<()> {
    let info = Path::new("/sys/fs/resctrl/info");
    if a.l3_cache_schema.is_some() && !info.join("L3").is_dir() {
        bail!("Intel RDT/CAT: l3 cache schema is not enabled");
    }
    if a.mem_bw_schema.is_some() && !info.join("MB").is_dir() {
        bail!("Intel RDT/MBA: memory bandwidth schema is not enabled");
    }
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("updating a non-existent Intel RDT configuration is not supported");
    }
    Ok(())
}

/// The resources asked for: the JSON document, or else the flags (as runc,
/// flags are ignored when --resources is given).
fn requested(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = match a.resources.as_deref() {
        None => from_flags(a)?,
        Some(src) => {
            let data = if src == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .context("--resources: read stdin")?;
                s
            } else {
                fs::read_to_string(src).with_context(|| format!("--resources: read {src}"))?
            };
            let mut v: serde_json::Value =
                serde_json::from_str(&data).context("--resources: parse LinuxResources JSON")?;
            // `"pids": {}` leaves the limit alone; oci-spec would read it as limit 0.
            if let Some(obj) = v.as_object_mut() {
                if obj.get("pids").is_some_and(|p| p.get("limit").is_none()) {
                    obj.remove("pids");
                }
            }
            serde_json::from_value(v).context("--resources: parse LinuxResources JSON")?
        }
    };
    if r.devices().is_some() {
        // As runc: rewriting the allow-list would deny every device for a moment.
        crate::logger::warn(
            "linux.resources.devices: device rules are not changed by update (as runc); ignored",
        );
        r.set_devices(None);
    }
    resources::validate(&r)?;
    Ok(r)
}

fn from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = LinuxResources::default();
    let mem = [
        (&a.memory, "memory"),
        (&a.memory_swap, "memory-swap"),
        (&a.kernel_memory, "kernel-memory"),
        (&a.kernel_memory_tcp, "kernel-memory-tcp"),
        (&a.memory_reservation, "memory-reservation"),
    ];
    let mut vals = [None; 5];
    for (i, (v, flag)) in mem.iter().enumerate() {
        vals[i] = v
            .as_deref()
            .filter(|s| !s.is_empty())
            .map(|s| ram_in_bytes(flag, s))
            .transpose()?;
    }
    if vals.iter().any(Option::is_some) {
        let [limit, swap, kernel, kernel_tcp, reservation] = vals;
        let mut m = LinuxMemory::default();
        m.set_limit(limit);
        m.set_swap(swap);
        m.set_kernel(kernel);
        m.set_kernel_tcp(kernel_tcp);
        m.set_reservation(reservation);
        r.set_memory(Some(m));
    }
    let mut c = LinuxCpu::default();
    c.set_burst(num::<u64>("cpu-burst", &a.cpu_burst)?);
    c.set_period(num::<u64>("cpu-period", &a.cpu_period)?);
    c.set_realtime_period(num::<u64>("cpu-rt-period", &a.cpu_rt_period)?);
    c.set_shares(num::<u64>("cpu-share", &a.cpu_shares)?);
    c.set_quota(num::<i64>("cpu-quota", &a.cpu_quota)?);
    c.set_realtime_runtime(num::<i64>("cpu-rt-runtime", &a.cpu_rt_runtime)?);
    c.set_idle(num::<i64>("cpu-idle", &a.cpu_idle)?);
    c.set_cpus(a.cpuset_cpus.clone().filter(|s| !s.is_empty()));
    c.set_mems(a.cpuset_mems.clone().filter(|s| !s.is_empty()));
    if c != LinuxCpu::default() {
        r.set_cpu(Some(c));
    }
    if let Some(limit) = num::<i64>("pids-limit", &a.pids_limit)? {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    // As runc: an int flag where 0 means "not given".
    let weight = num::<i64>("blkio-weight", &a.blkio_weight)?.filter(|w| *w != 0);
    if let Some(w) = weight {
        let w = u16::try_from(w)
            .map_err(|_| anyhow::anyhow!("invalid value for blkio-weight: {w} is out of range"))?;
        let mut b = LinuxBlockIo::default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    Ok(r)
}

/// runc's strconv parsing: an empty value is "not given".
fn num<T: std::str::FromStr>(flag: &str, v: &Option<String>) -> Result<Option<T>>
where
    T::Err: std::fmt::Display,
{
    v.as_deref()
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<T>().map_err(|e| {
                let func = if std::any::type_name::<T>().starts_with('u') {
                    "ParseUint"
                } else {
                    "ParseInt"
                };
                let why = if e.to_string().contains("too") {
                    "value out of range"
                } else {
                    "invalid syntax"
                };
                anyhow::anyhow!("invalid value for {flag}: strconv.{func}: parsing {s:?}: {why}")
            })
        })
        .transpose()
}

/// Like docker/go-units RAMInBytes (as runc's update uses): "1024", "100m",
/// "1.5GiB", binary multipliers; "-1" means unlimited.
pub fn ram_in_bytes(flag: &str, s: &str) -> Result<i64> {
    let t = s.trim();
    if t == "-1" {
        return Ok(-1);
    }
    let num_end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (n, unit) = t.split_at(num_end);
    let unit = unit.trim_start().to_ascii_lowercase();
    let unit = unit.strip_suffix('b').unwrap_or(&unit);
    let unit = unit.strip_suffix('i').unwrap_or(unit);
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!("invalid value for {flag}: invalid size: '{s}'"),
    };
    let value: f64 = n
        .parse()
        .ok()
        .filter(|_| !n.is_empty())
        .ok_or_else(|| anyhow::anyhow!("invalid value for {flag}: invalid size: '{s}'"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        bail!("invalid value for {flag}: size {s:?} is too large");
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mem(json: &str) -> LinuxMemory {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn memory_combines_with_the_stored_limits() {
        let stored = mem(r#"{"limit":100,"swap":128,"reservation":50}"#);
        let combine = |json: &str| {
            let mut r = LinuxResources::default();
            r.set_memory(Some(mem(json)));
            let m = with_stored_memory(r, Some(&stored)).memory().unwrap();
            (m.limit(), m.swap(), m.reservation())
        };
        assert_eq!(combine(r#"{"limit":90}"#), (Some(90), Some(128), Some(50)));
        assert_eq!(combine(r#"{"swap":256}"#), (Some(100), Some(256), Some(50)));
        assert_eq!(combine(r#"{"limit":-1}"#), (Some(-1), Some(0), Some(50)));
        assert_eq!(
            combine(r#"{"limit":-1,"swap":300}"#),
            (Some(-1), Some(300), Some(50))
        );
        let cpu_only = with_stored_memory(LinuxResources::default(), Some(&stored));
        assert!(cpu_only.memory().is_none());
    }

    #[test]
    fn sizes_parse_like_go_units() {
        assert_eq!(ram_in_bytes("f", "1024").unwrap(), 1024);
        assert_eq!(ram_in_bytes("f", "100m").unwrap(), 100 << 20);
        assert_eq!(ram_in_bytes("f", "1.5GiB").unwrap(), 3 << 29);
        assert_eq!(ram_in_bytes("f", "4 kb").unwrap(), 4096);
        assert_eq!(ram_in_bytes("f", "-1").unwrap(), -1);
        for bad in ["", "abc", "10x", "-5", "1..2m"] {
            assert!(ram_in_bytes("f", bad).is_err(), "{bad}");
        }
    }
}
