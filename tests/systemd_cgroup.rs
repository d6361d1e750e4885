//! The systemd cgroup driver (`--systemd-cgroup`) against a real systemd: run in
//! the guest with systemd as PID 1 (`make test-systemd`); elsewhere every test
//! skips with a note. Each container's unit is checked through `systemctl` and
//! its cgroup files, and must be gone after delete.

mod common;

use std::fs;
use std::path::Path;
use std::process::Command;

use common::{wait_for, Bundle, Env, Out};
use serde_json::json;

fn systemd_pid1() -> bool {
    let pid1 = fs::read_to_string("/proc/1/comm").unwrap_or_default();
    let ok = Path::new("/run/systemd/system").is_dir() && pid1.trim() == "systemd";
    if !ok {
        eprintln!("skipped: systemd is not PID 1 here (make test-systemd runs this in a guest)");
    }
    ok
}

fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// systemd as PID 1 on pure cgroup v2 (most tests read the v2 files).
fn have_systemd() -> bool {
    if !systemd_pid1() {
        return false;
    }
    if !pure_v2() {
        eprintln!("skipped: systemd's v1 layout here (the v1_ tests cover it)");
    }
    pure_v2()
}

fn sd(env: &Env, args: &[&str]) -> Out {
    let mut all = vec!["--systemd-cgroup"];
    all.extend_from_slice(args);
    env.paddock(&all)
}

fn systemctl(args: &[&str]) -> String {
    let out = Command::new("systemctl").args(args).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `systemctl show -p NAME --value UNIT`.
fn show(unit: &str, prop: &str) -> String {
    systemctl(&["show", "-p", prop, "--value", unit])
        .trim()
        .to_string()
}

fn unit_known(unit: &str) -> bool {
    systemctl(&["list-units", "--all", "--no-legend", "--plain", unit]).contains(unit)
}

fn sleeper(env: &Env, cgroups_path: &str) -> Bundle {
    let mut b = env.bundle(&["sleep", "1000"]);
    b.config(|c| c["linux"]["cgroupsPath"] = cgroups_path.into());
    b
}

fn run_detached(env: &Env, b: &Bundle, id: &str) {
    sd(env, &["run", "-d", "-b", b.dir.to_str().unwrap(), id]).success();
}

fn read(path: &str) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .trim()
        .to_string()
}

/// Deletes (with --force, and without --systemd-cgroup: the driver is remembered) and
/// checks that neither the unit nor its cgroup is left.
#[track_caller]
fn delete_leaves_nothing(env: &Env, id: &str, unit: &str, cgroup: &str) {
    env.paddock(&["delete", "--force", id]).success();
    assert!(!unit_known(unit), "{unit} left after delete");
    assert!(!Path::new(cgroup).exists(), "{cgroup} left after delete");
    env.assert_clean();
}

#[test]
fn each_slice_form_gets_its_unit_where_systemd_puts_it() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    // (cgroupsPath, unit, cgroup under /sys/fs/cgroup), ID standing for the container's id.
    let forms = [
        (
            "machine.slice:pd:ID",
            "pd-ID.scope",
            "machine.slice/pd-ID.scope",
        ),
        ("", "paddock-ID.scope", "system.slice/paddock-ID.scope"),
        (":pd:ID", "pd-ID.scope", "system.slice/pd-ID.scope"),
        (
            "pdt-nest.slice:pd:ID",
            "pd-ID.scope",
            "pdt.slice/pdt-nest.slice/pd-ID.scope",
        ),
        (
            "machine.slice::machine-pdslice.slice",
            "machine-pdslice.slice",
            "machine.slice/machine-pdslice.slice",
        ),
    ];
    for (path, unit, cgroup) in forms {
        let id = env.id("form");
        let b = sleeper(&env, &path.replace("ID", &id));
        run_detached(&env, &b, &id);
        let (unit, cgroup) = (unit.replace("ID", &id), cgroup.replace("ID", &id));
        let cg = format!("/sys/fs/cgroup/{cgroup}");
        let pid = env.state(&id)["pid"].as_i64().unwrap().to_string();
        assert_eq!(show(&unit, "ActiveState"), "active", "{unit}");
        assert_eq!(show(&unit, "ControlGroup"), format!("/{cgroup}"), "{unit}");
        assert!(
            read(&format!("{cg}/cgroup.procs"))
                .lines()
                .any(|l| l == pid),
            "init {pid} not in {cg}"
        );
        if unit.ends_with(".scope") {
            assert_eq!(show(&unit, "Delegate"), "yes");
        }
        delete_leaves_nothing(&env, &id, &unit, &cg);
    }
    // The slices systemd made for the nested form go when empty; not ours to remove.
    let _ = systemctl(&["stop", "pdt-nest.slice", "pdt.slice"]);
}

#[test]
fn limits_reach_the_unit_and_the_files_and_update_changes_both() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    let id = env.id("lim");
    let mut b = sleeper(&env, &format!("machine.slice:pd:{id}"));
    b.config(|c| {
        c["linux"]["resources"] = json!({
            "memory": {"limit": 104857600, "reservation": 52428800},
            "pids": {"limit": 50},
            "cpu": {"quota": 12345, "period": 100000, "shares": 1024}
        });
        c["annotations"] = json!({
            "org.systemd.property.TimeoutStopSec": "uint64 7",
            "org.systemd.property.CollectMode": "'inactive-or-failed'"
        });
    });
    run_detached(&env, &b, &id);
    let unit = format!("pd-{id}.scope");
    let cg = format!("/sys/fs/cgroup/machine.slice/{unit}");
    assert_eq!(show(&unit, "MemoryMax"), "104857600");
    assert_eq!(show(&unit, "MemoryLow"), "52428800");
    assert_eq!(show(&unit, "TasksMax"), "50");
    // As runc: the quota is rounded up to systemd's 10 ms steps, in the files too.
    assert_eq!(show(&unit, "CPUQuotaPerSecUSec"), "130ms");
    assert_eq!(show(&unit, "CPUWeight"), "39");
    assert_eq!(show(&unit, "TimeoutStopUSec"), "7s");
    assert_eq!(show(&unit, "CollectMode"), "inactive-or-failed");
    // The device rules as runc gives them to systemd; the devices still work.
    assert_eq!(show(&unit, "DevicePolicy"), "strict");
    let allowed = show(&unit, "DeviceAllow");
    assert!(allowed.contains("/dev/char/1:3 rwm"), "{allowed}");
    assert!(allowed.contains("char-136 rwm"), "{allowed}");
    let out = env
        .paddock(&[
            "exec",
            &id,
            "sh",
            "-c",
            "echo x >/dev/null && head -c1 /dev/zero | wc -c",
        ])
        .success();
    assert_eq!(out.stdout.trim(), "1");
    assert_eq!(read(&format!("{cg}/memory.max")), "104857600");
    assert_eq!(read(&format!("{cg}/memory.low")), "52428800");
    assert_eq!(read(&format!("{cg}/pids.max")), "50");
    assert_eq!(read(&format!("{cg}/cpu.max")), "13000 100000");
    assert_eq!(read(&format!("{cg}/cpu.weight")), "39");

    // Without --systemd-cgroup: the driver was remembered at create.
    env.paddock(&[
        "update",
        "--memory",
        "209715200",
        "--pids-limit",
        "70",
        "--cpu-quota",
        "50000",
        &id,
    ])
    .success();
    assert_eq!(show(&unit, "MemoryMax"), "209715200");
    assert_eq!(show(&unit, "TasksMax"), "70");
    assert_eq!(show(&unit, "CPUQuotaPerSecUSec"), "500ms");
    assert_eq!(read(&format!("{cg}/memory.max")), "209715200");
    assert_eq!(read(&format!("{cg}/pids.max")), "70");
    assert_eq!(read(&format!("{cg}/cpu.max")), "50000 100000");
    // memory.checkBeforeUpdate refuses a limit under the usage before systemd hears of it.
    let res = env.dir.join("res.json");
    fs::write(
        &res,
        r#"{"memory":{"limit":4096,"checkBeforeUpdate":true}}"#,
    )
    .unwrap();
    env.paddock(&["update", "-r", res.to_str().unwrap(), &id])
        .fails_with_one_line();
    assert_eq!(show(&unit, "MemoryMax"), "209715200");
    delete_leaves_nothing(&env, &id, &unit, &cg);
}

#[test]
fn pause_resume_exec_ps_and_kill_all_work_on_the_scope() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    let id = env.id("ops");
    let mut b = sleeper(&env, &format!("machine.slice:pd:{id}"));
    b.args(&["sh", "-c", "sleep 1000 & sleep 1000"]);
    run_detached(&env, &b, &id);
    let unit = format!("pd-{id}.scope");
    let cg = format!("/sys/fs/cgroup/machine.slice/{unit}");

    env.paddock(&["pause", &id]).success();
    assert_eq!(env.status(&id), "paused");
    assert_eq!(read(&format!("{cg}/cgroup.freeze")), "1");
    env.paddock(&["resume", &id]).success();
    assert_eq!(env.status(&id), "running");
    assert_eq!(read(&format!("{cg}/cgroup.freeze")), "0");

    let pidfile = env.dir.join("exec.pid");
    env.paddock(&[
        "exec",
        "-d",
        "--pid-file",
        pidfile.to_str().unwrap(),
        &id,
        "sleep",
        "1000",
    ])
    .success();
    let epid = fs::read_to_string(&pidfile).unwrap();
    assert_eq!(
        read(&format!("/proc/{epid}/cgroup")),
        format!("0::/machine.slice/{unit}"),
        "exec'd process outside the scope"
    );
    let ps = env.paddock(&["ps", "--format", "json", &id]).success();
    let pids: Vec<i64> = serde_json::from_str(&ps.stdout).unwrap();
    // sh execs its last command: two sleeps of init's, one exec'd.
    assert_eq!(pids.len(), 3, "{pids:?}");
    assert_eq!(show(&unit, "TasksCurrent"), "3");

    env.paddock(&["kill", "--all", &id, "KILL"]).success();
    assert!(env.wait_status(&id, "stopped"));
    assert!(wait_for(
        || !Path::new(&format!("/proc/{}", epid.trim())).exists()
    ));
    delete_leaves_nothing(&env, &id, &unit, &cg);
}

#[test]
fn a_failing_create_leaves_no_unit() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    let id = env.id("fail");
    let mut b = sleeper(&env, &format!("machine.slice:pd:{id}"));
    // The hook fails after systemd made the unit around init.
    b.config(|c| c["hooks"] = json!({"createRuntime": [{"path": "/bin/false"}]}));
    sd(&env, &["create", "-b", b.dir.to_str().unwrap(), &id]).fails_with_one_line();
    let unit = format!("pd-{id}.scope");
    assert!(
        wait_for(|| !unit_known(&unit)),
        "{unit} left after a failed create"
    );
    assert!(!Path::new(&format!("/sys/fs/cgroup/machine.slice/{unit}")).exists());
    env.assert_clean();

    // A unit that exists belongs to another container: refused, and left running.
    let first = env.id("first");
    let b = sleeper(&env, &format!("machine.slice:pd:{first}"));
    run_detached(&env, &b, &first);
    let out = sd(&env, &["create", "-b", b.dir.to_str().unwrap(), &id]).fails_with_one_line();
    assert!(out.stderr.contains("UnitExists"), "{out:?}");
    let unit = format!("pd-{first}.scope");
    assert_eq!(show(&unit, "ActiveState"), "active");
    assert_eq!(env.status(&first), "running");
    assert_eq!(
        read(&format!("/sys/fs/cgroup/machine.slice/{unit}/cgroup.procs")),
        env.state(&first)["pid"].to_string()
    );
    env.paddock(&["delete", "--force", &first]).success();

    // Bad names and bad annotations fail before anything is made.
    for (path, want) in [
        ("/a/b", "slice:prefix:name"),
        ("bad:pd:x", "invalid slice name"),
    ] {
        let b = sleeper(&env, path);
        let out = sd(&env, &["create", "-b", b.dir.to_str().unwrap(), &id]).fails_with_one_line();
        assert!(out.stderr.contains(want), "{path}: {out:?}");
    }
    let mut b = sleeper(&env, "");
    b.config(|c| c["annotations"] = json!({"org.systemd.property.Bad1": "1"}));
    let out = sd(&env, &["create", "-b", b.dir.to_str().unwrap(), &id]).fails_with_one_line();
    assert!(out.stderr.contains("org.systemd.property.Bad1"), "{out:?}");
    env.assert_clean();
}

#[test]
fn an_unreachable_bus_is_one_line_naming_its_socket() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    let id = env.id("nobus");
    let b = sleeper(&env, "");
    let mut cmd = env.cmd(&[
        "--systemd-cgroup",
        "create",
        "-b",
        b.dir.to_str().unwrap(),
        &id,
    ]);
    cmd.env("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/run/no-such-bus");
    let out = env.output(cmd).fails_with_one_line();
    assert!(out.stderr.contains("/run/no-such-bus"), "{out:?}");
    assert!(!unit_known(&format!("paddock-{id}.scope")));
    env.assert_clean();
}

#[test]
fn twenty_containers_created_in_parallel_each_get_a_scope() {
    if !have_systemd() {
        return;
    }
    let env = Env::new();
    let ids: Vec<String> = (0..20).map(|_| env.id("par")).collect();
    let bundles: Vec<Bundle> = ids
        .iter()
        .map(|id| sleeper(&env, &format!("machine.slice:pd:{id}")))
        .collect();
    std::thread::scope(|s| {
        for (id, b) in ids.iter().zip(&bundles) {
            let env = &env;
            s.spawn(move || run_detached(env, b, id));
        }
    });
    for id in &ids {
        let unit = format!("pd-{id}.scope");
        assert_eq!(show(&unit, "ActiveState"), "active", "{unit}");
        assert_eq!(env.status(id), "running");
    }
    std::thread::scope(|s| {
        for id in &ids {
            let env = &env;
            s.spawn(move || env.paddock(&["delete", "--force", id]).success());
        }
    });
    for id in &ids {
        assert!(!unit_known(&format!("pd-{id}.scope")), "{id}");
    }
    env.assert_clean();
}

/// systemd's legacy layout (`make test-systemd` boots it too): the unit's v1
/// properties, the files in each controller's hierarchy, update, and nothing
/// left in any hierarchy after delete.
#[test]
fn v1_layout_limits_update_and_delete() {
    if !systemd_pid1() || pure_v2() {
        eprintln!("skipped: needs systemd's v1 layout");
        return;
    }
    let env = Env::new();
    let id = env.id("v1");
    let mut b = sleeper(&env, &format!("machine.slice:pd:{id}"));
    b.config(|c| {
        c["linux"]["resources"] = json!({
            "memory": {"limit": 104857600},
            "pids": {"limit": 50},
            "cpu": {"quota": 12345, "period": 100000, "shares": 512}
        })
    });
    run_detached(&env, &b, &id);
    let unit = format!("pd-{id}.scope");
    let dir = |ctrl: &str| format!("/sys/fs/cgroup/{ctrl}/machine.slice/{unit}");
    assert_eq!(show(&unit, "MemoryLimit"), "104857600");
    assert_eq!(show(&unit, "CPUShares"), "512");
    assert_eq!(show(&unit, "TasksMax"), "50");
    assert_eq!(show(&unit, "CPUQuotaPerSecUSec"), "130ms");
    assert_eq!(show(&unit, "DevicePolicy"), "strict");
    assert_eq!(
        read(&format!("{}/memory.limit_in_bytes", dir("memory"))),
        "104857600"
    );
    assert_eq!(read(&format!("{}/cpu.cfs_quota_us", dir("cpu"))), "13000");
    assert_eq!(read(&format!("{}/pids.max", dir("pids"))), "50");
    // init is in the unit in every hierarchy, those systemd leaves alone too.
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let cgroups = read(&format!("/proc/{pid}/cgroup"));
    for line in cgroups.lines() {
        assert!(line.ends_with(&format!("/machine.slice/{unit}")), "{line}");
    }
    env.paddock(&["update", "--memory", "209715200", &id])
        .success();
    assert_eq!(show(&unit, "MemoryLimit"), "209715200");
    assert_eq!(
        read(&format!("{}/memory.limit_in_bytes", dir("memory"))),
        "209715200"
    );
    // systemd rewrote the device list on update; the devices still work.
    let out = env
        .paddock(&["exec", &id, "sh", "-c", "echo x >/dev/null && echo ok"])
        .success();
    assert_eq!(out.stdout.trim(), "ok");
    env.paddock(&["pause", &id]).success();
    assert_eq!(read(&format!("{}/freezer.state", dir("freezer"))), "FROZEN");
    env.paddock(&["resume", &id]).success();
    env.paddock(&["delete", "--force", &id]).success();
    assert!(!unit_known(&unit), "{unit} left after delete");
    for e in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let d = e.path().join("machine.slice").join(&unit);
        assert!(!d.exists(), "{} left after delete", d.display());
    }
    env.assert_clean();
}
