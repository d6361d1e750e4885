//! Rootless paddock: a user without privileges runs containers (id maps written
//! directly or through newuidmap/newgidmap, cgroups only where delegated). Each test
//! makes its own user with subordinate ids and removes it afterwards.
mod common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::sleep;
use std::time::Duration;

use common::{bin, bind, Bundle, Env, Out};
use serde_json::{json, Value};

static USERS: AtomicUsize = AtomicUsize::new(0);

/// A user made for one test (useradd gives it subordinate ids), removed on drop.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    sub_uid: u32,
    sub_gid: u32,
}

/// useradd/userdel take /etc/passwd's lock: retry while another test holds it.
fn retrying(args: &[&str]) -> bool {
    for _ in 0..100 {
        let st = Command::new(args[0]).args(&args[1..]).status().unwrap();
        if st.success() {
            return true;
        }
        sleep(Duration::from_millis(50));
    }
    false
}

fn first_range(file: &str, name: &str) -> Option<u32> {
    fs::read_to_string(file).ok()?.lines().find_map(|l| {
        let mut f = l.split(':');
        (f.next() == Some(name)).then(|| f.next()?.parse().ok())?
    })
}

impl User {
    fn new() -> User {
        let n = USERS.fetch_add(1, Ordering::SeqCst);
        let name = format!("pdkrl{}x{n}", std::process::id() % 100000);
        assert!(
            retrying(&["useradd", "-M", "-N", "-s", "/usr/sbin/nologin", &name]),
            "useradd {name}"
        );
        let mut user = User {
            uid: 0,
            gid: 0,
            sub_uid: 0,
            sub_gid: 0,
            name,
        };
        let out = Command::new("id").arg(&user.name).output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let num = |key: &str| -> u32 {
            let at = text.find(key).unwrap() + key.len();
            text[at..].split('(').next().unwrap().parse().unwrap()
        };
        user.uid = num("uid=");
        user.gid = num("gid=");
        if first_range("/etc/subuid", &user.name).is_none() {
            let base = 1_000_000 + user.uid * 70_000;
            let range = format!("{base}-{}", base + 65535);
            assert!(retrying(&[
                "usermod",
                "--add-subuids",
                &range,
                "--add-subgids",
                &range,
                &user.name
            ]));
        }
        user.sub_uid = first_range("/etc/subuid", &user.name).unwrap();
        user.sub_gid = first_range("/etc/subgid", &user.name).unwrap();
        user
    }

    /// paddock as this user, with `root` as --root and no XDG_RUNTIME_DIR.
    fn paddock(&self, env: &Env, root: &Path, args: &[&str]) -> Out {
        let mut c = Command::new("setpriv");
        c.args(["--reuid", &self.uid.to_string()])
            .args(["--regid", &self.gid.to_string(), "--clear-groups", "--"])
            .arg(bin())
            .arg("--root")
            .arg(root)
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(std::process::Stdio::null());
        env.output(c)
    }

    /// `paddock run -b BUNDLE ID` as this user.
    fn run(&self, env: &Env, root: &Path, b: &Bundle, id: &str) -> Out {
        self.paddock(env, root, &["run", "-b", b.dir.to_str().unwrap(), id])
    }
}

impl Drop for User {
    fn drop(&mut self) {
        // userdel also removes its /etc/subuid and /etc/subgid entries.
        retrying(&["userdel", &self.name]);
    }
}

/// A state root the user owns (the test's own --root, for the hygiene checks).
fn user_root(env: &Env, u: &User) -> PathBuf {
    fs::create_dir_all(&env.root).unwrap();
    chown(&env.root, Some(u.uid), Some(u.gid)).unwrap();
    env.root.clone()
}

/// `paddock spec --rootless` (as this user would get it), running `args`, with maps
/// of the user's own ids only.
fn rootless_bundle(env: &Env, u: &User, args: &[&str]) -> Bundle {
    let dir = env.mkdir("rlbundle");
    let out = Command::new(bin())
        .args(["spec", "--rootless", "--bundle"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let cfg: Value = serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    let mut b = Bundle::with_config(dir, cfg, args);
    own_maps(&mut b, u);
    b
}

fn own_maps(b: &mut Bundle, u: &User) {
    b.config(|c| {
        c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": u.uid, "size": 1}]);
        c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": u.gid, "size": 1}]);
    });
}

fn pure_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

const NO_CGROUP: &str = "rootless container without a cgroup";

#[test]
fn a_new_user_runs_spec_rootless_and_run() {
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let dir = env.mkdir("fromspec");
    chown(&dir, Some(u.uid), Some(u.gid)).unwrap();
    let d = dir.to_str().unwrap();
    u.paddock(&env, &root, &["spec", "--rootless", "-b", d])
        .success();
    // The rootfs is the image's (root-owned, read-only for the container).
    let cfg: Value = serde_json::from_slice(&fs::read(dir.join("config.json")).unwrap()).unwrap();
    assert_eq!(cfg["linux"]["uidMappings"][0]["hostID"], u.uid);
    let b = Bundle::with_config(
        dir.clone(),
        cfg,
        &[
            "sh",
            "-c",
            "id -u; cat /proc/self/uid_map; cat /proc/self/setgroups",
        ],
    );
    let id = env.id("rl");
    let out = u.run(&env, &root, &b, &id).success();
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    // A single map of the user's own ids: written directly, setgroups denied first.
    let want = [
        "0".to_string(),
        format!("0 {} 1", u.uid),
        "deny".to_string(),
    ];
    assert_eq!(lines, want, "{out:?}");
    // Without a delegated cgroup: run anyway, and say so.
    assert!(out.stderr.contains(NO_CGROUP), "{out:?}");
}

#[test]
fn rootless_create_exec_kill_delete() {
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let b = rootless_bundle(&env, &u, &["sleep", "100"]);
    let id = env.id("rl");
    let bd = b.dir.to_str().unwrap();
    u.paddock(&env, &root, &["create", "-b", bd, &id]).success();
    u.paddock(&env, &root, &["start", &id]).success();
    let st: Value =
        serde_json::from_str(&u.paddock(&env, &root, &["state", &id]).success().stdout).unwrap();
    assert_eq!(st["status"], "running");
    let pid = st["pid"].as_i64().unwrap();
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        uid_line.split_whitespace().nth(1),
        Some(u.uid.to_string().as_str())
    );
    let user_ns = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let out = u
        .paddock(
            &env,
            &root,
            &[
                "exec",
                &id,
                "sh",
                "-c",
                "id -u; readlink /proc/self/ns/user",
            ],
        )
        .success();
    assert_eq!(out.stdout, format!("0\n{}\n", user_ns.display()), "{out:?}");
    u.paddock(&env, &root, &["kill", &id, "KILL"]).success();
    assert!(common::wait_for(|| {
        let out = u.paddock(&env, &root, &["state", &id]);
        out.stdout.contains("\"stopped\"")
    }));
    u.paddock(&env, &root, &["delete", &id]).success();
    let out = u.paddock(&env, &root, &["list", "-q"]).success();
    assert_eq!(out.stdout, "");
}

#[test]
fn several_ranges_go_through_newuidmap_and_map_ownership() {
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let mut b = rootless_bundle(&env, &u, &[]);
    b.config(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": u.sub_uid, "size": 65536}
        ]);
        c["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": u.gid, "size": 1},
            {"containerID": 1, "hostID": u.sub_gid, "size": 65536}
        ]);
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_CHOWN"));
        }
    });
    let data = env.mkdir("rldata");
    chown(&data, Some(u.uid), Some(u.gid)).unwrap();
    fs::create_dir_all(b.rootfs.join("data")).unwrap();
    b.add_mount(bind(&data, "/data", &["rw"]));
    b.args(&[
        "sh",
        "-c",
        "cat /proc/self/setgroups; touch /data/mine /data/theirs && chown 5:7 /data/theirs",
    ]);
    let id = env.id("rl");
    let out = u.run(&env, &root, &b, &id).success();
    // Maps through newgidmap: setgroups stays allowed (as runc 1.5).
    assert_eq!(out.stdout, "allow\n", "{out:?}");
    let m = fs::metadata(data.join("mine")).unwrap();
    assert_eq!((m.uid(), m.gid()), (u.uid, u.gid));
    let m = fs::metadata(data.join("theirs")).unwrap();
    assert_eq!((m.uid(), m.gid()), (u.sub_uid + 4, u.sub_gid + 6));
}

#[test]
fn maps_beyond_the_users_subordinate_ids_fail_with_nothing_left() {
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let mut b = rootless_bundle(&env, &u, &["true"]);
    b.config(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": u.sub_uid + 1000, "size": 65536}
        ]);
    });
    let id = env.id("rl");
    let out = u.run(&env, &root, &b, &id);
    assert_eq!(out.code, 1, "{out:?}");
    // The no-cgroup warning first (on a host without delegation), then the error.
    let last = out.stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("linux.uidMappings: "), "{out:?}");
    assert!(last.contains("newuidmap"), "{out:?}");
    assert_eq!(fs::read_dir(&root).unwrap().count(), 0);
    env.assert_clean();
}

#[test]
fn limits_without_a_cgroup_fail_clearly() {
    if pure_v2() && fs::metadata("/sys/fs/cgroup").unwrap().uid() != 0 {
        return;
    }
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let mut b = rootless_bundle(&env, &u, &["true"]);
    b.config(|c| c["linux"]["resources"] = json!({"pids": {"limit": 10}}));
    let id = env.id("rl");
    let out = u.run(&env, &root, &b, &id).fails_with_one_line();
    assert!(
        out.stderr.contains(
            "rootless needs no limits + no cgrouppath when no permission is granted for cgroups"
        ),
        "{out:?}"
    );
    env.assert_clean();
}

#[test]
fn idmapped_mounts_are_refused_for_rootless() {
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let mut b = rootless_bundle(&env, &u, &["true"]);
    b.add_mount(bind(&env.dir, "/data", &["idmap"]));
    let id = env.id("rl");
    let out = u.run(&env, &root, &b, &id).fails_with_one_line();
    assert!(
        out.stderr
            .contains("id-mapped mounts are not supported for rootless containers"),
        "{out:?}"
    );
}

/// A subtree of the v2 hierarchy handed to the user as systemd's Delegate=yes does:
/// the directory and its cgroup.procs, cgroup.subtree_control and cgroup.threads
/// chowned, and the user's shell moved into a leaf of it. Removed on drop.
struct Delegated(PathBuf);

impl Delegated {
    fn new(u: &User) -> Delegated {
        let top = PathBuf::from(format!("/sys/fs/cgroup/pdk-deleg-{}", u.name));
        fs::create_dir(&top).unwrap();
        let avail = fs::read_to_string("/sys/fs/cgroup/cgroup.controllers").unwrap();
        for c in avail.split_whitespace() {
            let _ = fs::write("/sys/fs/cgroup/cgroup.subtree_control", format!("+{c}"));
        }
        for p in [
            top.clone(),
            top.join("cgroup.procs"),
            top.join("cgroup.subtree_control"),
            top.join("cgroup.threads"),
        ] {
            chown(&p, Some(u.uid), Some(u.gid)).unwrap();
        }
        let session = top.join("session");
        fs::create_dir(&session).unwrap();
        for p in [session.clone(), session.join("cgroup.procs")] {
            chown(&p, Some(u.uid), Some(u.gid)).unwrap();
        }
        Delegated(top)
    }
}

impl Drop for Delegated {
    fn drop(&mut self) {
        let _ = fs::remove_dir(self.0.join("session"));
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn delegated_cgroup_v2_is_used_with_limits_and_pause() {
    if !pure_v2() {
        eprintln!("delegated_cgroup_v2_is_used_with_limits_and_pause: skipped, this host is not pure cgroup v2 (run it with make test-v2)");
        return;
    }
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let deleg = Delegated::new(&u);
    let name = deleg.0.file_name().unwrap().to_str().unwrap().to_string();
    let mut b = rootless_bundle(&env, &u, &["sleep", "100"]);
    b.config(|c| {
        c["linux"]["cgroupsPath"] = json!(format!("/{name}/box"));
        c["linux"]["resources"] = json!({"pids": {"limit": 20}});
    });
    let id = env.id("rl");
    // As a login session would be: the user's processes start inside the subtree.
    let as_user = |args: &[&str]| -> Out {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(format!(
                "echo $$ > {}/session/cgroup.procs && exec setpriv --reuid {} --regid {} --clear-groups -- \"$@\"",
                deleg.0.display(),
                u.uid,
                u.gid
            ))
            .arg("sh")
            .arg(bin())
            .arg("--root")
            .arg(&root)
            .args(args)
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(std::process::Stdio::null());
        env.output(c)
    };
    let out = as_user(&["create", "-b", b.dir.to_str().unwrap(), &id]).success();
    assert!(!out.stderr.contains(NO_CGROUP), "{out:?}");
    let cg = deleg.0.join("box");
    assert_eq!(
        fs::read_to_string(cg.join("pids.max")).unwrap().trim(),
        "20"
    );
    as_user(&["start", &id]).success();
    as_user(&["pause", &id]).success();
    assert!(as_user(&["state", &id]).stdout.contains("\"paused\""));
    as_user(&["resume", &id]).success();
    // Inside its cgroup namespace the exec'd process sees the root; the host sees
    // it in the delegated cgroup.
    let out = as_user(&["exec", &id, "cat", "/proc/self/cgroup"]).success();
    assert_eq!(out.stdout, "0::/\n", "{out:?}");
    let st: Value = serde_json::from_str(&as_user(&["state", &id]).success().stdout).unwrap();
    let pid = st["pid"].as_i64().unwrap();
    let host_view = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    assert_eq!(host_view, format!("0::/{name}/box\n"));
    as_user(&["kill", &id, "KILL"]).success();
    assert!(common::wait_for(|| as_user(&["state", &id])
        .stdout
        .contains("\"stopped\"")));
    as_user(&["delete", &id]).success();
    assert!(!cg.exists());
}

#[test]
fn a_config_without_a_user_namespace_is_refused() {
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let b = env.bundle(&["true"]);
    let id = env.id("rl");
    let out = u.run(&env, &root, &b, &id).fails_with_one_line();
    assert!(
        out.stderr
            .contains("rootless container requires user namespaces"),
        "{out:?}"
    );
    env.assert_clean();
}

/// The same rootless bundle (two ranges: newuidmap/newgidmap) through runc and paddock
/// as the same user: same exit code and output.
#[test]
fn rootless_run_matches_runc() {
    use common::parity::{Rt, BOTH};
    let env = Env::new();
    let u = User::new();
    let mut b = rootless_bundle(&env, &u, &[]);
    b.config(|c| {
        c["linux"]["uidMappings"] = json!([
            {"containerID": 0, "hostID": u.uid, "size": 1},
            {"containerID": 1, "hostID": u.sub_uid, "size": 65536}
        ]);
        c["linux"]["gidMappings"] = json!([
            {"containerID": 0, "hostID": u.gid, "size": 1},
            {"containerID": 1, "hostID": u.sub_gid, "size": 65536}
        ]);
    });
    b.args(&[
        "sh",
        "-c",
        "id; cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; stat -c %u /",
    ]);
    let outs = BOTH.map(|rt: Rt| {
        let root = env.rt_root(rt);
        fs::create_dir_all(&root).unwrap();
        chown(&root, Some(u.uid), Some(u.gid)).unwrap();
        let id = env.id(rt.name());
        let mut c = Command::new("setpriv");
        c.args(["--reuid", &u.uid.to_string(), "--regid", &u.gid.to_string()])
            .args(["--clear-groups", "--"])
            .arg(rt.bin())
            .arg("--root")
            .arg(&root)
            .args(["run", "-b", b.dir.to_str().unwrap(), &id])
            .env_remove("XDG_RUNTIME_DIR")
            .stdin(std::process::Stdio::null());
        env.output(c)
    });
    common::parity::assert_same("rootless run", &outs);
    assert_eq!(outs[1].code, 0, "{outs:?}");
}

#[test]
fn mount_ids_outside_the_maps_are_refused() {
    let env = Env::new();
    let u = User::new();
    let root = user_root(&env, &u);
    let mut b = rootless_bundle(&env, &u, &["true"]);
    // runc's default devpts option: gid 5 is not mapped by a single-id map.
    b.add_mount(json!({
        "destination": "/mnt", "type": "tmpfs", "source": "tmpfs", "options": ["gid=5"]
    }));
    let id = env.id("rl");
    let out = u.run(&env, &root, &b, &id).fails_with_one_line();
    assert!(
        out.stderr
            .contains("cannot specify gid=5 mount option for rootless container"),
        "{out:?}"
    );
    env.assert_clean();
}
