//! The config fields runc 1.5 applies and Debian's runc 1.1.5 silently ignores (so
//! there is no side-by-side case: each asserts runc 1.5's behaviour for paddock alone):
//! linux.personality, process.scheduler, process.ioPriority, process.execCPUAffinity,
//! linux.memoryPolicy, linux.netDevices and linux.intelRdt. Each effect is read from
//! inside the container or from /proc.
mod common;

use std::process::Command;

use common::{Bundle, Env, Out};
use serde_json::{json, Value};

/// Runs `script` with `edit` applied to the config.
fn run_with(env: &Env, edit: impl FnOnce(&mut Value), script: &str) -> Out {
    let mut b = env.bundle(&[]);
    b.config(edit);
    b.args(&["sh", "-c", script]);
    let id = env.id("f");
    env.run(&b, &id)
}

/// Create fails (one line, exit 1, nothing left) with `want` in its message.
#[track_caller]
fn refused(env: &Env, edit: impl FnOnce(&mut Value), want: &str) {
    let mut b = env.bundle(&["true"]);
    b.config(edit);
    let id = env.id("bad");
    let out = env.create(&b, &id).fails_with_one_line();
    assert!(out.stderr.contains(want), "want {want:?}: {out:?}");
    env.assert_clean();
}

#[test]
fn personality_linux32_shows_in_uname_and_proc() {
    let env = Env::new();
    let out = run_with(
        &env,
        |c| c["linux"]["personality"] = json!({"domain": "LINUX32"}),
        "uname -m; cat /proc/self/personality",
    )
    .success();
    assert_eq!(out.stdout, "i686\n00000008\n", "{out:?}");
    let out = run_with(
        &env,
        |c| c["linux"]["personality"] = json!({"domain": "LINUX"}),
        "uname -m",
    )
    .success();
    assert_eq!(out.stdout, "x86_64\n");
    // runc 1.5 warns about flags (the spec defines none) and goes on.
    let out = run_with(
        &env,
        |c| c["linux"]["personality"] = json!({"domain": "LINUX32", "flags": ["X"]}),
        "uname -m",
    )
    .success();
    assert_eq!(out.stdout, "i686\n");
    assert!(
        out.stderr
            .contains("ignoring unsupported personality flags: [X]"),
        "{out:?}"
    );
    refused(
        &env,
        |c| c["linux"]["personality"] = json!({"domain": "LINUX64"}),
        "linux.personality.domain: invalid personality domain LINUX64",
    );
}

/// The shell's policy and nice, from /proc/<pid>/stat (fields 41 and 19; its comm
/// "sh" has no space to shift them).
const SCHED: &str = "cut -d' ' -f41,19 /proc/$$/stat";

#[test]
fn scheduler_policy_and_nice_are_set() {
    let env = Env::new();
    let out = run_with(
        &env,
        |c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}),
        SCHED,
    )
    .success();
    assert_eq!(out.stdout, "7 3\n", "{out:?}");
    let out = run_with(
        &env,
        |c| c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"}),
        SCHED,
    )
    .success();
    assert!(out.stdout.ends_with(" 5\n"), "{out:?}");
    // The spec's flag names (oci-spec spells some differently) reach the kernel.
    let out = run_with(
        &env,
        |c| {
            c["process"]["scheduler"] =
                json!({"policy": "SCHED_OTHER", "nice": -3, "flags": ["SCHED_FLAG_RESET_ON_FORK"]})
        },
        // A child of a reset-on-fork process starts at nice 0 again.
        "cut -d' ' -f19 /proc/$$/stat; cut -d' ' -f19 /proc/self/stat; true",
    )
    .success();
    assert_eq!(out.stdout, "-3\n0\n", "{out:?}");
}

#[test]
fn scheduler_is_checked_with_runcs_words() {
    let env = Env::new();
    let cases = [
        (json!({}), "process.scheduler: scheduler policy is required"),
        (
            json!({"policy": "SCHED_BATCH", "nice": 20}),
            "invalid scheduler.nice: 20 when scheduler.policy is SCHED_BATCH",
        ),
        (
            json!({"policy": "SCHED_OTHER", "priority": 5}),
            "scheduler.priority can only be specified for SchedFIFO or SchedRR policy",
        ),
        (
            json!({"policy": "SCHED_RR", "period": 5}),
            "scheduler runtime/deadline/period can only be specified for SchedDeadline policy",
        ),
        (
            json!({"policy": "SCHED_NOPE"}),
            "invalid scheduler policy: SCHED_NOPE",
        ),
        (
            json!({"policy": "SCHED_RR", "flags": ["SCHED_FLAG_NOPE"]}),
            "invalid scheduler flag: SCHED_FLAG_NOPE",
        ),
    ];
    for (s, want) in cases {
        refused(&env, |c| c["process"]["scheduler"] = s, want);
    }
}

/// SCHED_FIFO where the container's cgroup allows real-time tasks (cgroup v2, or no
/// RT group scheduling); in a v1 cpu cgroup without real-time runtime, the kernel's
/// EPERM in runc's words.
#[test]
fn scheduler_real_time_policy() {
    let env = Env::new();
    let out = run_with(
        &env,
        |c| c["process"]["scheduler"] = json!({"policy": "SCHED_FIFO", "priority": 10}),
        // rt_priority and policy (fields 40 and 41).
        "cut -d' ' -f40,41 /proc/$$/stat",
    );
    let rt_group_limits = std::path::Path::new("/sys/fs/cgroup/cpu/cpu.rt_runtime_us").exists();
    if !rt_group_limits || out.code == 0 {
        assert_eq!(out.stdout, "10 1\n", "{out:?}");
    } else {
        assert!(
            out.stderr
                .contains("error setting scheduler: Operation not permitted"),
            "{out:?}"
        );
    }
    env.assert_clean();
}

#[test]
fn io_priority_is_set() {
    let env = Env::new();
    for (class, prio, shows) in [
        ("IOPRIO_CLASS_IDLE", 0, "idle"),
        ("IOPRIO_CLASS_BE", 6, "best-effort: prio 6"),
        ("IOPRIO_CLASS_RT", 2, "realtime: prio 2"),
    ] {
        let out = run_with(
            &env,
            |c| c["process"]["ioPriority"] = json!({"class": class, "priority": prio}),
            "ionice -p $$",
        )
        .success();
        assert!(out.stdout.starts_with(shows), "{class}: {out:?}");
    }
    refused(
        &env,
        |c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 8}),
        "process.ioPriority: invalid ioPriority.Priority: 8",
    );
    refused(
        &env,
        |c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_X"}),
        "process.ioPriority: invalid ioPriority.Class: \"IOPRIO_CLASS_X\"",
    );
}

/// `paddock ARGS` run under `taskset -c 0`, as a runtime pinned by its caller.
fn pinned(env: &Env, args: &[&str]) -> Out {
    let mut c = Command::new("taskset");
    c.arg("-c").arg("0").arg(common::bin());
    c.arg("--root").arg(&env.root).args(args);
    env.output(c)
}

const CPUS: &str = "grep Cpus_allowed_list /proc/self/status | cut -f2";

#[test]
fn exec_cpu_affinity_initial_and_final() {
    let env = Env::new();
    if std::thread::available_parallelism().map_or(0, |n| n.get()) < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let mut b = env.bundle(&["sleep", "100"]);
    // From config.json: every exec without its own process.json gets it; init does not.
    b.config(|c| c["process"]["execCPUAffinity"] = json!({"initial": " 1, "}));
    let id = env.id("aff");
    pinned(&env, &["run", "-d", "-b", b.dir.to_str().unwrap(), &id]).success();
    let init = env.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{init}/status")).unwrap();
    assert!(
        status.contains("Cpus_allowed_list:\t0-1\n"),
        "init does not keep paddock's pinning: {status}"
    );
    // Only an initial affinity: the process stays on it.
    let out = pinned(&env, &["exec", &id, "sh", "-c", CPUS]).success();
    assert_eq!(out.stdout, "1\n", "{out:?}");
    // A process.json's own affinity wins; final is set once in the cgroup.
    let p = env.dir.join("process.json");
    let write = |aff: Value| {
        let proc = json!({"args": ["sh", "-c", CPUS], "cwd": "/", "env": ["PATH=/bin"],
            "execCPUAffinity": aff});
        std::fs::write(&p, proc.to_string()).unwrap();
    };
    write(json!({"initial": "1", "final": "0"}));
    let out = env
        .paddock(&["exec", "-p", p.to_str().unwrap(), &id])
        .success();
    assert_eq!(out.stdout, "0\n", "{out:?}");
    write(json!({"final": "0-1"}));
    let out = pinned(&env, &["exec", "-p", p.to_str().unwrap(), &id]).success();
    assert_eq!(out.stdout, "0-1\n", "{out:?}");
    write(json!({"final": "1-0"}));
    let out = env.paddock(&["exec", "-p", p.to_str().unwrap(), &id]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr.contains(
            "--process: process.execCPUAffinity.final: bad CPUAffinity.Final: invalid range: 1-0"
        ),
        "{out:?}"
    );
    // CPUs the machine does not have: the kernel's EINVAL, in runc's words.
    write(json!({"final": "4095"}));
    let out = env.paddock(&["exec", "-p", p.to_str().unwrap(), &id]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr
            .contains("error setting final CPU affinity: Invalid argument"),
        "{out:?}"
    );
    env.paddock(&["delete", "--force", &id]).success();
    // Without any affinity configured, an exec does not keep its caller's pinning either.
    let b = env.bundle(&["sleep", "100"]);
    let id = env.id("noaff");
    env.paddock(&["run", "-d", "-b", b.dir.to_str().unwrap(), &id])
        .success();
    let out = pinned(&env, &["exec", &id, "sh", "-c", CPUS]).success();
    assert_eq!(out.stdout, "0-1\n", "{out:?}");
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

/// The policy numa_maps shows for the shell's first mapping.
const NUMA: &str = "head -1 /proc/$$/numa_maps | cut -d' ' -f2";

#[test]
fn memory_policy_is_set() {
    let env = Env::new();
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        eprintln!("skipped: kernel without NUMA");
        return;
    }
    for (mode, nodes, shows) in [
        ("MPOL_INTERLEAVE", "0", "interleave:0"),
        ("MPOL_BIND", "0", "bind:0"),
        ("MPOL_PREFERRED", "0", "prefer:0"),
        ("MPOL_LOCAL", "", "local"),
        ("MPOL_DEFAULT", "", "default"),
    ] {
        let out = run_with(
            &env,
            |c| c["linux"]["memoryPolicy"] = json!({"mode": mode, "nodes": nodes}),
            NUMA,
        )
        .success();
        assert_eq!(out.stdout.trim(), shows, "{mode}: {out:?}");
    }
    let out = run_with(
        &env,
        |c| {
            c["linux"]["memoryPolicy"] =
                json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_STATIC_NODES"]})
        },
        NUMA,
    )
    .success();
    assert_eq!(out.stdout.trim(), "bind=static:0", "{out:?}");
    let cases = [
        (
            json!({"mode": "MPOL_BIND"}),
            "linux.memoryPolicy: memory policy mode requires at least one node but got 0",
        ),
        (
            json!({"mode": "MPOL_LOCAL", "nodes": "0"}),
            "memory policy mode requires 0 nodes but got 1",
        ),
        (
            json!({"mode": "MPOL_X"}),
            "invalid memory policy mode \"MPOL_X\"",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "0", "flags": ["MPOL_F_X"]}),
            "invalid memory policy flag \"MPOL_F_X\"",
        ),
        (
            json!({"mode": "MPOL_BIND", "nodes": "1-0"}),
            "invalid memory policy nodes \"1-0\"",
        ),
        // A node the machine does not have: the kernel's answer.
        (
            json!({"mode": "MPOL_BIND", "nodes": "63"}),
            "set_mempolicy: Invalid argument",
        ),
    ];
    for (m, want) in cases {
        refused(&env, |c| c["linux"]["memoryPolicy"] = m, want);
    }
}

/// The personality and memory policy of config.json reach exec'd processes too (runc's
/// setns init applies the container's), with the process's own scheduler.
#[test]
fn exec_gets_the_containers_personality_and_its_own_scheduler() {
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    b.config(|c| {
        c["linux"]["personality"] = json!({"domain": "LINUX32"});
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE"});
    });
    let id = env.id("execattrs");
    env.paddock(&["run", "-d", "-b", b.dir.to_str().unwrap(), &id])
        .success();
    let out = env
        .paddock(&["exec", &id, "sh", "-c", "uname -m; ionice -p $$"])
        .success();
    assert_eq!(out.stdout, "i686\nidle\n", "{out:?}");
    let p = env.dir.join("process.json");
    let proc = json!({"args": ["sh", "-c", format!("ionice -p $$; {SCHED}")], "cwd": "/",
        "env": ["PATH=/bin"], "scheduler": {"policy": "SCHED_BATCH", "nice": 4}});
    std::fs::write(&p, proc.to_string()).unwrap();
    let out = env
        .paddock(&["exec", "-p", p.to_str().unwrap(), &id])
        .success();
    assert_eq!(out.stdout, "idle\n4 3\n", "{out:?}");
    let proc = json!({"args": ["/bin/true"], "cwd": "/", "scheduler": {"policy": ""}});
    std::fs::write(&p, proc.to_string()).unwrap();
    let out = env.paddock(&["exec", "-p", p.to_str().unwrap(), &id]);
    assert_eq!(out.code, 255, "{out:?}");
    assert!(
        out.stderr
            .contains("--process: process.scheduler: scheduler policy is required"),
        "{out:?}"
    );
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

#[test]
fn intel_rdt_without_resctrl_is_refused_in_runcs_words() {
    let env = Env::new();
    let mounted = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ");
    let want = if mounted {
        "linux.intelRdt: not supported"
    } else {
        // runc 1.5's check (1.1.5 let a closID through without resctrl).
        "linux.intelRdt: intelRdt is specified in config, but Intel RDT is not enabled"
    };
    refused(&env, |c| c["linux"]["intelRdt"] = json!({}), want);
    refused(
        &env,
        |c| c["linux"]["intelRdt"] = json!({"closID": "c1", "schemata": ["L3:0=f"]}),
        want,
    );
}

/// Runs `script` in a private network namespace of the test (`unshare -n`), with
/// $P the paddock command line: the host's own interfaces are never touched.
fn in_private_netns(env: &Env, script: &str) -> Out {
    let p = format!("{} --root {}", common::bin().display(), env.root.display());
    let mut c = Command::new("unshare");
    c.args(["-n", "sh", "-euc", script]).env("P", p);
    env.output(c)
}

fn net_bundle(env: &Env, devices: Value, script: &str) -> Bundle {
    let mut b = env.bundle(&["sh", "-c", script]);
    b.config(|c| c["linux"]["netDevices"] = devices);
    b
}

#[test]
fn net_devices_move_with_rename_and_addresses() {
    let env = Env::new();
    let inside = "ip -o -4 addr show dev eth5 | awk '{print $2, $4}'; \
                  cat /sys/class/net/eth5/operstate /sys/class/net/lo/operstate; echo $(ls /sys/class/net)";
    let b = net_bundle(&env, json!({"v0": {"name": "eth5"}}), inside);
    let id = env.id("netdev");
    let script = format!(
        "ip link add v0 type veth peer name v1 2>/dev/null || {{ echo no veth; exit 0; }}
         ip addr add 10.9.8.7/24 dev v0
         ip link set v0 up
         ip link set v1 up
         $P run -b {} {id}
         echo rc=$?
         # Gone with the container's namespace (a virtual device is not returned).
         ip link show v0 >/dev/null 2>&1 && echo v0 still here
         ip link show eth5 >/dev/null 2>&1 && echo eth5 here
         true",
        b.dir.display()
    );
    let out = in_private_netns(&env, &script);
    assert_eq!(out.code, 0, "{out:?}");
    if out.stdout == "no veth\n" {
        eprintln!("skipped: this kernel cannot make a veth pair");
        return;
    }
    // Renamed, its global address carried over, up again inside; lo is up too
    // ("unknown" is what a loopback reports when up).
    assert_eq!(
        out.stdout, "eth5 10.9.8.7/24\nup\nunknown\neth5 lo\nrc=0\n",
        "{out:?}"
    );
    env.assert_clean();
}

/// Into the network namespace of a container with its own user namespace (owned by
/// that user namespace; the runtime moves it from outside), keeping its name.
#[test]
fn net_devices_into_a_user_namespaced_container() {
    let env = Env::new();
    let mut b = net_bundle(
        &env,
        json!({"v0": {}}),
        "ip -o -4 addr show dev v0 | awk '{print $2, $4}'; id -u",
    );
    b.set_namespace(json!({"type": "user"}));
    b.config(|c| {
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let id = env.id("netuserns");
    let script = format!(
        "ip link add v0 type veth peer name v1 2>/dev/null || {{ echo no veth; exit 0; }}
         ip addr add 10.9.8.9/16 dev v0
         $P run -b {} {id}",
        b.dir.display()
    );
    let out = in_private_netns(&env, &script);
    assert_eq!(out.code, 0, "{out:?}");
    if out.stdout != "no veth\n" {
        assert_eq!(out.stdout, "v0 10.9.8.9/16\n0\n", "{out:?}");
    }
    env.assert_clean();
}

#[test]
fn net_devices_errors() {
    let env = Env::new();
    // A device the runtime's namespace does not have: runc's message, nothing left.
    let b = net_bundle(&env, json!({"nosuch0": {}}), "true");
    let id = env.id("netmiss");
    let out = in_private_netns(&env, &format!("$P run -b {} {id}", b.dir.display()));
    assert_eq!(out.code, 1, "{out:?}");
    assert!(
        out.stderr
            .contains("move netDevice nosuch0 to namespace /proc/")
            && out
                .stderr
                .contains("link not found for interface nosuch0 on runtime namespace"),
        "{out:?}"
    );
    env.assert_clean();
    refused(
        &env,
        |c| {
            c["linux"]["netDevices"] = json!({"eth0": {}});
            let ns = c["linux"]["namespaces"].as_array_mut().unwrap();
            ns.retain(|n| n["type"] != "network");
        },
        "linux.netDevices: unable to move network devices without a NET namespace",
    );
    refused(
        &env,
        |c| c["linux"]["netDevices"] = json!({"eth0": {"name": "a/b"}}),
        "linux.netDevices: invalid network device name \"a/b\"",
    );
}
