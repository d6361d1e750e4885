//! User namespaces side by side with runc: the same bundle through both, the same
//! exit code and output. (idmapped mounts and NOTIFY_SOCKET in a user namespace are
//! runc 1.5 behaviours that runc 1.1.5 lacks: tests/userns.rs and tests/notify.rs.)
mod common;

use std::fs;

use common::parity::{assert_same, side_by_side, Rt};
use common::{Bundle, Env};
use serde_json::json;

const BASE: u32 = 100000;

fn userns_bundle(env: &Env, args: &[&str]) -> Bundle {
    let mut b = env.runc_spec_bundle(args);
    b.set_namespace(json!({"type": "user"}));
    b.config(|c| {
        let map = json!([
            {"containerID": 0, "hostID": BASE, "size": 1000},
            {"containerID": 1000, "hostID": BASE + 50000, "size": 1000}
        ]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let st = std::process::Command::new("chown")
        .args(["-R", &format!("{BASE}:{BASE}")])
        .arg(&b.rootfs)
        .status()
        .unwrap();
    assert!(st.success());
    b
}

#[test]
fn ids_maps_and_owners_inside() {
    let env = Env::new();
    let b = userns_bundle(
        &env,
        &[
            "sh",
            "-c",
            "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; stat -c %u:%g / /proc/1",
        ],
    );
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("user namespace with two ranges", &outs);
}

/// Deliberate difference: runc (1.1.5 and 1.5) fails to mount a new sysfs where the
/// user namespace does not own the network namespace; paddock binds the host's /sys
/// there, as crun does, and /dev and mqueue work as usual.
#[test]
fn sysfs_dev_and_mqueue_without_a_network_namespace() {
    let env = Env::new();
    let mut b = userns_bundle(
        &env,
        &[
            "sh",
            "-c",
            "ls /sys/kernel >/dev/null && echo sys; echo > /dev/null && echo null; \
             grep -c ' /dev/mqueue ' /proc/self/mountinfo",
        ],
    );
    b.remove_namespace("network");
    let [runc, paddock] = side_by_side(|rt| env.rt_run(rt, &b));
    assert_eq!(runc.code, 1, "{runc:?}");
    assert!(runc.stderr.contains("sysfs"), "{runc:?}");
    assert_eq!(
        (paddock.code, paddock.stdout.as_str()),
        (0, "sys\nnull\n1\n"),
        "{paddock:?}"
    );
}

#[test]
fn exec_runs_in_the_user_namespace() {
    let env = Env::new();
    let b = userns_bundle(&env, &["sleep", "100"]);
    let outs = side_by_side(|rt| {
        let id = env.id(rt.name());
        env.rt(rt, &["run", "-d", "-b", b.dir.to_str().unwrap(), &id]);
        let out = env.rt(
            rt,
            &[
                "exec",
                &id,
                "sh",
                "-c",
                "id -u; cat /proc/self/uid_map; stat -c %u /proc/1",
            ],
        );
        env.rt(rt, &["delete", "--force", &id]);
        out
    });
    assert_same("exec into a user namespace", &outs);
}

#[test]
fn joining_a_user_namespace_by_path_with_new_ones() {
    let env = Env::new();
    let sandbox = userns_bundle(&env, &["sleep", "100"]);
    let sid = env.id("sandbox");
    env.rt(
        Rt::Paddock,
        &["run", "-d", "-b", sandbox.dir.to_str().unwrap(), &sid],
    );
    let pid = env.state(&sid)["pid"].as_i64().unwrap();
    let mut b = userns_bundle(
        &env,
        &[
            "sh",
            "-c",
            "cat /proc/self/uid_map; echo $$; id -u; hostname",
        ],
    );
    // With the namespace's own maps: runc 1.1.5 requires them, runc 1.5 accepts them.
    b.set_namespace(json!({"type": "user", "path": format!("/proc/{pid}/ns/user")}));
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same("join a user namespace, create the others", &outs);
    env.paddock(&["delete", "--force", &sid]).success();
    assert!(fs::read_dir(&env.root).unwrap().count() == 0);
}

#[test]
fn bad_maps_fail_in_both() {
    let env = Env::new();
    for map in [
        json!([{"containerID": 0, "hostID": BASE, "size": 0}]),
        json!([
            {"containerID": 0, "hostID": BASE, "size": 100},
            {"containerID": 50, "hostID": BASE + 500, "size": 100}
        ]),
    ] {
        let mut b = userns_bundle(&env, &["true"]);
        b.config(|c| c["linux"]["uidMappings"] = map.clone());
        let outs = side_by_side(|rt| env.rt_run(rt, &b));
        assert_eq!(outs[0].code, outs[1].code, "{map}: {outs:?}");
        assert_ne!(outs[1].code, 0, "{map}: {outs:?}");
    }
}
