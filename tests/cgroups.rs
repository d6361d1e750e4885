//! linux.resources in the cgroup files (create and update), pause/resume,
//! OOM events, a fork bomb under pids.max, the v1 device allow-list, the
//! clear errors for what this host or paddock cannot do, and init being in its
//! cgroup (and cgroup namespace root) before hooks and mounts that depend on it,
//! and v1 cpuset values copied down a nested cgroupsPath.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::thread::sleep;
use std::time::Duration;

use common::{wait_for, Bundle, Env};
use serde_json::json;

fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// The container's directory for a v1 controller, or the v2 directory. With a
/// private --root the runtime names it `paddock/<id>-<hash of the root>`.
fn cg_dir(ctrl: &str, id: &str) -> PathBuf {
    let parent = if pure_v2() {
        PathBuf::from("/sys/fs/cgroup/paddock")
    } else {
        PathBuf::from("/sys/fs/cgroup").join(ctrl).join("paddock")
    };
    fs::read_dir(&parent)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            name == id
                || name
                    .strip_prefix(&format!("{id}-"))
                    .is_some_and(|h| h.len() == 8)
        })
        .unwrap_or_else(|| parent.join(id))
}

fn cg_read(ctrl: &str, id: &str, file: &str) -> String {
    fs::read_to_string(cg_dir(ctrl, id).join(file))
        .unwrap_or_else(|e| panic!("read {ctrl}/{file}: {e}"))
        .trim()
        .to_string()
}

fn sleeper(env: &Env) -> Bundle {
    env.bundle(&["sleep", "1000"])
}

fn set_resources(b: &mut Bundle, r: serde_json::Value) {
    b.config(|c| {
        let res = &mut c["linux"]["resources"];
        for (k, v) in r.as_object().unwrap() {
            res[k] = v.clone();
        }
    });
}

fn remove(env: &Env, id: &str) {
    env.paddock(&["delete", "--force", id]).success();
}

/// (file, expected) pairs for the values `resources()` sets, per cgroup version.
fn expected_after_create() -> Vec<(&'static str, &'static str, &'static str)> {
    if pure_v2() {
        vec![
            ("", "memory.max", "33554432"),
            ("", "memory.swap.max", "0"),
            ("", "memory.low", "16777216"),
            ("", "cpu.weight", "20"),
            ("", "cpu.max", "20000 100000"),
            ("", "cpuset.cpus", "0"),
            ("", "pids.max", "20"),
        ]
    } else {
        vec![
            ("memory", "memory.limit_in_bytes", "33554432"),
            ("memory", "memory.memsw.limit_in_bytes", "33554432"),
            ("memory", "memory.soft_limit_in_bytes", "16777216"),
            ("memory", "memory.swappiness", "10"),
            ("cpu", "cpu.shares", "512"),
            ("cpu", "cpu.cfs_period_us", "100000"),
            ("cpu", "cpu.cfs_quota_us", "20000"),
            ("cpu", "cpu.cfs_burst_us", "1000"),
            ("cpuset", "cpuset.cpus", "0"),
            ("cpuset", "cpuset.mems", "0"),
            ("pids", "pids.max", "20"),
        ]
    }
}

fn resources() -> serde_json::Value {
    let mut r = json!({
        "memory": {"limit": 33554432, "swap": 33554432, "reservation": 16777216},
        "cpu": {"shares": 512, "quota": 20000, "period": 100000, "cpus": "0", "mems": "0"},
        "pids": {"limit": 20},
    });
    if !pure_v2() {
        r["memory"]["swappiness"] = 10.into();
        r["cpu"]["burst"] = 1000.into();
    }
    r
}

#[test]
fn resources_are_set_at_create_and_changed_by_update() {
    let env = Env::new();
    let mut b = sleeper(&env);
    set_resources(&mut b, resources());
    let id = env.id("res");
    env.create(&b, &id).success();
    for (ctrl, file, want) in expected_after_create() {
        assert_eq!(cg_read(ctrl, &id, file), want, "{file} after create");
    }
    env.paddock(&["start", &id]).success();

    env.paddock(&[
        "update",
        "--memory",
        "64m",
        "--memory-swap",
        "128m",
        "--cpu-quota",
        "30000",
        "--cpu-shares",
        "1024",
        "--pids-limit",
        "30",
        &id,
    ])
    .success();
    let mem = "memory";
    if pure_v2() {
        assert_eq!(cg_read(mem, &id, "memory.max"), "67108864");
        assert_eq!(cg_read(mem, &id, "memory.swap.max"), "67108864");
        assert_eq!(cg_read("cpu", &id, "cpu.max"), "30000 100000");
        assert_eq!(cg_read("cpu", &id, "cpu.weight"), "39");
    } else {
        assert_eq!(cg_read(mem, &id, "memory.limit_in_bytes"), "67108864");
        assert_eq!(
            cg_read(mem, &id, "memory.memsw.limit_in_bytes"),
            "134217728"
        );
        assert_eq!(cg_read("cpu", &id, "cpu.cfs_quota_us"), "30000");
        assert_eq!(cg_read("cpu", &id, "cpu.shares"), "1024");
    }
    assert_eq!(cg_read("pids", &id, "pids.max"), "30");

    // --resources - : JSON LinuxResources on stdin.
    let mut child = env.spawn(&["update", "--resources", "-", &id], |c| {
        c.stdin(Stdio::piped());
    });
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(br#"{"pids":{"limit":40}}"#).unwrap();
    }
    assert!(child.wait().unwrap().success());
    assert_eq!(cg_read("pids", &id, "pids.max"), "40");
    remove(&env, &id);
    env.assert_clean();
}

#[test]
fn update_with_an_invalid_value_changes_nothing() {
    let env = Env::new();
    let mut b = sleeper(&env);
    set_resources(
        &mut b,
        json!({"pids": {"limit": 20}, "cpu": {"quota": 20000, "period": 100000}}),
    );
    let id = env.id("badupd");
    env.create(&b, &id).success();
    let (quota_file, quota_before) = if pure_v2() {
        ("cpu.max", "20000 100000")
    } else {
        ("cpu.cfs_quota_us", "20000")
    };
    // A value that does not parse: nothing is written, not even the valid flags.
    env.paddock(&["update", "--pids-limit", "50", "--memory", "lots", &id])
        .fails_with_one_line();
    env.paddock(&["update", "--pids-limit", "50", "--blkio-weight", "5", &id])
        .fails_with_one_line();
    assert_eq!(cg_read("pids", &id, "pids.max"), "20");
    // A value the kernel refuses after an earlier write: that write is undone.
    let out = env
        .paddock(&[
            "update",
            "--cpu-quota",
            "40000",
            "--cpuset-cpus",
            "9999",
            &id,
        ])
        .fails_with_one_line();
    assert!(out.stderr.contains("cpu.cpus"), "{out:?}");
    assert_eq!(cg_read("cpu", &id, quota_file), quota_before);
    remove(&env, &id);
    env.assert_clean();
}

fn count(b: &Bundle) -> u64 {
    fs::read_to_string(b.rootfs.join("tmp/count"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn pause_stops_a_counting_process_and_resume_continues_it() {
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "i=0; while true; do i=$((i+1)); echo $i > /tmp/count.new; mv /tmp/count.new /tmp/count; done",
    ]);
    b.config(|c| c["root"]["readonly"] = false.into());
    let id = env.id("pause");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    assert!(wait_for(|| count(&b) > 10), "the process never counted");

    env.paddock(&["pause", &id]).success();
    assert_eq!(env.status(&id), "paused");
    let frozen = count(&b);
    sleep(Duration::from_millis(300));
    assert_eq!(count(&b), frozen, "counting went on while paused");
    // runc's answer: only a created or running container can be paused.
    let again = env.paddock(&["pause", &id]).fails_with_one_line();
    assert!(again.stderr.contains("container not running"), "{again:?}");

    env.paddock(&["resume", &id]).success();
    assert_eq!(env.status(&id), "running");
    assert!(
        wait_for(|| count(&b) > frozen + 10),
        "counting did not resume"
    );
    let not_paused = env.paddock(&["resume", &id]).fails_with_one_line();
    assert!(not_paused.stderr.contains("not paused"), "{not_paused:?}");

    // A paused container can still be killed and deleted.
    env.paddock(&["pause", &id]).success();
    remove(&env, &id);
    env.assert_clean();
}

#[test]
fn pausing_a_stopped_container_is_an_error() {
    let env = Env::new();
    let b = env.bundle(&["true"]);
    let id = env.id("pstop");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    assert!(env.wait_status(&id, "stopped"));
    let out = env.paddock(&["pause", &id]).fails_with_one_line();
    assert!(out.stderr.contains("not running"), "{out:?}");
    env.paddock(&["resume", &id]).fails_with_one_line();
    env.paddock(&["delete", &id]).success();
    env.assert_clean();
}

#[test]
fn a_memory_hog_is_oom_killed_and_events_reports_it() {
    let env = Env::new();
    // tail buffers a line that never ends: it grows until the limit kills it.
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "while [ ! -e /tmp/go ]; do sleep 0.05; done; tail /dev/zero",
    ]);
    set_resources(
        &mut b,
        json!({"memory": {"limit": 16777216, "swap": 16777216}}),
    );
    let id = env.id("oom");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    let log = env.dir.join("events.out");
    let mut events = env.spawn(&["events", "--interval", "100ms", &id], |c| {
        c.stdout(fs::File::create(&log).unwrap());
        c.stderr(Stdio::null());
    });
    // The first stats line means the OOM watch is registered.
    assert!(wait_for(
        || fs::read_to_string(&log).is_ok_and(|s| s.contains("\"stats\""))
    ));
    fs::write(b.rootfs.join("tmp/go"), "").unwrap();
    assert!(env.wait_status(&id, "stopped"), "the hog was not killed");
    assert!(
        wait_for(|| events.try_wait().unwrap().is_some()),
        "events did not end with the container"
    );
    let out = fs::read_to_string(&log).unwrap();
    assert!(
        out.lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|v| v["type"] == "oom" && v["id"] == id.as_str()),
        "no oom event: {out}"
    );
    env.paddock(&["delete", &id]).success();
    env.assert_clean();
}

#[test]
fn a_fork_bomb_stays_under_pids_max_and_is_killed() {
    let env = Env::new();
    let mut b = env.bundle(&["sh", "-c", "f() { f | f & }; f; exec sleep 1000"]);
    set_resources(&mut b, json!({"pids": {"limit": 20}}));
    let id = env.id("bomb");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    let events = |id: &str| cg_read("pids", id, "pids.events");
    assert!(
        wait_for(|| !events(&id).ends_with(" 0")),
        "the bomb never hit pids.max"
    );
    let current: u64 = cg_read("pids", &id, "pids.current").parse().unwrap();
    assert!(current <= 20, "pids.current {current}");
    let stats = env.paddock(&["events", "--stats", &id]).success();
    let v: serde_json::Value = serde_json::from_str(&stats.stdout).unwrap();
    assert_eq!(v["type"], "stats");
    assert_eq!(v["data"]["pids"]["limit"], 20);
    env.paddock(&["kill", "--all", &id, "KILL"]).success();
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
    env.assert_clean();
}

#[test]
fn ps_lists_the_container_processes() {
    let env = Env::new();
    let b = sleeper(&env);
    let id = env.id("ps");
    env.create(&b, &id).success();
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let json = env.paddock(&["ps", "--format", "json", &id]).success();
    let pids: Vec<i64> = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(pids, [pid]);
    let table = env.paddock(&["ps", &id]).success();
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{table:?}");
    assert!(lines[0].contains("PID"));
    assert!(lines[1].split_whitespace().any(|f| f == pid.to_string()));
    remove(&env, &id);
    env.assert_clean();
}

#[test]
fn the_device_allow_list_denies_a_block_device() {
    let env = Env::new();
    let cmd = "mknod /dev/blk b 7 0 && head -c1 /dev/blk >/dev/null";
    let mut b = env.bundle(&["sh", "-c", cmd]);
    b.config(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push("CAP_MKNOD".into());
        }
    });
    let id = env.id("dev");
    let out = env.run(&b, &id);
    assert_ne!(out.code, 0, "reading a block device was allowed: {out:?}");
    // The same with the device allowed: the cgroup made the difference.
    b.push(
        |c| &mut c["linux"]["resources"]["devices"],
        json!({"allow": true, "type": "b", "major": 7, "minor": 0, "access": "rwm"}),
    );
    if Path::new("/sys/dev/block/7:0").exists() {
        let id = env.id("dev");
        env.run(&b, &id).success();
    }
    env.assert_clean();
}

#[test]
fn unsupported_settings_are_clear_errors_that_leave_nothing() {
    let env = Env::new();
    let mut b = sleeper(&env);
    set_resources(&mut b, json!({"unified": {"bogus.file": "1"}}));
    let id = env.id("unsup");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("linux.resources.unified"), "{out:?}");
    set_resources(&mut b, json!({"unified": {"../escape": "1"}}));
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains("unified"), "{out:?}");

    let b = sleeper(&env);
    let id = env.id("sd");
    let out = env
        .paddock(&[
            "--systemd-cgroup",
            "create",
            "-b",
            b.dir.to_str().unwrap(),
            &id,
        ])
        .fails_with_one_line();
    // No systemd on this host: one line naming the bus it could not reach.
    assert!(out.stderr.contains("system_bus_socket"), "{out:?}");
    env.assert_clean();
}

/// init joins its v1 cgroups itself while create runs (see process/channel.rs);
/// by the time the runtime-namespace hooks run it must be in every hierarchy.
#[test]
fn prestart_hooks_see_init_in_its_cgroup_in_every_hierarchy() {
    let env = Env::new();
    let logdir = env.mkdir("cglog");
    let log = logdir.join("cgroup");
    let mut b = sleeper(&env);
    let script = format!(
        "pid=$(sed -n 's/.*\"pid\":\\([0-9]*\\).*/\\1/p'); cat /proc/$pid/cgroup > {}",
        log.display()
    );
    b.config(|c| {
        c["hooks"]["prestart"] = json!([{"path": "/bin/sh", "args": ["sh", "-c", script]}]);
    });
    let id = env.id("cgjoin");
    env.create(&b, &id).success();
    let lines = fs::read_to_string(&log).unwrap();
    let leaf = cg_dir("memory", &id);
    let leaf = leaf.file_name().unwrap().to_string_lossy().into_owned();
    assert!(lines.lines().count() >= 1, "{lines}");
    for line in lines.lines() {
        assert!(
            line.ends_with(&format!("/paddock/{leaf}")),
            "{line} in {lines}"
        );
    }
    remove(&env, &id);
}

/// Without a cgroup mount in the config, init still joins before it unshares
/// the cgroup namespace, so the container's cgroup is the namespace root.
#[test]
fn cgroup_namespace_without_a_cgroup_mount_is_rooted_at_the_container() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "cgroup"}));
    b.config(|c| {
        let mounts = c["mounts"].as_array_mut().unwrap();
        mounts.retain(|m| m["type"] != "cgroup");
    });
    let out = env.run_args(&mut b, &["cat", "/proc/self/cgroup"]);
    assert!(!out.stdout.is_empty(), "{out:?}");
    for line in out.stdout.lines() {
        assert!(line.ends_with(":/"), "{line} in {out:?}");
    }
}

/// Makes clone3 fail with ENOSYS in the spawned paddock, as an old kernel or a
/// host seccomp profile would (x86_64 and aarch64 both number it 435).
fn without_clone3(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    let filter = [
        libc::sock_filter {
            code: (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16,
            jt: 0,
            jf: 0,
            k: 0, // offset of seccomp_data.nr
        },
        libc::sock_filter {
            code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
            jt: 0,
            jf: 1,
            k: 435,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::ENOSYS as u32,
        },
        libc::sock_filter {
            code: (libc::BPF_RET | libc::BPF_K) as u16,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ];
    // SAFETY: pre_exec runs in the forked child; prctl with a filter that outlives it.
    unsafe {
        cmd.pre_exec(move || {
            let prog = libc::sock_fprog {
                len: filter.len() as u16,
                filter: filter.as_ptr() as *mut libc::sock_filter,
            };
            if libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &prog) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Where clone3 is refused, init and exec processes still end up in the
/// container's cgroup in every hierarchy (v2 by a migration, v1 by themselves).
#[test]
fn without_clone3_init_and_exec_still_join_every_hierarchy() {
    let env = Env::new();
    let mut b = sleeper(&env);
    b.remove_namespace("cgroup");
    b.save();
    let id = env.id("noclone3");
    let mut create = env.cmd(&["create", "-b", b.dir.to_str().unwrap(), &id]);
    without_clone3(&mut create);
    env.output(create).success();
    env.paddock(&["start", &id]).success();
    let leaf = cg_dir("memory", &id);
    let leaf = leaf.file_name().unwrap().to_string_lossy().into_owned();
    let init = env.state(&id)["pid"].as_i64().unwrap();
    let mut exec = env.cmd(&["exec", &id, "cat", "/proc/self/cgroup"]);
    without_clone3(&mut exec);
    let exec_out = env.output(exec).success().stdout;
    for text in [
        fs::read_to_string(format!("/proc/{init}/cgroup")).unwrap(),
        exec_out,
    ] {
        assert!(text.lines().count() >= 1, "{text}");
        for line in text.lines() {
            assert!(
                line.ends_with(&format!("/paddock/{leaf}")),
                "{line} in {text}"
            );
        }
    }
    remove(&env, &id);
}

/// v1 cpuset: a cgroupsPath several new levels deep gets cpus and mems copied
/// down level by level (a new cpuset cgroup starts empty and takes no tasks).
#[test]
fn nested_cpuset_levels_get_the_parents_cpus_and_mems() {
    let root = Path::new("/sys/fs/cgroup/cpuset");
    if pure_v2() || !root.join("cpuset.cpus").exists() {
        eprintln!("no v1 cpuset hierarchy: skipped");
        return;
    }
    let env = Env::new();
    let mut b = sleeper(&env);
    let id = env.id("cpuset");
    b.config(|c| c["linux"]["cgroupsPath"] = format!("/{id}/a/b").into());
    env.create(&b, &id).success();
    let read = |dir: &Path, file: &str| fs::read_to_string(dir.join(file)).unwrap();
    let mut dir = root.join(&id);
    for level in ["", "a", "b"] {
        dir.push(level);
        for file in ["cpuset.cpus", "cpuset.mems"] {
            assert_eq!(read(&dir, file), read(root, file), "{}", dir.display());
        }
    }
    remove(&env, &id);
    // delete removes the container's own level; the ones above are ours to remove.
    for base in fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        for level in [format!("{id}/a"), id.clone()] {
            let _ = fs::remove_dir(base.path().join(level));
        }
    }
    env.assert_clean();
}
