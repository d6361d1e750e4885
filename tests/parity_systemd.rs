//! Parity, the systemd cgroup driver: the same bundle through Debian's runc
//! (`runc --systemd-cgroup`) and paddock in the guest with systemd as PID 1
//! (`make test-systemd`); skipped elsewhere. Compared: exit codes, the unit's
//! cgroup and properties as `systemctl show` reports them, the files, and what
//! is left after delete. Only what runc 1.1.5 does as runc 1.5 does is compared
//! (1.1.5 and 1.5 name, place and limit the scope alike; the unit's Description
//! is each runtime's own).

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::parity::{assert_same_code, side_by_side, Rt};
use common::{Bundle, Env};
use serde_json::json;

fn have_systemd() -> bool {
    let pid1 = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let ok = Path::new("/run/systemd/system").is_dir() && pid1.trim() == "systemd";
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !ok || !v2 {
        eprintln!(
            "skipped: needs systemd as PID 1 on cgroup v2 (make test-systemd runs this in a guest)"
        );
    }
    ok && v2
}

fn show(unit: &str, props: &[&str]) -> String {
    let mut args = vec!["show".to_string(), unit.to_string()];
    for p in props {
        args.push(format!("-p{p}"));
    }
    let out = Command::new("systemctl").args(&args).output().unwrap();
    let mut lines: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    lines.sort();
    lines.join("\n")
}

/// A sleeping container in `slice` with `resources`, run detached by `rt` with the
/// systemd driver; returns (id, unit, its ControlGroup with the runtime's name blanked).
fn start(env: &Env, rt: Rt, slice: &str, resources: serde_json::Value) -> (String, String) {
    let id = env.id(rt.name());
    let mut b: Bundle = env.bundle(&["sleep", "1000"]);
    b.config(|c| {
        c["linux"]["cgroupsPath"] = format!("{slice}:pd:{id}").into();
        c["linux"]["resources"] = resources;
    });
    let out = env.rt(
        rt,
        &[
            "--systemd-cgroup",
            "run",
            "-d",
            "-b",
            b.dir.to_str().unwrap(),
            &id,
        ],
    );
    assert!(out.ok(), "{} run: {out:?}", rt.name());
    let unit = format!("pd-{id}.scope");
    (id, unit)
}

#[test]
fn scope_placement_and_limits_match_runc() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    let res = json!({
        "memory": {"limit": 104857600},
        "pids": {"limit": 40},
        "cpu": {"quota": 25000, "period": 100000}
    });
    let props = [
        "ActiveState",
        "Delegate",
        "MemoryMax",
        "TasksMax",
        "CPUQuotaPerSecUSec",
        "CPUQuotaPeriodUSec",
        "MemoryAccounting",
        "CPUAccounting",
        "TasksAccounting",
        "DefaultDependencies",
        "Slice",
        "DevicePolicy",
    ];
    let seen = side_by_side(|rt| {
        let (id, unit) = start(&env, rt, "pdp-nest.slice", res.clone());
        let cg = Command::new("systemctl")
            .args(["show", "-p", "ControlGroup", "--value", &unit])
            .output()
            .unwrap();
        let cg = String::from_utf8_lossy(&cg.stdout).replace(&id, "ID");
        let files: Vec<String> = ["memory.max", "pids.max", "cpu.max"]
            .iter()
            .map(|f| {
                let p = format!("/sys/fs/cgroup/pdp.slice/pdp-nest.slice/{unit}/{f}");
                fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
            })
            .collect();
        let shown = show(&unit, &props);
        // update goes to the unit too, for runc (SetUnitProperties) and paddock.
        let upd = env.rt(rt, &["update", "--memory", "209715200", &id]);
        let after = show(&unit, &["MemoryMax"]);
        let del = env.rt(rt, &["delete", "--force", &id]);
        let gone = show(&unit, &["LoadState"]);
        (cg, files, shown, upd.code, after, del.code, gone)
    });
    assert_eq!(seen[0], seen[1], "runc (left) and paddock (right) differ");
    assert!(seen[1].6.contains("not-found"), "{:?}", seen[1].6);
    let _ = Command::new("systemctl")
        .args(["stop", "pdp-nest.slice", "pdp.slice"])
        .status();
    env.assert_clean();
}

#[test]
fn a_cgroups_path_without_the_slice_form_is_refused_alike() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        let mut b = env.bundle(&["true"]);
        b.config(|c| c["linux"]["cgroupsPath"] = "/a/b".into());
        env.rt(
            rt,
            &[
                "--systemd-cgroup",
                "run",
                "-b",
                b.dir.to_str().unwrap(),
                &id,
            ],
        )
    });
    assert_same_code("cgroupsPath /a/b", &outs);
    for o in &outs {
        assert!(
            o.stderr
                .contains(r#"expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got \"/a/b\" instead"#)
                || o.stderr.contains(r#"expected cgroupsPath to be of format "slice:prefix:name" for systemd cgroups, got "/a/b" instead"#),
            "{o:?}"
        );
    }
    env.assert_clean();
}
