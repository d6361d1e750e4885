//! `update ID`: new resource limits from `--resources FILE|-` (JSON
//! LinuxResources) and runc's flags. Every value is parsed and validated before
//! the first write; a write the kernel refuses rolls the earlier ones back.

use std::fs;
use std::io::Read;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use super::Globals;
use crate::cli::UpdateArgs;
use crate::error::RuntimeError;
use crate::linux::cgroups::{resources, Cgroup};
use crate::state::{StateDir, Status};

pub fn update(g: &Globals, args: &UpdateArgs) -> Result<()> {
    let r = requested(args)?;
    let sd = StateDir::open(&g.root, &args.id)?;
    let c = sd.load()?;
    if matches!(c.status(), Status::Stopped | Status::Creating) {
        return Err(RuntimeError::NotRunning.into());
    }
    let cg = Cgroup::open(Path::new(&c.cgroup_path))?;
    resources::apply(&cg, &r, None)
}

/// The resources asked for: the JSON document, then the flags on top.
fn requested(a: &UpdateArgs) -> Result<LinuxResources> {
    let mut r = match a.resources.as_deref() {
        None => LinuxResources::default(),
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
            serde_json::from_str(&data).context("--resources: parse LinuxResources JSON")?
        }
    };
    let mem = [
        (&a.memory, "--memory"),
        (&a.memory_swap, "--memory-swap"),
        (&a.memory_reservation, "--memory-reservation"),
        (&a.kernel_memory, "--kernel-memory"),
        (&a.kernel_memory_tcp, "--kernel-memory-tcp"),
    ];
    let mut vals = [None; 5];
    for (i, (v, flag)) in mem.iter().enumerate() {
        vals[i] = v.as_deref().map(|s| ram_in_bytes(flag, s)).transpose()?;
    }
    if vals.iter().any(Option::is_some) {
        let mut m: LinuxMemory = r.memory().unwrap_or_default();
        let [limit, swap, reservation, kernel, kernel_tcp] = vals;
        if limit.is_some() {
            m.set_limit(limit);
        }
        if swap.is_some() {
            m.set_swap(swap);
        }
        if reservation.is_some() {
            m.set_reservation(reservation);
        }
        if kernel.is_some() {
            m.set_kernel(kernel);
        }
        if kernel_tcp.is_some() {
            m.set_kernel_tcp(kernel_tcp);
        }
        r.set_memory(Some(m));
    }
    let quota = num::<i64>("--cpu-quota", &a.cpu_quota)?;
    let period = num::<u64>("--cpu-period", &a.cpu_period)?;
    let rt_period = num::<u64>("--cpu-rt-period", &a.cpu_rt_period)?;
    let rt_runtime = num::<i64>("--cpu-rt-runtime", &a.cpu_rt_runtime)?;
    let shares = num::<u64>("--cpu-shares", &a.cpu_shares)?;
    let cpu_set = [
        quota.is_some(),
        period.is_some(),
        rt_period.is_some(),
        rt_runtime.is_some(),
        shares.is_some(),
        a.cpuset_cpus.is_some(),
        a.cpuset_mems.is_some(),
    ];
    if cpu_set.contains(&true) {
        let mut c: LinuxCpu = r.cpu().clone().unwrap_or_default();
        if quota.is_some() {
            c.set_quota(quota);
        }
        if period.is_some() {
            c.set_period(period);
        }
        if rt_period.is_some() {
            c.set_realtime_period(rt_period);
        }
        if rt_runtime.is_some() {
            c.set_realtime_runtime(rt_runtime);
        }
        if shares.is_some() {
            c.set_shares(shares);
        }
        if let Some(s) = &a.cpuset_cpus {
            c.set_cpus(Some(s.clone()));
        }
        if let Some(s) = &a.cpuset_mems {
            c.set_mems(Some(s.clone()));
        }
        r.set_cpu(Some(c));
    }
    if let Some(limit) = num::<i64>("--pids-limit", &a.pids_limit)? {
        let mut p = LinuxPids::default();
        p.set_limit(limit);
        r.set_pids(Some(p));
    }
    if let Some(w) = num::<u16>("--blkio-weight", &a.blkio_weight)? {
        let mut b: LinuxBlockIo = r.block_io().clone().unwrap_or_default();
        b.set_weight(Some(w));
        r.set_block_io(Some(b));
    }
    resources::validate(&r)?;
    Ok(r)
}

fn num<T: std::str::FromStr>(flag: &str, v: &Option<String>) -> Result<Option<T>> {
    v.as_deref()
        .map(|s| {
            s.trim()
                .parse::<T>()
                .map_err(|_| anyhow::anyhow!("{flag}: invalid value {s:?}"))
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
        _ => bail!("{flag}: invalid size {s:?}"),
    };
    let value: f64 = n
        .parse()
        .ok()
        .filter(|_| !n.is_empty())
        .ok_or_else(|| anyhow::anyhow!("{flag}: invalid size {s:?}"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !bytes.is_finite() || bytes >= i64::MAX as f64 {
        bail!("{flag}: size {s:?} is too large");
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
