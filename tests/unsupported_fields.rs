//! No config field is silently ignored: every field of runtime-spec 1.3.0's config.md
//! and config-linux.md is either applied by paddock or refused at create with
//! "<json path>: not supported" (exit 1, one line, nothing left behind).
mod common;

use common::{Bundle, Env};
use serde_json::{json, Value};

use Fate::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    /// paddock applies it (tests of its own feature show the effect).
    Applied,
    /// Refused by create, naming the nearest field of `REFUSED` on its path.
    Refused,
    /// Given by the spec to other platforms (Windows, Solaris, VMs, z/OS, FreeBSD):
    /// meaningless on Linux, and runc does not read them either.
    OtherPlatform,
}

/// The fields paddock refuses (its table in src/spec/unsupported.rs, and linux.intelRdt
/// in src/linux/intel_rdt.rs; runc applies them all).
const REFUSED: &[&str] = &["linux.intelRdt", "linux.mountLabel"];

/// Why create refuses `field`: "not supported", or for linux.intelRdt on a host
/// without resctrl, runc 1.5's own reason.
fn reason(field: &str) -> &'static str {
    let resctrl = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .contains(" - resctrl ");
    if field == "linux.intelRdt" && !resctrl {
        "intelRdt is specified in config, but Intel RDT is not enabled"
    } else {
        "not supported"
    }
}

/// Every field of the spec's config schema (config-schema.json and what it refers to),
/// as a JSON path: `[]` is an element of an array, `{}` a value of a map.
const SPEC_FIELDS: &[(&str, Fate)] = &[
    ("ociVersion", Applied),
    ("hooks", Applied),
    ("hooks.prestart", Applied),
    ("hooks.prestart[].path", Applied),
    ("hooks.prestart[].args", Applied),
    ("hooks.prestart[].env", Applied),
    ("hooks.prestart[].timeout", Applied),
    ("hooks.createRuntime", Applied),
    ("hooks.createRuntime[].path", Applied),
    ("hooks.createRuntime[].args", Applied),
    ("hooks.createRuntime[].env", Applied),
    ("hooks.createRuntime[].timeout", Applied),
    ("hooks.createContainer", Applied),
    ("hooks.createContainer[].path", Applied),
    ("hooks.createContainer[].args", Applied),
    ("hooks.createContainer[].env", Applied),
    ("hooks.createContainer[].timeout", Applied),
    ("hooks.startContainer", Applied),
    ("hooks.startContainer[].path", Applied),
    ("hooks.startContainer[].args", Applied),
    ("hooks.startContainer[].env", Applied),
    ("hooks.startContainer[].timeout", Applied),
    ("hooks.poststart", Applied),
    ("hooks.poststart[].path", Applied),
    ("hooks.poststart[].args", Applied),
    ("hooks.poststart[].env", Applied),
    ("hooks.poststart[].timeout", Applied),
    ("hooks.poststop", Applied),
    ("hooks.poststop[].path", Applied),
    ("hooks.poststop[].args", Applied),
    ("hooks.poststop[].env", Applied),
    ("hooks.poststop[].timeout", Applied),
    ("annotations", Applied),
    ("hostname", Applied),
    ("domainname", Applied),
    ("mounts", Applied),
    ("mounts[].source", Applied),
    ("mounts[].destination", Applied),
    ("mounts[].options", Applied),
    ("mounts[].type", Applied),
    ("mounts[].uidMappings", Applied),
    ("mounts[].uidMappings[].containerID", Applied),
    ("mounts[].uidMappings[].hostID", Applied),
    ("mounts[].uidMappings[].size", Applied),
    ("mounts[].gidMappings", Applied),
    ("mounts[].gidMappings[].containerID", Applied),
    ("mounts[].gidMappings[].hostID", Applied),
    ("mounts[].gidMappings[].size", Applied),
    ("root", Applied),
    ("root.path", Applied),
    ("root.readonly", Applied),
    ("process", Applied),
    ("process.args", Applied),
    ("process.commandLine", OtherPlatform),
    ("process.consoleSize", Applied),
    ("process.consoleSize.height", Applied),
    ("process.consoleSize.width", Applied),
    ("process.cwd", Applied),
    ("process.env", Applied),
    ("process.terminal", Applied),
    ("process.user", Applied),
    ("process.user.uid", Applied),
    ("process.user.gid", Applied),
    ("process.user.umask", Applied),
    ("process.user.additionalGids", Applied),
    ("process.user.username", OtherPlatform),
    ("process.capabilities", Applied),
    ("process.capabilities.bounding", Applied),
    ("process.capabilities.permitted", Applied),
    ("process.capabilities.effective", Applied),
    ("process.capabilities.inheritable", Applied),
    ("process.capabilities.ambient", Applied),
    ("process.apparmorProfile", Applied),
    ("process.oomScoreAdj", Applied),
    ("process.selinuxLabel", Applied),
    ("process.ioPriority", Applied),
    ("process.ioPriority.class", Applied),
    ("process.ioPriority.priority", Applied),
    ("process.noNewPrivileges", Applied),
    ("process.scheduler", Applied),
    ("process.scheduler.policy", Applied),
    ("process.scheduler.nice", Applied),
    ("process.scheduler.priority", Applied),
    ("process.scheduler.flags", Applied),
    ("process.scheduler.runtime", Applied),
    ("process.scheduler.deadline", Applied),
    ("process.scheduler.period", Applied),
    ("process.rlimits", Applied),
    ("process.rlimits[].hard", Applied),
    ("process.rlimits[].soft", Applied),
    ("process.rlimits[].type", Applied),
    ("process.execCPUAffinity", Applied),
    ("process.execCPUAffinity.initial", Applied),
    ("process.execCPUAffinity.final", Applied),
    ("linux", Applied),
    ("linux.devices", Applied),
    ("linux.devices[].type", Applied),
    ("linux.devices[].path", Applied),
    ("linux.devices[].fileMode", Applied),
    ("linux.devices[].major", Applied),
    ("linux.devices[].minor", Applied),
    ("linux.devices[].uid", Applied),
    ("linux.devices[].gid", Applied),
    ("linux.netDevices", Applied),
    ("linux.netDevices{}.name", Applied),
    ("linux.uidMappings", Applied),
    ("linux.uidMappings[].containerID", Applied),
    ("linux.uidMappings[].hostID", Applied),
    ("linux.uidMappings[].size", Applied),
    ("linux.gidMappings", Applied),
    ("linux.gidMappings[].containerID", Applied),
    ("linux.gidMappings[].hostID", Applied),
    ("linux.gidMappings[].size", Applied),
    ("linux.namespaces", Applied),
    ("linux.namespaces[].type", Applied),
    ("linux.namespaces[].path", Applied),
    ("linux.resources", Applied),
    ("linux.resources.unified", Applied),
    ("linux.resources.devices", Applied),
    ("linux.resources.devices[].allow", Applied),
    ("linux.resources.devices[].type", Applied),
    ("linux.resources.devices[].major", Applied),
    ("linux.resources.devices[].minor", Applied),
    ("linux.resources.devices[].access", Applied),
    ("linux.resources.pids", Applied),
    ("linux.resources.pids.limit", Applied),
    ("linux.resources.blockIO", Applied),
    ("linux.resources.blockIO.weight", Applied),
    ("linux.resources.blockIO.leafWeight", Applied),
    ("linux.resources.blockIO.throttleReadBpsDevice", Applied),
    (
        "linux.resources.blockIO.throttleReadBpsDevice[].major",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleReadBpsDevice[].minor",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleReadBpsDevice[].rate",
        Applied,
    ),
    ("linux.resources.blockIO.throttleWriteBpsDevice", Applied),
    (
        "linux.resources.blockIO.throttleWriteBpsDevice[].major",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleWriteBpsDevice[].minor",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleWriteBpsDevice[].rate",
        Applied,
    ),
    ("linux.resources.blockIO.throttleReadIOPSDevice", Applied),
    (
        "linux.resources.blockIO.throttleReadIOPSDevice[].major",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleReadIOPSDevice[].minor",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleReadIOPSDevice[].rate",
        Applied,
    ),
    ("linux.resources.blockIO.throttleWriteIOPSDevice", Applied),
    (
        "linux.resources.blockIO.throttleWriteIOPSDevice[].major",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleWriteIOPSDevice[].minor",
        Applied,
    ),
    (
        "linux.resources.blockIO.throttleWriteIOPSDevice[].rate",
        Applied,
    ),
    ("linux.resources.blockIO.weightDevice", Applied),
    ("linux.resources.blockIO.weightDevice[].major", Applied),
    ("linux.resources.blockIO.weightDevice[].minor", Applied),
    ("linux.resources.blockIO.weightDevice[].weight", Applied),
    ("linux.resources.blockIO.weightDevice[].leafWeight", Applied),
    ("linux.resources.cpu", Applied),
    ("linux.resources.cpu.cpus", Applied),
    ("linux.resources.cpu.mems", Applied),
    ("linux.resources.cpu.period", Applied),
    ("linux.resources.cpu.quota", Applied),
    ("linux.resources.cpu.burst", Applied),
    ("linux.resources.cpu.realtimePeriod", Applied),
    ("linux.resources.cpu.realtimeRuntime", Applied),
    ("linux.resources.cpu.shares", Applied),
    ("linux.resources.cpu.idle", Applied),
    ("linux.resources.hugepageLimits", Applied),
    ("linux.resources.hugepageLimits[].pageSize", Applied),
    ("linux.resources.hugepageLimits[].limit", Applied),
    ("linux.resources.memory", Applied),
    ("linux.resources.memory.kernel", Applied),
    ("linux.resources.memory.kernelTCP", Applied),
    ("linux.resources.memory.limit", Applied),
    ("linux.resources.memory.reservation", Applied),
    ("linux.resources.memory.swap", Applied),
    ("linux.resources.memory.swappiness", Applied),
    ("linux.resources.memory.disableOOMKiller", Applied),
    ("linux.resources.memory.useHierarchy", Applied),
    ("linux.resources.memory.checkBeforeUpdate", Applied),
    ("linux.resources.network", Applied),
    ("linux.resources.network.classID", Applied),
    ("linux.resources.network.priorities", Applied),
    ("linux.resources.network.priorities[].name", Applied),
    ("linux.resources.network.priorities[].priority", Applied),
    ("linux.resources.rdma", Applied),
    ("linux.resources.rdma{}.hcaHandles", Applied),
    ("linux.resources.rdma{}.hcaObjects", Applied),
    ("linux.cgroupsPath", Applied),
    ("linux.rootfsPropagation", Applied),
    ("linux.seccomp", Applied),
    ("linux.seccomp.defaultAction", Applied),
    ("linux.seccomp.defaultErrnoRet", Applied),
    ("linux.seccomp.flags", Applied),
    ("linux.seccomp.listenerPath", Applied),
    ("linux.seccomp.listenerMetadata", Applied),
    ("linux.seccomp.architectures", Applied),
    ("linux.seccomp.syscalls", Applied),
    ("linux.seccomp.syscalls[].names", Applied),
    ("linux.seccomp.syscalls[].action", Applied),
    ("linux.seccomp.syscalls[].errnoRet", Applied),
    ("linux.seccomp.syscalls[].args", Applied),
    ("linux.seccomp.syscalls[].args[].index", Applied),
    ("linux.seccomp.syscalls[].args[].value", Applied),
    ("linux.seccomp.syscalls[].args[].valueTwo", Applied),
    ("linux.seccomp.syscalls[].args[].op", Applied),
    ("linux.sysctl", Applied),
    ("linux.maskedPaths", Applied),
    ("linux.readonlyPaths", Applied),
    ("linux.mountLabel", Refused),
    ("linux.intelRdt", Refused),
    ("linux.intelRdt.closID", Refused),
    ("linux.intelRdt.schemata", Refused),
    ("linux.intelRdt.l3CacheSchema", Refused),
    ("linux.intelRdt.memBwSchema", Refused),
    ("linux.intelRdt.enableMonitoring", Refused),
    ("linux.memoryPolicy", Applied),
    ("linux.memoryPolicy.mode", Applied),
    ("linux.memoryPolicy.nodes", Applied),
    ("linux.memoryPolicy.flags", Applied),
    ("linux.personality", Applied),
    ("linux.personality.domain", Applied),
    ("linux.personality.flags", Applied),
    ("linux.timeOffsets", Applied),
    ("linux.timeOffsets.boottime", Applied),
    ("linux.timeOffsets.boottime.secs", Applied),
    ("linux.timeOffsets.boottime.nanosecs", Applied),
    ("linux.timeOffsets.monotonic", Applied),
    ("linux.timeOffsets.monotonic.secs", Applied),
    ("linux.timeOffsets.monotonic.nanosecs", Applied),
    ("windows", OtherPlatform),
    ("solaris", OtherPlatform),
    ("vm", OtherPlatform),
    ("zos", OtherPlatform),
    ("freebsd", OtherPlatform),
];

/// Sets the field at `path` to a value that counts as set, adding an element to each
/// array (`[]`) and a key to each map (`{}`) on the way; returns the concrete path of
/// every segment as (key, what picks the element): ("mounts", "[7]"), ("linux", "").
fn set_field(cfg: &mut Value, path: &str) -> Vec<(String, String)> {
    let mut node = cfg;
    let mut concrete = Vec::new();
    for segment in path.split('.') {
        if let Some(key) = segment.strip_suffix("[]") {
            if !node[key].is_array() {
                node[key] = json!([]);
            }
            let list = node[key].as_array_mut().unwrap();
            list.push(json!({}));
            concrete.push((key.to_string(), format!("[{}]", list.len() - 1)));
            node = list.last_mut().unwrap();
        } else if let Some(key) = segment.strip_suffix("{}") {
            node[key]["eth9"] = json!({});
            concrete.push((key.to_string(), ".eth9".to_string()));
            node = &mut node[key]["eth9"];
        } else {
            concrete.push((segment.to_string(), String::new()));
            node = &mut node[segment];
        }
    }
    *node = json!("x");
    concrete
}

/// The entry of `REFUSED` on the path of `field` (the field itself or an ancestor).
fn refused_ancestor(field: &str) -> Option<&'static str> {
    REFUSED.iter().copied().find(|r| {
        field == *r
            || [".", "[", "{"]
                .iter()
                .any(|sep| field.starts_with(&format!("{r}{sep}")))
    })
}

/// Sets `field` in a fresh copy of `base` and asserts that create refuses it by the
/// name of its refused ancestor, in one line, leaving nothing behind.
#[track_caller]
fn assert_refused(env: &Env, b: &mut Bundle, base: &Value, field: &str) {
    let refused = refused_ancestor(field).unwrap_or_else(|| panic!("{field}: not refused"));
    let mut concrete = Vec::new();
    b.config(|c| {
        *c = base.clone();
        concrete = set_field(c, field);
    });
    // The refused field's own path: its ancestors' elements, not its own.
    let depth = refused.split('.').count();
    let path: Vec<String> = concrete[..depth]
        .iter()
        .enumerate()
        .map(|(i, (key, pick))| {
            if i + 1 == depth {
                key.clone()
            } else {
                format!("{key}{pick}")
            }
        })
        .collect();
    let want = format!("{}: {}", path.join("."), reason(refused));
    let id = env.id("unsupported");
    let out = env.create(b, &id).fails_with_one_line();
    assert!(
        out.stderr.contains(&want),
        "{field}: want {want:?}: {out:?}"
    );
    env.assert_clean();
}

#[test]
fn each_refused_field_fails_create_and_leaves_nothing() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let base = b.cfg().clone();
    for field in REFUSED {
        assert_refused(&env, &mut b, &base, field);
    }
    // Empty values mean "not set", as runc reads them.
    b.config(|c| {
        *c = base.clone();
        c["linux"]["mountLabel"] = json!("");
        c["process"]["scheduler"] = Value::Null;
    });
    let id = env.id("unset");
    env.run(&b, &id).success();
}

#[test]
fn every_spec_field_is_applied_or_refused() {
    let env = Env::new();
    let mut b = env.bundle(&["true"]);
    let base = b.cfg().clone();
    for r in REFUSED {
        assert!(
            SPEC_FIELDS.contains(&(r, Refused)),
            "{r} is refused but not a spec field"
        );
    }
    for (field, fate) in SPEC_FIELDS {
        match fate {
            Refused => assert_refused(&env, &mut b, &base, field),
            Applied | OtherPlatform => assert_eq!(
                refused_ancestor(field),
                None,
                "{field} is listed as {fate:?} but refused"
            ),
        }
    }
}

/// The field list above is the spec's: walked from the schema (a copy of runtime-spec
/// 1.3.0's schema/ in tests/spec-schema; the other platforms' files are not copied,
/// their top-level keys are fields of their own).
#[test]
fn the_field_list_is_the_schemas() {
    let mut walked = std::collections::BTreeSet::new();
    let schema = Schema::load();
    schema.walk(
        &schema.file("config-schema.json"),
        "config-schema.json",
        "",
        &mut walked,
        0,
    );
    let listed: std::collections::BTreeSet<String> =
        SPEC_FIELDS.iter().map(|(f, _)| f.to_string()).collect();
    let missing: Vec<_> = walked.difference(&listed).collect();
    let extra: Vec<_> = listed.difference(&walked).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "in the schema, not listed: {missing:?}; listed, not in the schema: {extra:?}"
    );
}

struct Schema {
    files: std::collections::BTreeMap<String, Value>,
}

impl Schema {
    fn load() -> Schema {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec-schema");
        let files = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let v = serde_json::from_slice(&std::fs::read(e.path()).unwrap()).unwrap();
                (e.file_name().to_string_lossy().into_owned(), v)
            })
            .collect();
        Schema { files }
    }

    fn file(&self, name: &str) -> Value {
        self.files[name].clone()
    }

    /// The node a `$ref` names ("file.json#/a/b" or "#/a/b" in `cur`), with its file;
    /// None for a file not copied (another platform's).
    fn resolve(&self, reference: &str, cur: &str) -> Option<(Value, String)> {
        let (file, pointer) = reference.split_once('#').unwrap_or((reference, ""));
        let file = if file.is_empty() { cur } else { file };
        let node = self.files.get(file)?.pointer(pointer)?.clone();
        Some((node, file.to_string()))
    }

    /// Adds the path of every property under `node`: `[]` for an array's elements,
    /// `{}` for a map's values.
    fn walk(
        &self,
        node: &Value,
        cur: &str,
        path: &str,
        out: &mut std::collections::BTreeSet<String>,
        depth: u32,
    ) {
        assert!(depth < 40, "{path}: schema too deep");
        if let Some(r) = node.get("$ref").and_then(Value::as_str) {
            if let Some((target, file)) = self.resolve(r, cur) {
                self.walk(&target, &file, path, out, depth + 1);
            }
        }
        if let Some(props) = node.get("properties").and_then(Value::as_object) {
            for (key, sub) in props {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                out.insert(p.clone());
                self.walk(sub, cur, &p, out, depth + 1);
            }
        }
        if let Some(items) = node.get("items").filter(|i| i.is_object()) {
            self.walk(items, cur, &format!("{path}[]"), out, depth + 1);
        }
        if let Some(values) = node.get("additionalProperties").filter(|v| v.is_object()) {
            self.walk(values, cur, &format!("{path}{{}}"), out, depth + 1);
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            for sub in node
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                self.walk(sub, cur, path, out, depth + 1);
            }
        }
    }
}
