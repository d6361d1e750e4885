//! Every namespace type the config can ask for, new or joined by path.
mod common;

use std::fs;
use std::process::{Child, Command, Stdio};

use common::Env;
use serde_json::json;

fn host_ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .display()
        .to_string()
}

/// A host helper process in its own net and uts namespaces, killed on drop.
struct Helper(Child);

impl Drop for Helper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pid_namespace_makes_the_process_pid_1() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(&mut b, "echo $$; ps");
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some("1"), "{out:?}");
    let pid1 = lines
        .find(|l| l.split_whitespace().next() == Some("1"))
        .unwrap_or_else(|| panic!("no pid 1 in ps: {out:?}"));
    assert!(pid1.contains("sh"), "{out:?}");
}

#[test]
fn new_namespaces_differ_from_the_host() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "cgroup"}));
    let kinds = ["pid", "net", "ipc", "uts", "mnt", "cgroup"];
    let script: String = kinds
        .iter()
        .map(|k| format!("readlink /proc/self/ns/{k}; "))
        .collect();
    let out = env.run_sh(&mut b, &script);
    let inside: Vec<_> = out.stdout.lines().collect();
    assert_eq!(inside.len(), kinds.len(), "{out:?}");
    for (k, ns) in kinds.iter().zip(inside) {
        assert!(ns.starts_with(&format!("{k}:[")), "{out:?}");
        assert_ne!(ns, host_ns(k), "{k} namespace is the host's");
    }
}

#[test]
fn uts_namespace_sets_hostname_and_domainname() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(|c| {
        c["hostname"] = "box-host".into();
        c["domainname"] = "box.example".into();
    });
    let before = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    let out = env.run_sh(&mut b, "hostname; cat /proc/sys/kernel/domainname");
    assert_eq!(out.stdout, "box-host\nbox.example\n");
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/hostname").unwrap(),
        before
    );
}

#[test]
fn ipc_namespace_has_no_host_shm_segments() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(&mut b, "cat /proc/sysvipc/shm | wc -l");
    assert_eq!(out.stdout.trim(), "1", "only the header line: {out:?}");
}

#[test]
fn net_namespace_has_only_loopback() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(&mut b, "tail -n +3 /proc/net/dev | cut -d: -f1");
    let devs: Vec<_> = out.stdout.lines().map(str::trim).collect();
    assert_eq!(devs, ["lo"], "{out:?}");
}

#[test]
fn mount_namespace_keeps_container_mounts_off_the_host() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    let out = env.run_sh(&mut b, "grep -c ' /proc ' /proc/self/mountinfo");
    assert_eq!(out.stdout.trim(), "1");
    // The Env guard checks that no mount mentioning the bundle reached the host.
}

#[test]
fn cgroup_namespace_shows_root_paths() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "cgroup"}));
    let out = env.run_args(&mut b, &["cat", "/proc/self/cgroup"]);
    assert!(!out.stdout.is_empty());
    for line in out.stdout.lines() {
        assert!(line.ends_with(":/"), "{line} in {out:?}");
    }
}

fn userns_bundle(env: &Env) -> common::Bundle {
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "user"}));
    b.config(|c| {
        let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    b
}

#[test]
fn user_namespace_maps_root_to_host_100000() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    let script =
        "id -u; id -g; cat /proc/self/uid_map /proc/self/gid_map; readlink /proc/self/ns/user";
    let out = env.run_sh(&mut b, script);
    let lines: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines.len(), 5, "{out:?}");
    assert_eq!(lines[0], ["0"]);
    assert_eq!(lines[1], ["0"]);
    assert_eq!(lines[2], ["0", "100000", "65536"]);
    assert_eq!(lines[3], ["0", "100000", "65536"]);
    assert_ne!(lines[4][0], host_ns("user"));
}

#[test]
fn user_namespace_process_runs_as_host_uid_100000() {
    let env = Env::new();
    let b = userns_bundle(&env);
    let mut b = b;
    b.args(&["sleep", "100"]);
    let id = env.id("userns");
    env.create(&b, &id).success();
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(uid.split_whitespace().nth(1), Some("100000"), "{uid}");
    env.paddock(&["delete", "--force", &id]).success();
}

#[test]
fn time_namespace_offsets_boottime_and_monotonic() {
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "time"}));
    b.config(|c| {
        c["linux"]["timeOffsets"] = json!({
            "monotonic": {"secs": 86400, "nanosecs": 0},
            "boottime": {"secs": 86400, "nanosecs": 0}
        })
    });
    let host_uptime: f64 = fs::read_to_string("/proc/uptime")
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let out = env.run_args(&mut b, &["cat", "/proc/uptime"]);
    let inside: f64 = out
        .stdout
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        inside >= host_uptime + 86400.0,
        "inside {inside}, host {host_uptime}"
    );
}

#[test]
fn joining_a_net_namespace_by_path() {
    let env = Env::new();
    let helper = Helper(
        Command::new("unshare")
            .args(["--net", "--uts", "sleep", "100"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = helper.0.id();
    let ns_path = format!("/proc/{pid}/ns/net");
    let host = host_ns("net");
    assert!(common::wait_for(
        || fs::read_link(&ns_path).is_ok_and(|l| l.display().to_string() != host)
    ));
    let want = fs::read_link(&ns_path).unwrap().display().to_string();
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "network", "path": ns_path}));
    let out = env.run_args(&mut b, &["readlink", "/proc/self/ns/net"]);
    assert_eq!(out.stdout.trim(), want);
    drop(helper);
}

#[test]
fn joining_a_uts_namespace_by_path_shares_its_hostname() {
    let env = Env::new();
    let helper = Helper(
        Command::new("unshare")
            .args(["--uts", "sh", "-c", "hostname joined-uts; exec sleep 100"])
            .stdin(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let pid = helper.0.id();
    let ns_path = format!("/proc/{pid}/ns/uts");
    let host = host_ns("uts");
    assert!(common::wait_for(
        || fs::read_link(&ns_path).is_ok_and(|l| l.display().to_string() != host)
    ));
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "uts", "path": ns_path}));
    b.config(|c| {
        c.as_object_mut().unwrap().remove("hostname");
    });
    assert!(common::wait_for(|| {
        let out = env.run_args(&mut b, &["hostname"]);
        out.stdout.trim() == "joined-uts"
    }));
    drop(helper);
}
