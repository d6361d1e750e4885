//! The parity suite, config-field part: the fields Debian's runc 1.1.5 already
//! applies (process.user.umask, linux.rootfsPropagation, the loopback of a new
//! network namespace), the same bundle through both runtimes. The fields only runc
//! 1.5 applies are in tests/fields.rs, for paddock alone.
mod common;

use common::parity::{assert_same, side_by_side, Rt};
use common::Env;
use serde_json::{json, Value};

/// Runs `script` through both runtimes with `edit` applied to a runc-spec config.
fn both(env: &Env, edit: impl Fn(&mut Value), script: &str, extra: &[&str]) -> [common::Out; 2] {
    let mut b = env.runc_spec_bundle(&["sh", "-c", script]);
    b.config(edit);
    side_by_side(|rt| {
        let id = env.id(rt.name());
        let mut args = vec!["run"];
        args.extend_from_slice(extra);
        let dir = b.dir.to_str().unwrap();
        args.extend_from_slice(&["-b", dir, &id]);
        env.rt(rt, &args)
    })
}

#[test]
fn umask_from_the_config() {
    let env = Env::new();
    let outs = both(
        &env,
        |c| c["process"]["user"]["umask"] = json!(0o027),
        "umask; touch /dev/shm/f; stat -c %a /dev/shm/f",
        &[],
    );
    assert_same("umask", &outs);
    assert_eq!(outs[1].stdout, "0027\n640\n", "{:?}", outs[1]);
    env.assert_clean();
}

/// An exec's process.json without a umask gets config.json's: runc 1.5's setns init
/// applies the container's umask (1.1.5 applied none, so paddock alone here). One with
/// its own umask gets that in paddock, while runc 1.5 ignores it: a deliberate
/// difference, the field is the process's.
#[test]
fn umask_of_an_exec_process_json() {
    let env = Env::new();
    let mut b = env.runc_spec_bundle(&["sleep", "100"]);
    b.config(|c| c["process"]["user"]["umask"] = json!(0o027));
    let p = env.dir.join("process.json");
    let id = env.id("execumask");
    let dir = b.dir.to_str().unwrap();
    env.paddock(&["run", "-d", "-b", dir, &id]).success();
    for (umask, shows) in [(None, "0027\n"), (Some(0o077), "0077\n")] {
        let mut proc = json!({"args": ["/bin/sh", "-c", "umask"], "cwd": "/",
            "user": {"uid": 0, "gid": 0}});
        if let Some(u) = umask {
            proc["user"]["umask"] = json!(u);
        }
        std::fs::write(&p, proc.to_string()).unwrap();
        let out = env
            .paddock(&["exec", "-p", p.to_str().unwrap(), &id])
            .success();
        assert_eq!(out.stdout, shows, "{umask:?}: {out:?}");
    }
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

/// The propagation of the container's / as its mountinfo shows it.
const ROOT_PROPAGATION: &str = "grep -E '^[0-9]+ [0-9]+ [^ ]+ [^ ]+ / ' /proc/self/mountinfo \
     | grep -oE 'shared:|master:|unbindable' | sort -u | tr '\\n' ' '; echo";

#[test]
fn rootfs_propagation_private_and_slave() {
    let env = Env::new();
    for value in ["slave", "rslave", "private", "rprivate"] {
        let outs = both(
            &env,
            |c| c["linux"]["rootfsPropagation"] = json!(value),
            ROOT_PROPAGATION,
            &[],
        );
        assert_same(value, &outs);
        assert_eq!(outs[1].stdout, "\n", "{value}: {:?}", outs[1]);
    }
    env.assert_clean();
}

/// runc 1.5 makes the container's / shared (recursively for rshared) after pivot_root;
/// 1.1.5 did not, so paddock alone. For unbindable runc (both) fails to bind a rootfs
/// that sits on the unbindable host /; paddock applies it after pivot_root instead
/// (a deliberate difference: the value then does what the spec says).
#[test]
fn rootfs_propagation_shared_and_unbindable() {
    let env = Env::new();
    let mut b = env.runc_spec_bundle(&["sh", "-c", ROOT_PROPAGATION]);
    for (value, shows) in [
        ("shared", "shared: \n"),
        ("rshared", "shared: \n"),
        ("unbindable", "unbindable \n"),
        ("runbindable", "unbindable \n"),
    ] {
        b.config(|c| c["linux"]["rootfsPropagation"] = json!(value));
        let out = env.rt_run(Rt::Paddock, &b).success();
        assert_eq!(out.stdout, shows, "{value}: {out:?}");
    }
    env.assert_clean();
}

#[test]
fn rootfs_propagation_refusals() {
    let env = Env::new();
    let outs = both(
        &env,
        |c| c["linux"]["rootfsPropagation"] = json!("bogus"),
        "true",
        &[],
    );
    assert_same("unknown propagation", &outs);
    assert_eq!(outs[1].code, 1);
    assert!(
        outs[1]
            .stderr
            .contains("rootfsPropagation=bogus is not supported"),
        "{:?}",
        outs[1]
    );
    let outs = both(
        &env,
        |c| c["linux"]["rootfsPropagation"] = json!("rprivate"),
        "true",
        &["--no-pivot"],
    );
    assert_same("rprivate without pivot_root", &outs);
    assert!(
        outs[1]
            .stderr
            .contains("rootfsPropagation of [r]private is not safe without pivot_root"),
        "{:?}",
        outs[1]
    );
    env.assert_clean();
}

/// A container with a network namespace of its own has its loopback up.
#[test]
fn loopback_is_up_in_a_new_network_namespace() {
    let env = Env::new();
    let outs = both(
        &env,
        |_| {},
        "cat /sys/class/net/lo/operstate; ip -o addr show dev lo | awk '{print $4}'",
        &[],
    );
    assert_same("lo", &outs);
    assert_eq!(
        outs[1].stdout, "unknown\n127.0.0.1/8\n::1/128\n",
        "{:?}",
        outs[1]
    );
    env.assert_clean();
}

/// linux.intelRdt on a host without resctrl: both refuse it with exit 1 (1.1.5 only
/// for a cache or bandwidth schema, in its words; paddock for any intelRdt, in runc
/// 1.5's).
#[test]
fn intel_rdt_schema_without_resctrl() {
    let env = Env::new();
    if std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ")
    {
        eprintln!("skipped: this host has resctrl");
        return;
    }
    let outs = both(
        &env,
        |c| c["linux"]["intelRdt"] = json!({"l3CacheSchema": "L3:0=f"}),
        "true",
        &[],
    );
    common::parity::assert_same_code("intelRdt", &outs);
    assert_eq!(outs[1].code, 1);
    assert!(
        outs[1]
            .stderr
            .contains("intelRdt is specified in config, but Intel RDT is not enabled"),
        "{:?}",
        outs[1]
    );
    env.assert_clean();
}
