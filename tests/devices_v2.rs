//! The cgroup v2 device controller (an eBPF program): device nodes a container
//! makes or is given are usable only as linux.resources.devices and the
//! default rules allow, side by side with runc where that helps. Needs pure
//! cgroup v2: it runs in the guest (make test-v2) and skips on a v1 host.

mod common;

use std::os::fd::{AsFd, AsRawFd};
use std::os::unix::net::UnixListener;
use std::path::Path;

use common::parity::{assert_same, assert_same_code, side_by_side};
use common::{bind, Env};
use serde_json::{json, Value};

fn pure_v2() -> bool {
    let yes = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    if !yes {
        eprintln!("skipped: needs pure cgroup v2 (runs in the guest: make test-v2)");
    }
    yes
}

/// Prints one line per probe: NAME denied (EPERM, the device cgroup's answer)
/// or NAME ok (opened, or refused for another reason such as no driver).
/// A probe is NAME TYPE MAJOR MINOR r|w; the node is made under /dev.
const PROBE: &str = r#"
probe() {
    n=/dev/probe-$1
    [ -e "$n" ] || mknod "$n" $2 $3 $4 || { echo "$1 mknod-failed"; return; }
    if [ "$5" = r ]; then err=$(head -c1 "$n" 2>&1 >/dev/null); else err=$( (echo x >"$n") 2>&1); fi
    case "$err" in *"not permitted"*) echo "$1 denied" ;; *) echo "$1 ok" ;; esac
}
"#;

fn script(probes: &[&str]) -> String {
    let calls: Vec<String> = probes.iter().map(|p| format!("probe {p}")).collect();
    format!("{PROBE}\n{}", calls.join("\n"))
}

fn with_mknod(c: &mut Value) {
    for set in ["bounding", "effective", "permitted"] {
        let caps = c["process"]["capabilities"][set].as_array_mut().unwrap();
        caps.push("CAP_MKNOD".into());
    }
}

/// The same bundle (runc's own spec, CAP_MKNOD, `rules` appended to its deny
/// all) through runc and paddock: the probes' lines must be the same.
fn same_as_runc(env: &Env, case: &str, rules: &[Value], probes: &[&str]) -> String {
    let mut b = env.runc_spec_bundle(&["sh", "-c", &script(probes)]);
    b.config(with_mknod);
    for r in rules {
        b.push(|c| &mut c["linux"]["resources"]["devices"], r.clone());
    }
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_eq!(outs[1].code, 0, "{case}: {:?}", outs[1]);
    assert_same(case, &outs);
    outs[1].stdout.clone()
}

fn dev(allow: bool, typ: &str, major: Option<i64>, minor: Option<i64>, access: &str) -> Value {
    let mut r = json!({"allow": allow, "type": typ, "access": access});
    if let Some(m) = major {
        r["major"] = m.into();
    }
    if let Some(m) = minor {
        r["minor"] = m.into();
    }
    r
}

#[test]
fn a_node_the_rules_deny_cannot_be_opened_but_the_usual_devices_work() {
    if !pure_v2() {
        return;
    }
    let env = Env::new();
    let out = same_as_runc(
        &env,
        "default rules",
        &[],
        &[
            "mem c 1 1 r",
            "kmsg c 1 11 w",
            "loop b 7 0 r",
            "disk b 8 0 r",
            "vda b 254 0 r",
            "null c 1 3 w",
            "zero c 1 5 r",
            "full c 1 7 r",
            "random c 1 8 r",
            "urandom c 1 9 r",
            "ptmx c 5 2 w",
        ],
    );
    assert_eq!(
        out,
        "mem denied\nkmsg denied\nloop denied\ndisk denied\nvda denied\nnull ok\nzero ok\nfull ok\nrandom ok\nurandom ok\nptmx ok\n"
    );
    env.assert_clean();
}

#[test]
fn the_image_nodes_work_and_a_bind_mounted_denied_device_does_not() {
    if !pure_v2() {
        return;
    }
    let env = Env::new();
    let mut b = env.bundle(&[]);
    b.config(with_mknod);
    b.add_mount(bind(Path::new("/dev/kmsg"), "/dev/hostkmsg", &[]));
    b.add_mount(bind(Path::new("/dev/null"), "/dev/hostnull", &[]));
    let s = "echo x > /dev/null && head -c4 /dev/zero | wc -c && head -c4 /dev/urandom | wc -c \
             && head -c4 /dev/full | wc -c && head -c4 /dev/random | wc -c \
             && (echo x > /dev/full) 2>&1 | grep -c 'No space' && echo x > /dev/hostnull \
             && exec 3<>/dev/ptmx && echo ptmx-ok; \
             echo x > /dev/hostkmsg || echo hostkmsg-denied";
    let out = env.run_sh(&mut b, s);
    assert_eq!(out.stdout, "4\n4\n4\n4\n1\nptmx-ok\nhostkmsg-denied\n");
    assert!(out.stderr.contains("not permitted"), "{out:?}");
    env.assert_clean();
}

#[test]
fn the_terminal_and_dev_tty_work() {
    if !pure_v2() {
        return;
    }
    let env = Env::new();
    let mut b = env.bundle(&[
        "sh",
        "-c",
        "echo x > /dev/tty && tty > /dev/tty && exec 3<>/dev/ptmx && echo all-ok",
    ]);
    b.config(|c| c["process"]["terminal"] = true.into());
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let id = env.id("tty");
    let bdir = b.dir.to_str().unwrap();
    env.paddock(&[
        "create",
        "--console-socket",
        sock.to_str().unwrap(),
        "-b",
        bdir,
        &id,
    ])
    .success();
    let (conn, _) = listener.accept().unwrap();
    let master = common::recv_one_fd(conn.as_raw_fd());
    env.paddock(&["start", &id]).success();
    let text = common::read_pty_until(master.as_fd(), "all-ok");
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("all-ok"), "{text:?}");
    assert!(env.wait_status(&id, "stopped"));
    env.paddock(&["delete", &id]).success();
    env.assert_clean();
}

#[test]
fn an_allow_rule_a_wildcard_and_rule_order() {
    if !pure_v2() {
        return;
    }
    let env = Env::new();
    let kmsg = |allow| dev(allow, "c", Some(1), Some(11), "rwm");
    let probes = [
        "kmsg c 1 11 w",
        "mem c 1 1 r",
        "loop b 7 0 r",
        "disk b 8 0 r",
    ];
    let cases: [(&str, Vec<Value>, &str); 5] = [
        (
            "explicit allow",
            vec![kmsg(true)],
            "kmsg ok\nmem denied\nloop denied\ndisk denied\n",
        ),
        (
            "allow then deny",
            vec![kmsg(true), kmsg(false)],
            "kmsg denied\nmem denied\nloop denied\ndisk denied\n",
        ),
        (
            "deny then allow",
            vec![kmsg(false), kmsg(true)],
            "kmsg ok\nmem denied\nloop denied\ndisk denied\n",
        ),
        (
            "wildcard minor, block",
            vec![dev(true, "b", Some(7), None, "r")],
            "kmsg denied\nmem denied\nloop ok\ndisk denied\n",
        ),
        (
            "m without r or w",
            vec![dev(true, "c", Some(1), Some(11), "m")],
            "kmsg denied\nmem denied\nloop denied\ndisk denied\n",
        ),
    ];
    for (case, rules, want) in cases {
        assert_eq!(same_as_runc(&env, case, &rules, &probes), want, "{case}");
    }
    // Access letters: read allowed, write not.
    let out = same_as_runc(
        &env,
        "read only",
        &[dev(true, "b", None, Some(0), "r")],
        &["loop-r b 7 0 r", "loop-w b 7 0 w", "disk-r b 8 0 r"],
    );
    assert_eq!(out, "loop-r ok\nloop-w denied\ndisk-r ok\n");
    env.assert_clean();
}

/// An exec'd process sits in the same cgroup: the same program holds it.
#[test]
fn exec_is_held_by_the_same_rules() {
    if !pure_v2() {
        return;
    }
    let env = Env::new();
    let mut b = env.bundle(&["sleep", "100"]);
    b.config(with_mknod);
    let id = env.id("exec");
    env.create(&b, &id).success();
    env.paddock(&["start", &id]).success();
    let s = format!("{PROBE}\nprobe kmsg c 1 11 w\nprobe null c 1 3 w");
    let out = env.paddock(&["exec", &id, "sh", "-c", &s]).success();
    assert_eq!(out.stdout, "kmsg denied\nnull ok\n");
    env.paddock(&["delete", "--force", &id]).success();
    env.assert_clean();
}

/// Rules that cannot be expressed (a hole in an earlier wildcard) fail create
/// with a clear error, as in runc, and leave nothing behind.
#[test]
fn a_hole_in_a_wildcard_fails_create() {
    if !pure_v2() {
        return;
    }
    let env = Env::new();
    let mut b = env.runc_spec_bundle(&["true"]);
    b.push(
        |c| &mut c["linux"]["resources"]["devices"],
        dev(true, "c", Some(1), None, "rwm"),
    );
    b.push(
        |c| &mut c["linux"]["resources"]["devices"],
        dev(false, "c", Some(1), Some(11), "rwm"),
    );
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_same_code("hole in a wildcard", &outs);
    assert!(outs[0].stderr.contains("punch hole"), "{:?}", outs[0]);
    // runc's spec has ambient capabilities, which warn first; the error is last.
    let paddock = &outs[1];
    assert_eq!(paddock.code, 1, "{paddock:?}");
    let last = paddock.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("linux.resources.devices: "), "{paddock:?}");
    env.assert_clean();
}

/// A cgroup taken over from a stopped container keeps no device program of
/// the old one: the new program replaces it (with both attached, the old
/// one's denial would still hold).
#[test]
fn a_reused_cgroup_gets_only_the_new_program() {
    if !pure_v2() {
        return;
    }
    let env = Env::new();
    let shared = format!("/{}", env.id("shared"));
    let mut a = env.bundle(&["true"]);
    a.config(|c| c["linux"]["cgroupsPath"] = shared.clone().into());
    let ida = env.id("old");
    env.create(&a, &ida).success();
    env.paddock(&["start", &ida]).success();
    assert!(env.wait_status(&ida, "stopped"));

    let mut b = env.bundle(&[]);
    b.config(with_mknod);
    b.config(|c| c["linux"]["cgroupsPath"] = shared.clone().into());
    b.push(
        |c| &mut c["linux"]["resources"]["devices"],
        dev(true, "c", Some(1), Some(11), "w"),
    );
    let out = env.run_sh(&mut b, &script(&["kmsg c 1 11 w"]));
    assert_eq!(out.stdout, "kmsg ok\n");
    env.paddock(&["delete", &ida]).success();
    env.assert_clean();
}
