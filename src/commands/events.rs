//! `events ID`: with --stats one stats object; otherwise a stream of stats
//! every --interval and OOM events as they happen, one JSON object per line,
//! until the container stops.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use serde_json::json;

use super::Globals;
use crate::cli::EventsArgs;
use crate::linux::cgroups::{oom::OomWatch, stats, Cgroup};
use crate::state::{is_alive, StateDir, Status};

/// How often the loop looks at whether the container still runs.
const TICK: Duration = Duration::from_millis(100);

pub fn events(g: &Globals, args: &EventsArgs) -> Result<()> {
    let interval = parse_duration(&args.interval)?;
    // The lock is held only while reading the state: a stream must not block delete.
    let c = StateDir::open(&g.root, &args.id)?.load()?;
    // After the container is found, as runc checks it.
    if interval.is_zero() {
        bail!("duration interval must be greater than 0");
    }
    if c.status() == Status::Stopped {
        bail!("container with id {} is not running", c.id);
    }
    let cg = Cgroup::open(Path::new(&c.cgroup_path))?;
    // runc's field order: type, id, data (serde_json would sort the keys).
    let id = json!(c.id).to_string();
    let stats_line = |cg: &Cgroup| {
        format!(
            "{{\"type\":\"stats\",\"id\":{id},\"data\":{}}}\n",
            stats::collect(cg)
        )
    };
    if args.stats {
        crate::print_stdout(&stats_line(&cg));
        return Ok(());
    }
    let oom_line = format!("{{\"type\":\"oom\",\"id\":{id}}}\n");
    let mut oom = OomWatch::new(&cg)?;
    let mut next = Instant::now() + interval;
    loop {
        let alive = is_alive(c.pid, c.start_time) && g.root.join(&c.id).exists();
        let wait = if alive {
            next.saturating_duration_since(Instant::now()).min(TICK)
        } else {
            Duration::ZERO
        };
        for _ in 0..oom.wait(wait) {
            crate::print_stdout(&oom_line);
        }
        if !alive {
            return Ok(());
        }
        if Instant::now() >= next {
            crate::print_stdout(&stats_line(&cg));
            next += interval;
        }
    }
}

/// A Go duration: "5s", "500ms", "1m30s", "1.5h"; zero or negative is zero (the
/// caller refuses it). Errors in the words of runc's flag parser.
pub fn parse_duration(s: &str) -> Result<Duration> {
    let invalid = || anyhow::anyhow!("invalid value {s:?} for flag -interval: parse error");
    let mut rest = s.trim();
    let negative = rest.starts_with('-');
    rest = rest.trim_start_matches(['-', '+']);
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let n_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (n, tail) = rest.split_at(n_end);
        let u_end = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(u_end);
        let n: f64 = n.parse().map_err(|_| invalid())?;
        let scale = match unit {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            // Go takes a bare "0" as zero.
            "" if s.trim().trim_start_matches(['-', '+']) == "0" => 0.0,
            _ => return Err(invalid()),
        };
        total += n * scale;
        rest = tail;
    }
    if !total.is_finite() {
        return Err(invalid());
    }
    if negative || total <= 0.0 {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        for zero in ["0s", "0", "-1s"] {
            assert!(parse_duration(zero).unwrap().is_zero(), "{zero}");
        }
        for bad in ["", "5", "5x", "s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
