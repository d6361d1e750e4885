//! `paddock features`: the runtime-spec Features structure. Its shape follows the
//! schema (features-schema.json, features-linux.json of runtime-spec 1.3.0), and what
//! it advertises works: a container runs with every namespace and a sample of the
//! mount options.
mod common;

use std::collections::BTreeSet;

use common::parity::side_by_side;
use common::{bind, Env};
use serde_json::{json, Value};

/// Enums of the spec's defs-linux.json that the features schema refers to.
const NAMESPACE_TYPES: &[&str] = &[
    "mount", "pid", "network", "uts", "ipc", "user", "cgroup", "time",
];
const SECCOMP_ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
];
const SECCOMP_OPERATORS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];
const SECCOMP_ARCHS: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_RISCV64",
];
const SECCOMP_FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
/// MemoryPolicyMode and MemoryPolicyFlag of defs-linux.json.
const MEMORY_POLICY_MODES: &[&str] = &[
    "MPOL_DEFAULT",
    "MPOL_BIND",
    "MPOL_INTERLEAVE",
    "MPOL_WEIGHTED_INTERLEAVE",
    "MPOL_PREFERRED",
    "MPOL_PREFERRED_MANY",
    "MPOL_LOCAL",
];
const MEMORY_POLICY_FLAGS: &[&str] = &[
    "MPOL_F_NUMA_BALANCING",
    "MPOL_F_RELATIVE_NODES",
    "MPOL_F_STATIC_NODES",
];
/// The hooks of config.md.
const HOOKS: &[&str] = &[
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn features(env: &Env) -> Value {
    let out = env.paddock(&["features"]).success();
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("features JSON: {e}: {out:?}"))
}

/// The object at `v`, asserting it has no keys outside `allowed`.
#[track_caller]
fn object<'a>(v: &'a Value, what: &str, allowed: &[&str]) -> &'a serde_json::Map<String, Value> {
    let o = v
        .as_object()
        .unwrap_or_else(|| panic!("{what}: not an object: {v}"));
    for k in o.keys() {
        assert!(allowed.contains(&k.as_str()), "{what}.{k}: not in the spec");
    }
    o
}

/// The strings of the array at `v` (absent: none), each checked by `ok`.
#[track_caller]
fn strings(v: Option<&Value>, what: &str, ok: impl Fn(&str) -> bool) -> Vec<String> {
    let Some(v) = v else {
        return Vec::new();
    };
    let list = v
        .as_array()
        .unwrap_or_else(|| panic!("{what}: not an array: {v}"));
    list.iter()
        .map(|s| {
            let s = s
                .as_str()
                .unwrap_or_else(|| panic!("{what}: {s} is not a string"));
            assert!(ok(s), "{what}: {s:?} is not allowed by the schema");
            s.to_string()
        })
        .collect()
}

/// Each key of `o` named in `keys` is a boolean when present.
#[track_caller]
fn booleans(o: &serde_json::Map<String, Value>, what: &str, keys: &[&str]) {
    for k in keys {
        if let Some(v) = o.get(*k) {
            assert!(v.is_boolean(), "{what}.{k}: not a boolean: {v}");
        }
    }
}

/// `{"enabled": bool}` (plus the other boolean keys the spec gives the object).
#[track_caller]
fn enabled(linux: &serde_json::Map<String, Value>, key: &str, extra: &[&str]) {
    if let Some(v) = linux.get(key) {
        let keys: Vec<&str> = ["enabled"].iter().chain(extra).copied().collect();
        booleans(object(v, key, &keys), key, &keys);
    }
}

fn is_version(v: &str) -> bool {
    let core = v.split(['-', '+']).next().unwrap_or("");
    let parts: Vec<&str> = core.split('.').collect();
    parts.len() == 3 && parts.iter().all(|p| p.parse::<u32>().is_ok())
}

#[test]
fn output_follows_the_features_schema() {
    let env = Env::new();
    let f = features(&env);
    let top = object(
        &f,
        "features",
        &[
            "ociVersionMin",
            "ociVersionMax",
            "hooks",
            "mountOptions",
            "annotations",
            "potentiallyUnsafeConfigAnnotations",
            "linux",
        ],
    );
    for k in ["ociVersionMin", "ociVersionMax"] {
        let v = top.get(k).and_then(Value::as_str);
        assert!(v.is_some_and(is_version), "{k}: required version: {f}");
    }
    strings(top.get("hooks"), "hooks", |h| HOOKS.contains(&h));
    strings(top.get("mountOptions"), "mountOptions", |o| !o.is_empty());
    strings(
        top.get("potentiallyUnsafeConfigAnnotations"),
        "potentiallyUnsafeConfigAnnotations",
        |a| !a.is_empty(),
    );
    if let Some(a) = top.get("annotations") {
        let a = a.as_object().expect("annotations: an object");
        assert!(a.values().all(Value::is_string), "annotations: {a:?}");
    }
    let linux = object(
        &f["linux"],
        "linux",
        &[
            "namespaces",
            "capabilities",
            "cgroup",
            "seccomp",
            "apparmor",
            "selinux",
            "intelRdt",
            "memoryPolicy",
            "mountExtensions",
            "netDevices",
        ],
    );
    strings(linux.get("namespaces"), "linux.namespaces", |n| {
        NAMESPACE_TYPES.contains(&n)
    });
    strings(linux.get("capabilities"), "linux.capabilities", |c| {
        c.strip_prefix("CAP_").is_some_and(|r| {
            !r.is_empty() && r.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')
        })
    });
    let cgroup_keys = ["v1", "v2", "systemd", "systemdUser", "rdma"];
    booleans(
        object(&f["linux"]["cgroup"], "linux.cgroup", &cgroup_keys),
        "linux.cgroup",
        &cgroup_keys,
    );
    let s = &f["linux"]["seccomp"];
    let seccomp = object(
        s,
        "linux.seccomp",
        &[
            "enabled",
            "actions",
            "operators",
            "archs",
            "knownFlags",
            "supportedFlags",
        ],
    );
    booleans(seccomp, "linux.seccomp", &["enabled"]);
    strings(seccomp.get("actions"), "actions", |a| {
        SECCOMP_ACTIONS.contains(&a)
    });
    strings(seccomp.get("operators"), "operators", |o| {
        SECCOMP_OPERATORS.contains(&o)
    });
    strings(seccomp.get("archs"), "archs", |a| {
        SECCOMP_ARCHS.contains(&a)
    });
    let known = strings(seccomp.get("knownFlags"), "knownFlags", |x| {
        SECCOMP_FLAGS.contains(&x)
    });
    let supported = strings(seccomp.get("supportedFlags"), "supportedFlags", |x| {
        SECCOMP_FLAGS.contains(&x)
    });
    assert!(supported.iter().all(|x| known.contains(x)), "{s}");
    enabled(linux, "apparmor", &[]);
    enabled(linux, "selinux", &[]);
    enabled(linux, "intelRdt", &["schemata", "monitoring"]);
    enabled(linux, "netDevices", &[]);
    if let Some(m) = linux.get("memoryPolicy") {
        let m = object(m, "memoryPolicy", &["modes", "flags"]);
        strings(m.get("modes"), "memoryPolicy.modes", |x| {
            MEMORY_POLICY_MODES.contains(&x)
        });
        strings(m.get("flags"), "memoryPolicy.flags", |x| {
            MEMORY_POLICY_FLAGS.contains(&x)
        });
    }
    if let Some(m) = linux.get("mountExtensions") {
        let m = object(m, "mountExtensions", &["idmap"]);
        enabled(m, "idmap", &[]);
    }
}

/// The output against the spec's own features schema (a copy of runtime-spec 1.3.0's
/// schema/ in tests/spec-schema), with a validator for the draft-04 keywords that
/// schema and the definitions it refers to use.
#[test]
fn output_validates_against_the_features_schema() {
    let env = Env::new();
    let f = features(&env);
    let schema = SchemaFiles::load();
    let root = schema.files["features-schema.json"].clone();
    let mut errors = Vec::new();
    schema.check(&f, &root, "features-schema.json", "features", &mut errors);
    assert!(errors.is_empty(), "{errors:#?}");
    // And the validator does refuse what the schema refuses.
    let mut bad = f.clone();
    bad["linux"]["namespaces"] = json!(["mount", "nosuch"]);
    bad["linux"]["capabilities"] = json!(["chown"]);
    bad["linux"]["cgroup"]["v1"] = json!("yes");
    bad.as_object_mut().unwrap().remove("ociVersionMax");
    let mut errors = Vec::new();
    schema.check(&bad, &root, "features-schema.json", "features", &mut errors);
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

struct SchemaFiles {
    files: std::collections::BTreeMap<String, Value>,
}

impl SchemaFiles {
    fn load() -> SchemaFiles {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec-schema");
        let files = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let v = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), v)
            })
            .collect();
        SchemaFiles { files }
    }

    /// Validates `v` against `schema` (found in file `cur`), adding one line per
    /// violation; a keyword it does not know fails the test rather than pass silently.
    fn check(&self, v: &Value, schema: &Value, cur: &str, at: &str, errors: &mut Vec<String>) {
        let Some(s) = schema.as_object() else {
            panic!("{at}: schema is not an object");
        };
        for key in s.keys() {
            let known = [
                "$ref",
                "$schema",
                "description",
                "type",
                "properties",
                "required",
                "items",
                "enum",
                "pattern",
                "patternProperties",
            ];
            assert!(
                known.contains(&key.as_str()),
                "{at}: schema keyword {key} not handled"
            );
        }
        if let Some(r) = s.get("$ref").and_then(Value::as_str) {
            let (file, pointer) = r.split_once('#').unwrap();
            let file = if file.is_empty() { cur } else { file };
            let target = self.files[file]
                .pointer(pointer)
                .unwrap_or_else(|| panic!("{at}: no {r}"));
            self.check(v, target, file, at, errors);
        }
        if let Some(t) = s.get("type").and_then(Value::as_str) {
            let ok = match t {
                "object" => v.is_object(),
                "array" => v.is_array(),
                "string" => v.is_string(),
                "boolean" => v.is_boolean(),
                "integer" => v.is_i64() || v.is_u64(),
                other => panic!("{at}: type {other} not handled"),
            };
            if !ok {
                errors.push(format!("{at}: {v} is not of type {t}"));
                return;
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array) {
            if !e.contains(v) {
                errors.push(format!("{at}: {v} is not one of {e:?}"));
            }
        }
        if let (Some(p), Some(text)) = (s.get("pattern").and_then(Value::as_str), v.as_str()) {
            if !matches_pattern(p, text) {
                errors.push(format!("{at}: {text:?} does not match {p}"));
            }
        }
        let Some(obj) = v.as_object() else {
            if let (Some(items), Some(list)) = (s.get("items"), v.as_array()) {
                for (i, item) in list.iter().enumerate() {
                    self.check(item, items, cur, &format!("{at}[{i}]"), errors);
                }
            }
            return;
        };
        for r in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = r.as_str().unwrap();
            if !obj.contains_key(r) {
                errors.push(format!("{at}: required {r} missing"));
            }
        }
        let props = s.get("properties").and_then(Value::as_object);
        for (key, value) in obj {
            if let Some(sub) = props.and_then(|p| p.get(key)) {
                self.check(value, sub, cur, &format!("{at}.{key}"), errors);
            }
            let patterns = s.get("patternProperties").and_then(Value::as_object);
            for (p, sub) in patterns.into_iter().flatten() {
                if matches_pattern(p, key) {
                    self.check(value, sub, cur, &format!("{at}.{key}"), errors);
                }
            }
        }
    }
}

/// The patterns the features schema uses: ".{1,}" and "^PREFIX[CLASS]+$" with a class
/// of ranges and single characters.
fn matches_pattern(pattern: &str, text: &str) -> bool {
    if pattern == ".{1,}" {
        return !text.is_empty();
    }
    let inner = pattern
        .strip_prefix('^')
        .and_then(|p| p.strip_suffix("]+$"))
        .unwrap_or_else(|| panic!("pattern {pattern} not handled"));
    let (prefix, class) = inner.split_once('[').unwrap();
    let class: Vec<char> = class.chars().collect();
    let in_class = |c: char| {
        let mut i = 0;
        while i < class.len() {
            if i + 2 < class.len() && class[i + 1] == '-' {
                if (class[i]..=class[i + 2]).contains(&c) {
                    return true;
                }
                i += 3;
            } else {
                if class[i] == c {
                    return true;
                }
                i += 1;
            }
        }
        false
    };
    text.strip_prefix(prefix)
        .is_some_and(|rest| !rest.is_empty() && rest.chars().all(in_class))
}

/// The /proc/self/ns name of a namespace type.
fn ns_file(ty: &str) -> &str {
    match ty {
        "mount" => "mnt",
        "network" => "net",
        t => t,
    }
}

#[test]
fn a_container_runs_in_every_advertised_namespace() {
    let env = Env::new();
    let advertised = strings(Some(&features(&env)["linux"]["namespaces"]), "ns", |_| true);
    assert!(advertised.len() >= 7, "{advertised:?}");
    let mut b = env.bundle(&[]);
    let base = b.cfg().clone();
    for ty in &advertised {
        b.config(|c| *c = base.clone());
        b.set_namespace(json!({ "type": ty }));
        if ty == "user" {
            b.config(|c| {
                let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
                c["linux"]["uidMappings"] = map.clone();
                c["linux"]["gidMappings"] = map;
            });
        }
        let file = ns_file(ty);
        let out = env.run_sh(&mut b, &format!("readlink /proc/self/ns/{file}"));
        let host = std::fs::read_link(format!("/proc/self/ns/{file}")).unwrap();
        let inside = out.stdout.trim();
        assert!(inside.starts_with(&format!("{file}:[")), "{ty}: {out:?}");
        assert_ne!(inside, host.to_str().unwrap(), "{ty}: the host's namespace");
    }
}

/// Every advertised memory policy mode and flag is taken (on node 0, the one node every
/// NUMA kernel has) and shows in /proc/<pid>/numa_maps; netDevices is advertised and
/// tested in tests/fields.rs, intelRdt and idmap are not advertised here.
#[test]
fn a_container_runs_with_each_advertised_memory_policy() {
    let env = Env::new();
    let f = features(&env);
    assert_eq!(f["linux"]["netDevices"]["enabled"], json!(true));
    if !std::path::Path::new("/proc/self/numa_maps").exists() {
        eprintln!("skipped: kernel without NUMA");
        return;
    }
    let modes = strings(Some(&f["linux"]["memoryPolicy"]["modes"]), "modes", |_| {
        true
    });
    let flags = strings(Some(&f["linux"]["memoryPolicy"]["flags"]), "flags", |_| {
        true
    });
    assert_eq!(modes.len(), MEMORY_POLICY_MODES.len(), "{modes:?}");
    let mut b = env.bundle(&["true"]);
    let base = b.cfg().clone();
    let script = "head -1 /proc/$$/numa_maps | cut -d' ' -f2";
    for mode in &modes {
        let nodes = if mode == "MPOL_DEFAULT" || mode == "MPOL_LOCAL" {
            ""
        } else {
            "0"
        };
        b.config(|c| {
            *c = base.clone();
            c["linux"]["memoryPolicy"] = json!({"mode": mode, "nodes": nodes});
        });
        let out = env.run_sh(&mut b, script);
        assert!(!out.stdout.trim().is_empty(), "{mode}: {out:?}");
    }
    for flag in &flags {
        // NUMA balancing goes only with MPOL_BIND (and needs the kernel's balancing).
        b.config(|c| {
            *c = base.clone();
            c["linux"]["memoryPolicy"] =
                json!({"mode": "MPOL_BIND", "nodes": "0", "flags": [flag]});
        });
        let id = env.id("mpolflag");
        let out = env.run(&b, &id);
        if flag == "MPOL_F_NUMA_BALANCING" && out.code != 0 {
            assert!(out.stderr.contains("set_mempolicy: "), "{flag}: {out:?}");
            continue;
        }
        assert_eq!(out.code, 0, "{flag}: {out:?}");
    }
}

/// Options tried on a tmpfs, with the word its mountinfo line then shows (if any).
const TMPFS_SAMPLE: &[(&str, Option<&str>)] = &[
    ("defaults", None),
    ("ro", Some(" ro")),
    ("rw", Some(" rw")),
    ("nosuid", Some("nosuid")),
    ("nodev", Some("nodev")),
    ("noexec", Some("noexec")),
    ("noatime", Some("noatime")),
    ("nodiratime", Some("nodiratime")),
    ("relatime", Some("relatime")),
    ("strictatime", None),
    ("sync", None),
    ("dirsync", None),
    ("lazytime", None),
    ("silent", None),
    ("iversion", None),
    ("nosymfollow", Some("nosymfollow")),
    ("rro", Some(" ro")),
    ("rnosuid", Some("nosuid")),
    ("rnodev", Some("nodev")),
    ("rnoexec", Some("noexec")),
    ("rnoatime", Some("noatime")),
    ("rstrictatime", None),
    ("rnosymfollow", Some("nosymfollow")),
];

/// Options tried on a recursive bind mount of a host directory.
const BIND_SAMPLE: &[(&str, Option<&str>)] = &[
    ("bind", None),
    ("rbind", None),
    ("private", None),
    ("rprivate", None),
    ("slave", None),
    ("rslave", None),
    ("shared", Some("shared:")),
    ("rshared", Some("shared:")),
    ("unbindable", Some("unbindable")),
    ("runbindable", Some("unbindable")),
];

#[test]
fn a_container_runs_with_a_sample_of_the_advertised_mount_options() {
    let env = Env::new();
    let advertised = strings(
        Some(&features(&env)["mountOptions"]),
        "mountOptions",
        |_| true,
    );
    let src = env.mkdir("src");
    let mut b = env.bundle(&[]);
    let base = b.cfg().clone();
    let script = "grep ' /mnt/o ' /proc/self/mountinfo";
    for (option, shows) in TMPFS_SAMPLE.iter().chain(BIND_SAMPLE) {
        assert!(
            advertised.iter().any(|a| a == option),
            "{option} not advertised"
        );
        b.config(|c| *c = base.clone());
        if BIND_SAMPLE.contains(&(option, *shows)) {
            b.add_mount(bind(&src, "/mnt/o", &[option]));
        } else {
            b.add_mount(json!({
                "destination": "/mnt/o", "type": "tmpfs", "source": "tmpfs",
                "options": [option]
            }));
        }
        let out = env.run_sh(&mut b, script);
        if let Some(word) = shows {
            assert!(out.stdout.contains(word), "{option}: {word:?} in {out:?}");
        }
    }
    // tmpcopyup: the tmpfs starts with what it covers.
    b.config(|c| *c = base.clone());
    b.add_mount(json!({
        "destination": "/etc", "type": "tmpfs", "source": "tmpfs", "options": ["tmpcopyup"]
    }));
    let out = env.run_sh(&mut b, "grep -c ^root: /etc/passwd");
    assert_eq!(out.stdout.trim(), "1", "{out:?}");
    // Every other advertised option is taken on a tmpfs, except remount: it changes
    // an existing mount, so a fresh one fails (EINVAL), in runc as in paddock; and
    // idmap/ridmap, which only bind mounts with id maps take (tests/userns.rs runs them).
    let sampled: Vec<&str> = TMPFS_SAMPLE
        .iter()
        .chain(BIND_SAMPLE)
        .map(|(o, _)| *o)
        .chain(["tmpcopyup", "remount", "idmap", "ridmap"])
        .collect();
    for option in advertised.iter().filter(|o| !sampled.contains(&o.as_str())) {
        b.config(|c| *c = base.clone());
        b.add_mount(json!({
            "destination": "/mnt/o", "type": "tmpfs", "source": "tmpfs", "options": [option]
        }));
        env.run_sh(&mut b, "true");
    }
    b.config(|c| *c = base.clone());
    b.add_mount(json!({
        "destination": "/mnt/o", "type": "tmpfs", "source": "tmpfs", "options": ["remount"]
    }));
    b.args(&["true"]);
    let outs = side_by_side(|rt| env.rt_run(rt, &b));
    assert_eq!((outs[0].code, outs[1].code), (1, 1), "remount: {outs:?}");
}

/// runc 1.1.5 (Debian's) prints the same structure: paddock has every top-level and
/// linux key it has, the same hooks and capabilities, and a superset of its lists.
#[test]
fn parity_with_runc_features() {
    let env = Env::new();
    let [runc, paddock] = side_by_side(|rt| {
        let out = env.rt(rt, &["features"]).success();
        serde_json::from_str::<Value>(&out.stdout)
            .unwrap_or_else(|e| panic!("{}: {e}: {out:?}", rt.name()))
    });
    assert_eq!(runc["ociVersionMin"], paddock["ociVersionMin"]);
    assert!(paddock["ociVersionMax"].as_str().is_some_and(is_version));
    let keys = |v: &Value| -> BTreeSet<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert!(keys(&runc).is_subset(&keys(&paddock)), "{runc} {paddock}");
    assert!(keys(&runc["linux"]).is_subset(&keys(&paddock["linux"])));
    assert_eq!(runc["hooks"], paddock["hooks"]);
    assert_eq!(
        runc["linux"]["capabilities"],
        paddock["linux"]["capabilities"]
    );
    let set = |v: &Value| -> BTreeSet<String> {
        strings(Some(v), "list", |_| true).into_iter().collect()
    };
    for path in [
        &["linux", "namespaces"][..],
        &["linux", "seccomp", "actions"],
        &["linux", "seccomp", "operators"],
        &["linux", "seccomp", "archs"],
    ] {
        let at = |v: &Value| path.iter().fold(v.clone(), |v, k| v[*k].clone());
        assert!(
            set(&at(&runc)).is_subset(&set(&at(&paddock))),
            "{path:?}: runc {} paddock {}",
            at(&runc),
            at(&paddock)
        );
    }
    // runc 1.5 no longer lists acl/noacl (they cannot be mapped to mount flags).
    let mut runc_options = set(&runc["mountOptions"]);
    runc_options.retain(|o| o != "acl" && o != "noacl");
    assert!(runc_options.is_subset(&set(&paddock["mountOptions"])));
}
