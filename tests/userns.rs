//! User namespaces created by root: mapped ownership, id-mapped bind mounts,
//! joining a user namespace by path while creating others, exec into one, bad maps.
mod common;

use std::fs;
use std::os::unix::fs::{chown, MetadataExt};

use common::{bind, Bundle, Env};
use serde_json::{json, Value};

const BASE: u32 = 100000;

/// A bundle in a new user namespace: 0..65536 inside is BASE.. on the host. The
/// rootfs is chowned so that the container's root owns it, as image tools do.
fn userns_bundle(env: &Env) -> Bundle {
    let mut b = env.bundle(&[]);
    b.set_namespace(json!({"type": "user"}));
    b.config(|c| {
        let map = json!([{"containerID": 0, "hostID": BASE, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    chown_tree(&b.rootfs, BASE);
    b
}

fn chown_tree(p: &std::path::Path, id: u32) {
    let st = fs::symlink_metadata(p).unwrap();
    std::os::unix::fs::lchown(p, Some(id), Some(id)).unwrap();
    if st.is_dir() {
        for e in fs::read_dir(p).unwrap() {
            chown_tree(&e.unwrap().path(), id);
        }
    }
}

fn owner(p: &std::path::Path) -> (u32, u32) {
    let m = fs::metadata(p).unwrap();
    (m.uid(), m.gid())
}

#[test]
fn files_made_inside_have_mapped_owners_on_the_host() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    let data = env.mkdir("data");
    chown(&data, Some(BASE), Some(BASE)).unwrap();
    b.add_mount(bind(&data, "/data", &[]));
    b.config(|c| {
        for set in ["bounding", "effective", "permitted"] {
            c["process"]["capabilities"][set]
                .as_array_mut()
                .unwrap()
                .push(json!("CAP_CHOWN"));
        }
    });
    env.run_sh(
        &mut b,
        "touch /data/root /data/other && chown 1000:2000 /data/other",
    );
    assert_eq!(owner(&data.join("root")), (BASE, BASE));
    assert_eq!(owner(&data.join("other")), (BASE + 1000, BASE + 2000));
}

#[test]
fn several_map_ranges_are_written() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    b.config(|c| {
        let map = json!([
            {"containerID": 0, "hostID": BASE, "size": 1000},
            {"containerID": 1000, "hostID": BASE + 50000, "size": 1000}
        ]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let out = env.run_sh(&mut b, "cat /proc/self/uid_map /proc/self/gid_map");
    let rows: Vec<Vec<&str>> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let (a, z) = (BASE.to_string(), (BASE + 50000).to_string());
    let want = [
        vec!["0", a.as_str(), "1000"],
        vec!["1000", z.as_str(), "1000"],
    ];
    assert_eq!(rows[..2], want[..], "{out:?}");
    assert_eq!(rows[2..], want[..], "{out:?}");
}

#[test]
fn sys_dev_and_mqueue_work_without_a_network_namespace() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    // The user namespace does not own the host's network namespace: no new sysfs
    // there, so /sys is the host's, bound (as crun does).
    b.remove_namespace("network");
    let out = env.run_sh(
        &mut b,
        "test -d /sys/kernel && echo sys; echo x > /dev/null && echo null; \
         grep -c mqueue /proc/self/mountinfo",
    );
    assert_eq!(out.stdout, "sys\nnull\n1\n", "{out:?}");
}

#[test]
fn exec_enters_the_user_namespace_first() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    b.args(&["sleep", "100"]);
    let id = env.id("ux");
    env.create(&b, &id).success();
    let pid = env.state(&id)["pid"].as_i64().unwrap();
    let theirs = fs::read_link(format!("/proc/{pid}/ns/user")).unwrap();
    let out = env
        .paddock(&[
            "exec",
            &id,
            "sh",
            "-c",
            "id -u; readlink /proc/self/ns/user; echo $$",
        ])
        .success();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], "0", "{out:?}");
    assert_eq!(lines[1], theirs.to_str().unwrap(), "{out:?}");
    // Inside the container's pid namespace: a small pid, not the host's.
    assert!(lines[2].parse::<u32>().unwrap() < 100, "{out:?}");
    env.paddock(&["delete", "--force", &id]).success();
}

/// A created (not started) pod sandbox in its own user namespace: its id and init pid.
fn create_sandbox(env: &Env) -> (String, i64) {
    let mut sandbox = userns_bundle(env);
    sandbox.args(&["sleep", "100"]);
    let sid = env.id("sandbox");
    env.create(&sandbox, &sid).success();
    let pid = env.state(&sid)["pid"].as_i64().unwrap();
    (sid, pid)
}

#[test]
fn joining_a_user_namespace_by_path_with_new_namespaces() {
    let env = Env::new();
    let (sid, pid) = create_sandbox(&env);
    let user = format!("/proc/{pid}/ns/user");
    let net = format!("/proc/{pid}/ns/net");

    // As Kubernetes does: join the sandbox's user and network namespaces, make new
    // mount, pid, ipc and uts namespaces inside that user namespace.
    let mut b = env.bundle(&[]);
    chown_tree(&b.rootfs, BASE);
    b.set_namespace(json!({"type": "user", "path": user}));
    b.set_namespace(json!({"type": "network", "path": net}));
    let script = "readlink /proc/self/ns/user; readlink /proc/self/ns/net; cat /proc/self/uid_map; echo $$; id -u; hostname";
    let out = env.run_sh(&mut b, script);
    let lines: Vec<String> = out.stdout.lines().map(|l| l.trim().to_string()).collect();
    assert_eq!(lines[0], fs::read_link(&user).unwrap().to_str().unwrap());
    assert_eq!(lines[1], fs::read_link(&net).unwrap().to_str().unwrap());
    let map: Vec<&str> = lines[2].split_whitespace().collect();
    assert_eq!(map, ["0", &BASE.to_string(), "65536"], "{out:?}");
    assert_eq!(lines[3], "1", "a new pid namespace: {out:?}");
    assert_eq!(lines[4], "0", "{out:?}");
    assert_eq!(lines[5], "paddock", "{out:?}");
    env.paddock(&["delete", "--force", &sid]).success();
}

fn idmapped(src: &std::path::Path, dest: &str, opts: &[&str], maps: Option<Value>) -> Value {
    let mut m = bind(src, dest, opts);
    if let Some(maps) = maps {
        m["uidMappings"] = maps.clone();
        m["gidMappings"] = maps;
    }
    m
}

#[test]
fn idmapped_bind_mount_maps_the_host_owner_and_leaves_the_source_alone() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    let src = env.mkdir("idsrc");
    fs::write(src.join("host-root-file"), "x").unwrap();
    fs::create_dir_all(b.rootfs.join("data")).unwrap();
    b.add_mount(idmapped(&src, "/data", &["idmap"], None));
    let out = env.run_sh(
        &mut b,
        "stat -c %u:%g /data/host-root-file; touch /data/made-inside; stat -c %u /data/made-inside",
    );
    // Host root's file is the container's root's, and what the container's root
    // writes is host root's on disk: the mapping of the container's own namespace.
    assert_eq!(out.stdout, "0:0\n0\n", "{out:?}");
    assert_eq!(owner(&src.join("made-inside")), (0, 0));
    assert_eq!(owner(&src), (0, 0));
    // Through the plain (not id-mapped) path the same files are nobody's inside.
    let mut plain = userns_bundle(&env);
    fs::create_dir_all(plain.rootfs.join("data")).unwrap();
    plain.add_mount(bind(&src, "/data", &[]));
    let out = env.run_sh(&mut plain, "stat -c %u /data/host-root-file");
    assert_eq!(out.stdout, "65534\n", "{out:?}");
}

#[test]
fn idmapped_bind_mount_with_its_own_mappings() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    let src = env.mkdir("idsrc");
    fs::write(src.join("f"), "x").unwrap();
    fs::create_dir_all(b.rootfs.join("data")).unwrap();
    // On-disk 0 shows as host BASE+1000, which is 1000 in the container.
    let maps = json!([{"containerID": 0, "hostID": BASE + 1000, "size": 1}]);
    b.add_mount(idmapped(&src, "/data", &[], Some(maps)));
    let out = env.run_sh(&mut b, "stat -c %u:%g /data/f");
    assert_eq!(out.stdout, "1000:1000\n", "{out:?}");
    assert_eq!(owner(&src.join("f")), (0, 0));
}

#[test]
fn ridmap_applies_to_submounts() {
    let env = Env::new();
    let mut b = userns_bundle(&env);
    let src = env.mkdir("idsrc");
    fs::create_dir_all(b.rootfs.join("data")).unwrap();
    b.add_mount(idmapped(&src, "/data", &["rbind", "ridmap"], None));
    let out = env.run_sh(&mut b, "touch /data/f && stat -c %u /data/f");
    assert_eq!(out.stdout, "0\n", "{out:?}");
    assert_eq!(owner(&src.join("f")), (0, 0));
}

#[test]
fn idmap_errors_name_the_mount_and_leave_nothing() {
    let env = Env::new();
    let cases: Vec<(Value, bool, &str)> = vec![
        // sysfs cannot be id-mapped.
        (
            idmapped(
                std::path::Path::new("/sys/kernel/mm"),
                "/data",
                &["idmap"],
                None,
            ),
            true,
            "cannot be id-mapped",
        ),
        (
            json!({"destination": "/data", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}),
            true,
            "id-mapped mounts are only supported for bind-mounts",
        ),
        // No user namespace to take the mappings from.
        (
            idmapped(&env.dir, "/data", &["idmap"], None),
            false,
            "id-mapped mounts must have both uid and gid mappings specified",
        ),
    ];
    for (mount, userns, want) in cases {
        let mut b = if userns {
            userns_bundle(&env)
        } else {
            env.bundle(&["true"])
        };
        let n = b.cfg()["mounts"].as_array().unwrap().len();
        fs::create_dir_all(b.rootfs.join("data")).unwrap();
        b.add_mount(mount);
        b.args(&["true"]);
        let id = env.id("idbad");
        let out = env.run(&b, &id).fails_with_one_line();
        assert!(out.stderr.contains(&format!("mounts[{n}]")), "{out:?}");
        assert!(out.stderr.contains(want), "{out:?}");
        env.assert_clean();
    }
}

#[test]
fn bad_maps_are_rejected_with_nothing_left() {
    let env = Env::new();
    let cases = [
        (
            json!([{"containerID": 0, "hostID": BASE, "size": 0}]),
            "linux.uidMappings[0].size: must be greater than 0",
        ),
        (
            json!([
                {"containerID": 0, "hostID": BASE, "size": 100},
                {"containerID": 100, "hostID": BASE + 50, "size": 100}
            ]),
            "linux.uidMappings[0] and linux.uidMappings[1]: ranges overlap",
        ),
    ];
    for (map, want) in cases {
        let mut b = userns_bundle(&env);
        b.config(|c| c["linux"]["uidMappings"] = map);
        b.args(&["true"]);
        let id = env.id("badmap");
        let out = env.run(&b, &id).fails_with_one_line();
        assert!(out.stderr.contains(want), "{out:?}");
        env.assert_clean();
    }
}

#[test]
fn maps_with_a_joined_user_namespace_must_be_its_own() {
    let env = Env::new();
    let (sid, pid) = create_sandbox(&env);
    let user = format!("/proc/{pid}/ns/user");
    let mut b = env.bundle(&["true"]);
    chown_tree(&b.rootfs, BASE);
    b.set_namespace(json!({"type": "user", "path": user}));
    // As containerd and CRI-O pass them: the namespace's own maps, accepted with a warning.
    b.config(|c| {
        let map = json!([{"containerID": 0, "hostID": BASE, "size": 65536}]);
        c["linux"]["uidMappings"] = map.clone();
        c["linux"]["gidMappings"] = map;
    });
    let out = env.run(&b, &env.id("join")).success();
    assert!(out.stderr.contains("give only one of the two"), "{out:?}");
    b.config(|c| c["linux"]["uidMappings"][0]["hostID"] = json!(BASE + 1));
    let out = env.run(&b, &env.id("join")).fails_with_one_line();
    assert!(out.stderr.contains("non-matching mapping"), "{out:?}");
    env.paddock(&["delete", "--force", &sid]).success();
}

#[test]
fn joining_user_and_pid_namespaces_of_a_sandbox() {
    let env = Env::new();
    let (sid, pid) = create_sandbox(&env);
    env.paddock(&["start", &sid]).success();
    // As a pod sharing its process namespace: user and pid joined, mount created.
    let mut b = env.bundle(&[]);
    chown_tree(&b.rootfs, BASE);
    for ty in ["user", "pid"] {
        b.set_namespace(json!({"type": ty, "path": format!("/proc/{pid}/ns/{ty}")}));
    }
    let out = env.run_sh(&mut b, "echo $$; ps -o pid,args | grep -c '[s]leep 100'");
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_ne!(lines[0], "1", "{out:?}");
    assert_eq!(lines[1], "1", "the sandbox's process is visible: {out:?}");
    env.paddock(&["delete", "--force", &sid]).success();
}
