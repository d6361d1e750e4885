//! The systemd cgroup driver (`--systemd-cgroup`), as runc does it: the
//! container's cgroup is a transient unit that systemd makes over D-Bus (a
//! scope `prefix-name.scope` with Delegate=yes in a slice, or a slice when the
//! name ends in `.slice`); the resources systemd knows are set as unit
//! properties (systemd_props.rs) and everything is also written to the files,
//! so the kernel and systemd agree. Every D-Bus call is made on this thread.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::Spec;

use super::{hierarchies, hierarchy, make_dir, Cgroup, Made};
use crate::linux::dbus::conn::{BusError, Conn};
use crate::linux::dbus::wire::{Message, Value};

pub use super::systemd_annotations::annotation_props;
pub use super::systemd_props::{device_props, resource_props, round_cpu_quota, Prop};

const DEST: &str = "org.freedesktop.systemd1";
const PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// Prefix of the scope when linux.cgroupsPath is empty (runc uses "runc").
const DEFAULT_PREFIX: &str = "paddock";

/// The unit a container's cgroup is, from linux.cgroupsPath ("slice:prefix:name").
#[derive(Debug, PartialEq)]
pub struct Unit {
    /// The unit's name: `prefix-name.scope`, or `name` when it ends in ".slice".
    pub name: String,
    /// The slice it goes in (for a slice: the one it wants), "system.slice" by default.
    pub parent: String,
    /// Its cgroup, relative to the hierarchy roots.
    pub path: PathBuf,
}

impl Unit {
    pub fn parse(cgroups_path: Option<&Path>, id: &str) -> Result<Unit> {
        let text = cgroups_path
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (parent, prefix, name) = if text.is_empty() {
            ("", DEFAULT_PREFIX, id)
        } else {
            let parts: Vec<&str> = text.split(':').collect();
            let [parent, prefix, name] = parts[..] else {
                bail!("expected cgroupsPath to be of format \"slice:prefix:name\" for systemd cgroups, got {text:?} instead");
            };
            (parent, prefix, name)
        };
        let parent = if parent.is_empty() {
            "system.slice"
        } else {
            parent
        };
        let parent_dir = expand_slice(parent)?;
        if name.contains('/') || prefix.contains('/') {
            bail!("linux.cgroupsPath: invalid unit name in {text:?}");
        }
        let (name, path) = if name.ends_with(".slice") {
            // A slice's cgroup is where its own name puts it.
            (name.to_string(), expand_slice(name)?)
        } else {
            let unit = format!("{prefix}-{name}.scope");
            let path = format!("{parent_dir}/{unit}");
            (unit, path)
        };
        Ok(Unit {
            name,
            parent: parent.to_string(),
            path: PathBuf::from(path.trim_start_matches('/')),
        })
    }

    pub fn is_slice(&self) -> bool {
        self.name.ends_with(".slice")
    }
}

/// A slice's cgroup path as systemd names it: "a-b-c.slice" is
/// "/a.slice/a-b.slice/a-b-c.slice", "-.slice" the root.
pub fn expand_slice(slice: &str) -> Result<String> {
    let bad = || anyhow::anyhow!("invalid slice name: {slice}");
    let base = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if slice.contains('/') {
        return Err(bad());
    }
    if base == "-" {
        return Ok("/".into());
    }
    let mut path = String::new();
    let mut prefix = String::new();
    for part in base.split('-') {
        if part.is_empty() {
            return Err(bad());
        }
        path.push_str(&format!("/{prefix}{part}.slice"));
        prefix.push_str(part);
        prefix.push('-');
    }
    Ok(path)
}

/// The unit of a container made with the systemd driver: its cgroup's last component.
pub fn unit_name(cgroup_path: &str) -> &str {
    cgroup_path.rsplit('/').next().unwrap_or(cgroup_path)
}

/// The system manager, reached over the system bus.
pub struct Manager {
    conn: Conn,
    version: Option<u32>,
}

impl Manager {
    pub fn connect() -> Result<Manager> {
        let conn = Conn::system().context("--systemd-cgroup")?;
        Ok(Manager {
            conn,
            version: None,
        })
    }

    fn call(&mut self, member: &str, body: Vec<Value>) -> Result<Vec<Value>> {
        self.conn
            .call(Message::call(DEST, PATH, MANAGER, member, body))
    }

    /// systemd's version number (e.g. 252), read once; 0 when unknown.
    pub fn version(&mut self) -> u32 {
        if let Some(v) = self.version {
            return v;
        }
        let reply = self.conn.call(Message::call(
            DEST,
            PATH,
            "org.freedesktop.DBus.Properties",
            "Get",
            vec![Value::Str(MANAGER.into()), Value::Str("Version".into())],
        ));
        let v = match reply.as_deref() {
            Ok([Value::Variant(v)]) => v.as_str().map_or(0, version_number),
            _ => 0,
        };
        if v == 0 {
            crate::logger::warn("unable to get systemd version");
        }
        self.version = Some(v);
        v
    }

    /// Starts the transient unit and waits for its job; as runc, a unit that
    /// exists is reset (if failed) and tried once more.
    pub fn start(&mut self, unit: &Unit, props: Vec<Prop>) -> Result<()> {
        self.add_job_match()?;
        let body = vec![
            Value::Str(unit.name.clone()),
            Value::Str("replace".into()),
            props_value(props),
            Value::Array("(sa(sv))".into(), vec![]),
        ];
        let mut reply = self.call("StartTransientUnit", body.clone());
        if is_bus_error(&reply, "org.freedesktop.systemd1.UnitExists") {
            let _ = self.reset_failed(&unit.name);
            reply = self.call("StartTransientUnit", body);
        }
        let job =
            job_path(reply).with_context(|| format!("unable to start unit {:?}", unit.name))?;
        let result = self.wait_job(&job)?;
        if result != "done" {
            let _ = self.reset_failed(&unit.name);
            bail!(
                "error creating systemd unit `{}`: got `{result}`",
                unit.name
            );
        }
        Ok(())
    }

    /// Stops the unit and waits; a unit that is already gone is fine (an
    /// empty scope goes by itself). Never fails but on a timeout, as runc.
    pub fn stop(&mut self, name: &str) -> Result<()> {
        self.add_job_match()?;
        let reply = self.call(
            "StopUnit",
            vec![Value::Str(name.into()), Value::Str("replace".into())],
        );
        if let Ok(job) = job_path(reply) {
            let result = self.wait_job(&job)?;
            if result != "done" {
                crate::logger::warn(&format!(
                    "error removing unit `{name}`: got `{result}`. Continuing..."
                ));
            }
        }
        let _ = self.reset_failed(name);
        Ok(())
    }

    /// Changes the unit's properties at runtime (`update`).
    pub fn set(&mut self, name: &str, props: Vec<Prop>) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        self.call(
            "SetUnitProperties",
            vec![
                Value::Str(name.into()),
                Value::Bool(true),
                props_value(props),
            ],
        )
        .context("unable to set unit properties")?;
        Ok(())
    }

    fn reset_failed(&mut self, name: &str) -> Result<()> {
        self.call("ResetFailedUnit", vec![Value::Str(name.into())])
            .map(|_| ())
    }

    /// JobRemoved reaches us only with a match rule; added before the job exists.
    fn add_job_match(&mut self) -> Result<()> {
        self.conn.call(Message::call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "AddMatch",
            vec![Value::Str(format!(
                "type='signal',sender='{DEST}',path='{PATH}',interface='{MANAGER}',member='JobRemoved'"
            ))],
        ))?;
        Ok(())
    }

    /// The result of job `job` ("done", "failed", ...) from its JobRemoved signal.
    fn wait_job(&mut self, job: &str) -> Result<String> {
        let m = self
            .conn
            .wait_signal(&|m| {
                m.member == "JobRemoved" && m.body.get(1).and_then(Value::as_str) == Some(job)
            })
            .context("wait for the systemd job")?;
        Ok(m.body
            .get(3)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string())
    }
}

fn props_value(props: Vec<Prop>) -> Value {
    Value::Array(
        "(sv)".into(),
        props
            .into_iter()
            .map(|(k, v)| Value::Struct(vec![Value::Str(k), Value::Variant(Box::new(v))]))
            .collect(),
    )
}

fn job_path(reply: Result<Vec<Value>>) -> Result<String> {
    match reply?.first() {
        Some(Value::Path(p)) => Ok(p.clone()),
        _ => bail!("systemd answered without a job"),
    }
}

fn is_bus_error(r: &Result<Vec<Value>>, name: &str) -> bool {
    matches!(r, Err(e) if e.downcast_ref::<BusError>().is_some_and(|b| b.name.contains(name)))
}

/// "252.36-1~deb12u1" or "v252" -> 252.
fn version_number(s: &str) -> u32 {
    let s = s.trim_start_matches(['"', 'v']);
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    s[..end].parse().unwrap_or(0)
}

/// The properties every container unit gets, as runc sets them.
pub fn base_props(unit: &Unit, id: &str, pid: i32, v2: bool) -> Vec<Prop> {
    let b = |k: &str, v: bool| (k.to_string(), Value::Bool(v));
    let mut p = vec![(
        "Description".to_string(),
        Value::Str(format!("paddock container {id}")),
    )];
    if unit.is_slice() {
        p.push((
            "Wants".into(),
            Value::Array("s".into(), vec![Value::Str(unit.parent.clone())]),
        ));
    } else {
        p.push(("Slice".into(), Value::Str(unit.parent.clone())));
        p.push(b("Delegate", true));
        p.push((
            "PIDs".into(),
            Value::Array("u".into(), vec![Value::U32(pid as u32)]),
        ));
    }
    p.push(b("MemoryAccounting", true));
    p.push(b("CPUAccounting", true));
    p.push(b(
        if v2 {
            "IOAccounting"
        } else {
            "BlockIOAccounting"
        },
        true,
    ));
    p.push(b("TasksAccounting", true));
    p.push(b("DefaultDependencies", false));
    p
}

/// Whether the host's cgroups are pure v2 (the unit properties differ).
pub fn host_is_v2() -> Result<bool> {
    Ok(hierarchy::is_pure_v2(&hierarchies()?))
}

/// Makes the cgroup around `pid` once systemd has made the unit: on v2 the
/// parents delegate their controllers down (as runc's CreateCgroupPath); on v1
/// the hierarchies systemd does not manage get the same path, and `pid` joins
/// every one (systemd put it in its own). A slice holds no pid of its own: it joins.
pub fn adopt(unit: &Unit, pid: i32) -> Result<Cgroup> {
    let rel = &unit.path;
    let hiers = hierarchies()?;
    let pure_v2 = hierarchy::is_pure_v2(&hiers);
    let mut cg = Cgroup {
        dirs: Vec::new(),
        hiers: Vec::new(),
        made: Made::default(),
    };
    for h in hiers {
        make_dir(&h, rel, pure_v2, &mut cg.made)?;
        let dir = h.mount.join(rel);
        if !h.v2 || unit.is_slice() {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string())
                .with_context(|| format!("join cgroup {}", procs.display()))?;
        }
        cg.dirs.push(dir);
        cg.hiers.push(h);
    }
    // What create_delegating enabled stays: systemd owns the slices above.
    cg.made = Made::default();
    Ok(cg)
}

/// The unit's properties for a new container: runc's base set, the
/// devices and other resources, then the `org.systemd.property.*` annotations.
pub fn create_props(
    m: &mut Manager,
    unit: &Unit,
    id: &str,
    pid: i32,
    spec: &Spec,
) -> Result<Vec<Prop>> {
    let v2 = host_is_v2()?;
    let mut props = base_props(unit, id, pid, v2);
    let linux = spec.linux().as_ref();
    let r = linux.and_then(|l| l.resources().as_ref());
    let rules = r.and_then(|r| r.devices().as_deref()).unwrap_or_default();
    let created = linux
        .and_then(|l| l.devices().as_deref())
        .unwrap_or_default();
    props.extend(device_props(&super::devices::effective(rules, created)));
    if let Some(r) = r {
        props.extend(resource_props(r, v2, &mut || m.version())?);
    }
    props.extend(annotation_props(
        spec.annotations().as_ref().unwrap_or(&Default::default()),
    )?);
    Ok(props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_expand_as_systemd_names_them() {
        assert_eq!(expand_slice("system.slice").unwrap(), "/system.slice");
        assert_eq!(
            expand_slice("a-b-c.slice").unwrap(),
            "/a.slice/a-b.slice/a-b-c.slice"
        );
        assert_eq!(expand_slice("-.slice").unwrap(), "/");
        for bad in [
            "a",
            "a/b.slice",
            "a--b.slice",
            "-a.slice",
            "a-.slice",
            ".slice",
        ] {
            assert!(expand_slice(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cgroups_path_forms() {
        let u = Unit::parse(Some(Path::new("machine.slice:libpod:abc")), "id").unwrap();
        assert_eq!(u.name, "libpod-abc.scope");
        assert_eq!(u.parent, "machine.slice");
        assert_eq!(u.path, Path::new("machine.slice/libpod-abc.scope"));
        let u = Unit::parse(None, "id").unwrap();
        assert_eq!(u.name, "paddock-id.scope");
        assert_eq!(u.path, Path::new("system.slice/paddock-id.scope"));
        let u = Unit::parse(Some(Path::new("::n")), "id").unwrap();
        assert_eq!(u.name, "-n.scope");
        assert_eq!(u.path, Path::new("system.slice/-n.scope"));
        let u = Unit::parse(Some(Path::new("a-b.slice:p:n")), "id").unwrap();
        assert_eq!(u.path, Path::new("a.slice/a-b.slice/p-n.scope"));
        let u = Unit::parse(Some(Path::new("a.slice::a-c.slice")), "id").unwrap();
        assert!(u.is_slice());
        assert_eq!(u.path, Path::new("a.slice/a-c.slice"));
        let e = Unit::parse(Some(Path::new("/a/b")), "id").unwrap_err();
        assert!(e.to_string().contains("slice:prefix:name"), "{e}");
        assert!(Unit::parse(Some(Path::new("a:b:c")), "id").is_err());
        assert_eq!(unit_name("a.slice/p-n.scope"), "p-n.scope");
    }

    #[test]
    fn systemd_versions() {
        assert_eq!(version_number("252.36-1~deb12u1"), 252);
        assert_eq!(version_number("\"v245\""), 245);
        assert_eq!(version_number("x"), 0);
    }
}
