//! runc's semantics on pure cgroup v2: `update` combining memory and swap with
//! the stored limits (read back from memory.max / memory.swap.max), `events
//! --stats` reporting swap as memory+swap, a cgroupsPath below a cgroup with
//! processes, and a frozen cgroup or parent at create. Side by side with runc
//! where Debian's runc 1.1.5 behaves as runc 1.5; paddock alone where 1.5
//! changed things. These run in the v2 guest (`make test-v2`); on a v1 host
//! each test skips with a note.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::parity::{assert_same_code, Rt, BOTH};
use common::{Bundle, Env};
use serde_json::{json, Value};

const CG: &str = "/sys/fs/cgroup";
const MIB: i64 = 1 << 20;

fn pure_v2(test: &str) -> bool {
    let v2 = Path::new(CG).join("cgroup.controllers").exists();
    if !v2 {
        eprintln!("{test}: skipped, this host is not pure cgroup v2 (run it with make test-v2)");
    }
    v2
}

fn read(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

/// `rt create` + `rt start` of `b` with cgroupsPath `/<id>`; returns the id.
fn start(env: &Env, rt: Rt, b: &mut Bundle) -> String {
    let id = env.id(rt.name());
    b.config(|c| c["linux"]["cgroupsPath"] = format!("/{id}").into());
    let out = env.rt(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
    assert_eq!(out.code, 0, "{} create: {out:?}", rt.name());
    env.rt(rt, &["start", &id]).success();
    id
}

fn memory_files(id: &str) -> String {
    let dir = Path::new(CG).join(id);
    format!(
        "memory.max={} memory.swap.max={}",
        read(&dir.join("memory.max")),
        read(&dir.join("memory.swap.max"))
    )
}

/// A container with memory 64M and memory+swap 128M.
fn limited(env: &Env) -> Bundle {
    let mut b = env.bundle(&["sleep", "1000"]);
    b.config(|c| c["linux"]["resources"]["memory"] = json!({"limit": 64 * MIB, "swap": 128 * MIB}));
    b
}

/// Each step's exit code and the files after it, per runtime.
fn update_trace(env: &Env, rt: Rt, id: &str, steps: &[&[&str]]) -> Vec<String> {
    steps
        .iter()
        .map(|step| {
            let mut args = vec!["update"];
            args.extend_from_slice(step);
            args.push(id);
            let out = env.rt(rt, &args);
            format!("{step:?} -> {}: {}", out.code, memory_files(id))
        })
        .collect()
}

/// Updates that give memory and memory+swap together (or unlimited memory),
/// where runc 1.1.5 and 1.5 agree: side by side.
#[test]
fn update_memory_and_swap_together_as_runc() {
    if !pure_v2("update_memory_and_swap_together_as_runc") {
        return;
    }
    let env = Env::new();
    let steps: &[&[&str]] = &[
        &["--memory", "128M", "--memory-swap", "128M"],
        &["--memory", "-1"],
        &["--memory", "32M", "--memory-swap", "-1"],
        &["--memory", "48M", "--memory-swap", "96M"],
        &["--memory", "96M", "--memory-swap", "48M"],
    ];
    let mut b = limited(&env);
    let traces = BOTH.map(|rt| {
        let id = start(&env, rt, &mut b);
        let trace = update_trace(&env, rt, &id, steps);
        env.rt(rt, &["delete", "--force", &id]).success();
        trace
    });
    assert_eq!(traces[0], traces[1], "runc then paddock");
    env.assert_clean();
}

/// A flag alone combines with the limits the container has (its config as
/// changed by earlier updates), as runc 1.5: memory.swap.max is memory+swap
/// less memory, whichever of the two changes, and a memory limit above the
/// stored memory+swap is refused. runc 1.1.5 took a missing flag as 0 and
/// wrote each value alone (--memory-swap alone failed, --memory left
/// memory.swap.max as it was): paddock alone.
#[test]
fn update_combines_memory_and_swap_with_the_stored_limits() {
    if !pure_v2("update_combines_memory_and_swap_with_the_stored_limits") {
        return;
    }
    let env = Env::new();
    let steps: &[&[&str]] = &[
        // memory+swap alone: 256M - 64M.
        &["--memory-swap", "256M"],
        // memory alone under the stored 256M.
        &["--memory", "100M"],
        // Above the stored memory+swap: refused, nothing changes.
        &["--memory", "300M"],
        // Equal: swap off.
        &["--memory", "128M", "--memory-swap", "128M"],
        // memory 100M under a 128M memory+swap: 28M of swap.
        &["--memory", "100M"],
        &["--memory-reservation", "10M"],
        // Unlimited memory lifts swap too.
        &["--memory", "-1"],
        &["--memory", "32M", "--memory-swap", "-1"],
        &["--memory-swap", "96M"],
    ];
    let mut b = limited(&env);
    let id = start(&env, Rt::Paddock, &mut b);
    assert_eq!(
        memory_files(&id),
        format!("memory.max={} memory.swap.max={}", 64 * MIB, 64 * MIB)
    );
    let trace = update_trace(&env, Rt::Paddock, &id, steps);
    let want = [
        (0, 64 * MIB, 192 * MIB),
        (0, 100 * MIB, 156 * MIB),
        (1, 100 * MIB, 156 * MIB),
        (0, 128 * MIB, 0),
        (0, 100 * MIB, 28 * MIB),
        (0, 100 * MIB, 28 * MIB),
        (0, -1, -1),
        (0, 32 * MIB, -1),
        (0, 32 * MIB, 64 * MIB),
    ];
    let v = |n: i64| {
        if n < 0 {
            "max".to_string()
        } else {
            n.to_string()
        }
    };
    for ((line, (code, mem, swap)), step) in trace.iter().zip(want).zip(steps) {
        let expect = format!(
            "{step:?} -> {code}: memory.max={} memory.swap.max={}",
            v(mem),
            v(swap)
        );
        assert_eq!(line, &expect);
    }
    assert_eq!(
        read(&Path::new(CG).join(&id).join("memory.low")),
        (10 * MIB).to_string()
    );
    let out = env
        .paddock(&["update", "--memory", "300M", &id])
        .fails_with_one_line();
    assert!(
        out.stderr
            .contains("memory+swap limit should be >= memory limit"),
        "{out:?}"
    );
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

/// runc 1.5 takes a memory+swap value under unlimited memory as the swap limit
/// itself (runc 1.1.5 refuses it: "unable to set swap limit without memory
/// limit"); with no memory limit ever set both refuse it. paddock alone.
#[test]
fn swap_under_unlimited_memory_follows_runc_1_5() {
    if !pure_v2("swap_under_unlimited_memory_follows_runc_1_5") {
        return;
    }
    let env = Env::new();
    let mut b = limited(&env);
    let id = start(&env, Rt::Paddock, &mut b);
    env.paddock(&["update", "--memory", "-1", &id]).success();
    env.paddock(&["update", "--memory-swap", "50M", &id])
        .success();
    assert_eq!(
        memory_files(&id),
        format!("memory.max=max memory.swap.max={}", 50 * MIB)
    );
    env.paddock(&["delete", "--force", &id]).success();

    let mut b = env.bundle(&["sleep", "1000"]);
    let id = start(&env, Rt::Paddock, &mut b);
    let out = env
        .paddock(&["update", "--memory-swap", "50M", &id])
        .fails_with_one_line();
    assert!(
        out.stderr
            .contains("unable to set swap limit without memory limit"),
        "{out:?}"
    );
    assert_eq!(memory_files(&id), "memory.max=max memory.swap.max=max");
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

/// memory.checkBeforeUpdate: a limit at or below the current usage is refused
/// and nothing changes, as runc 1.5 (runc 1.1.5 predates the field and ignores
/// it): paddock alone.
#[test]
fn check_before_update_refuses_a_limit_below_usage() {
    if !pure_v2("check_before_update_refuses_a_limit_below_usage") {
        return;
    }
    let env = Env::new();
    let r = env.dir.join("check.json");
    fs::write(&r, r#"{"memory":{"limit":4096,"checkBeforeUpdate":true}}"#).unwrap();
    let mut b = limited(&env);
    let id = start(&env, Rt::Paddock, &mut b);
    let out = env
        .paddock(&["update", "-r", r.to_str().unwrap(), &id])
        .fails_with_one_line();
    assert!(
        out.stderr.contains("rejecting memory limit 4096 <= usage"),
        "{out:?}"
    );
    assert_eq!(
        memory_files(&id),
        format!("memory.max={} memory.swap.max={}", 64 * MIB, 64 * MIB)
    );
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

/// events --stats: memory.swap is memory+swap (usage and limit), as runc
/// reports it on v2 for callers written for v1 (containerd's metrics).
#[test]
fn events_stats_report_swap_as_memory_plus_swap() {
    if !pure_v2("events_stats_report_swap_as_memory_plus_swap") {
        return;
    }
    let env = Env::new();
    let mut b = limited(&env);
    let stats = BOTH.map(|rt| {
        let id = start(&env, rt, &mut b);
        let out = env.rt(rt, &["events", "--stats", &id]).success();
        let v: Value = serde_json::from_str(&out.stdout).unwrap();
        let m = v["data"]["memory"].clone();
        env.rt(rt, &["delete", "--force", &id]).success();
        m
    });
    for (rt, m) in BOTH.iter().zip(&stats) {
        let name = rt.name();
        assert_eq!(m["swap"]["limit"], json!(128 * MIB), "{name}: {m}");
        let (usage, swap) = (m["usage"]["usage"].as_u64(), m["swap"]["usage"].as_u64());
        assert!(
            usage.is_some() && swap >= usage,
            "{name}: memory+swap usage below memory usage: {m}"
        );
    }
    env.assert_clean();
}

/// A cgroup made for the test with a process of its own (a populated parent).
struct Populated {
    dir: PathBuf,
    child: Child,
}

impl Populated {
    fn new(env: &Env) -> Populated {
        let dir = Path::new(CG).join(env.id("populated"));
        fs::create_dir(&dir).unwrap();
        let child = Command::new("sleep")
            .arg("1000")
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        fs::write(dir.join("cgroup.procs"), child.id().to_string()).unwrap();
        Populated { dir, child }
    }
}

impl Drop for Populated {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        for _ in 0..100 {
            if fs::remove_dir(&self.dir).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// cgroupsPath below a cgroup with processes, with a memory limit: runc's
/// "cannot enter cgroupv2 ... with domain controllers" error. paddock also
/// leaves nothing behind: no directory, and the parent's subtree_control and
/// type as they were (runc leaves the controllers it enabled there).
#[test]
fn a_populated_parent_is_refused_with_domain_controllers() {
    if !pure_v2("a_populated_parent_is_refused_with_domain_controllers") {
        return;
    }
    let env = Env::new();
    let mut b = limited(&env);
    let outs = BOTH.map(|rt| {
        let parent = Populated::new(&env);
        let before = read(&parent.dir.join("cgroup.subtree_control"));
        let id = env.id(rt.name());
        let path = format!(
            "/{}/{id}",
            parent.dir.file_name().unwrap().to_str().unwrap()
        );
        b.config(|c| c["linux"]["cgroupsPath"] = path.clone().into());
        let out = env.rt_bounded(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
        assert!(
            out.stderr.contains("cannot enter cgroupv2")
                && out.stderr.contains("with domain controllers"),
            "{}: {out:?}",
            rt.name()
        );
        assert!(!parent.dir.join(&id).exists(), "{}: {path} left", rt.name());
        if rt == Rt::Paddock {
            assert_eq!(read(&parent.dir.join("cgroup.subtree_control")), before);
            assert_eq!(read(&parent.dir.join("cgroup.type")), "domain");
        }
        let _ = env.rt(rt, &["delete", "--force", &id]);
        out
    });
    assert_same_code("populated parent", &outs);
    env.assert_clean();
}

/// The same without domain controllers: the new cgroup is made threaded, as
/// runc does, and the container runs in it.
#[test]
fn a_populated_parent_takes_a_threaded_container() {
    if !pure_v2("a_populated_parent_takes_a_threaded_container") {
        return;
    }
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "echo ok"]);
    let outs = BOTH.map(|rt| {
        let parent = Populated::new(&env);
        let id = env.id(rt.name());
        let path = format!(
            "/{}/{id}",
            parent.dir.file_name().unwrap().to_str().unwrap()
        );
        b.config(|c| c["linux"]["cgroupsPath"] = path.into());
        let out = env.rt_bounded(rt, &["run", "-b", b.dir.to_str().unwrap(), &id]);
        let _ = env.rt(rt, &["delete", "--force", &id]);
        out
    });
    assert_eq!(
        (outs[0].code, &outs[0].stdout),
        (outs[1].code, &outs[1].stdout),
        "runc {:?} paddock {:?}",
        outs[0],
        outs[1]
    );
    env.assert_clean();
}

/// An existing frozen cgroup: create fails at once with runc's error.
#[test]
fn create_in_a_frozen_cgroup_fails_without_hanging() {
    if !pure_v2("create_in_a_frozen_cgroup_fails_without_hanging") {
        return;
    }
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let outs = BOTH.map(|rt| {
        let id = env.id(rt.name());
        let dir = Path::new(CG).join(&id);
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("cgroup.freeze"), "1").unwrap();
        b.config(|c| c["linux"]["cgroupsPath"] = format!("/{id}").into());
        let out = env.rt_bounded(rt, &["create", "-b", b.dir.to_str().unwrap(), &id]);
        fs::write(dir.join("cgroup.freeze"), "0").unwrap();
        assert!(
            out.stderr
                .contains("container's cgroup unexpectedly frozen"),
            "{}: {out:?}",
            rt.name()
        );
        let _ = env.rt(rt, &["delete", "--force", &id]);
        let _ = fs::remove_dir(&dir);
        out
    });
    assert_same_code("frozen cgroup", &outs);
    env.assert_clean();
}

/// A frozen parent would freeze the container's init as it joins (runc waits
/// for it for ever): paddock refuses it at once and makes nothing. paddock alone.
#[test]
fn create_below_a_frozen_parent_fails_without_hanging() {
    if !pure_v2("create_below_a_frozen_parent_fails_without_hanging") {
        return;
    }
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let parent = Path::new(CG).join(env.id("frozen"));
    fs::create_dir(&parent).unwrap();
    fs::write(parent.join("cgroup.freeze"), "1").unwrap();
    let id = env.id("c");
    let mut b = b;
    b.config(|c| {
        c["linux"]["cgroupsPath"] =
            format!("/{}/{id}", parent.file_name().unwrap().to_str().unwrap()).into()
    });
    let out = env.rt_bounded(Rt::Paddock, &["create", "-b", b.dir.to_str().unwrap(), &id]);
    fs::write(parent.join("cgroup.freeze"), "0").unwrap();
    let exists = parent.join(&id).exists();
    let _ = fs::remove_dir(parent.join(&id));
    fs::remove_dir(&parent).unwrap();
    assert_eq!(out.code, 1, "{out:?}");
    assert!(out.stderr.contains("is frozen"), "{out:?}");
    assert!(!exists, "the container's cgroup was made");
    env.assert_clean();
}
