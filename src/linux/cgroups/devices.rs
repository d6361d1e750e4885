//! The v1 devices controller as an allow-list: deny everything, then the
//! config's rules in order, then the devices every container gets, as runc 1.5
//! does. A node in linux.devices is created, not allowed: access follows
//! linux.resources.devices alone. On v2 the same list becomes an eBPF
//! program (devices_bpf.rs).

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType as Type};

use super::resources::Write;

const F: &str = "linux.resources.devices";

/// Rules every container gets after its own, in runc's order: mknod of anything
/// (the node is useless without r/w), r/w/m on the usual character devices,
/// pts/*, ptmx and /dev/net/tun. A default that names a path is left out when
/// linux.devices lists the same path (the config's node takes its place, as in
/// runc, and needs its own rule). Each is (path, type, major, minor, access).
const DEFAULT_RULES: &[(Option<&str>, Type, i64, i64, &str)] = &[
    (None, Type::C, ANY, ANY, "m"),
    (None, Type::B, ANY, ANY, "m"),
    (Some("/dev/null"), Type::C, 1, 3, "rwm"),
    (Some("/dev/random"), Type::C, 1, 8, "rwm"),
    (Some("/dev/full"), Type::C, 1, 7, "rwm"),
    (Some("/dev/tty"), Type::C, 5, 0, "rwm"),
    (Some("/dev/zero"), Type::C, 1, 5, "rwm"),
    (Some("/dev/urandom"), Type::C, 1, 9, "rwm"),
    (None, Type::C, 136, ANY, "rwm"),
    (None, Type::C, 5, 2, "rwm"),
    (None, Type::C, 10, 200, "rwm"),
];

/// "*" in DEFAULT_RULES.
const ANY: i64 = -1;

fn rule(allow: bool, typ: Type, major: i64, minor: i64, access: &str) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(typ));
    r.set_major(Some(major).filter(|n| *n != ANY));
    r.set_minor(Some(minor).filter(|n| *n != ANY));
    r.set_access(Some(access.to_string()));
    r
}

/// The rules in the order they take effect, on v1 and v2 alike: deny
/// everything, the config's rules, then the defaults. `created` is
/// linux.devices: only its paths matter here (see DEFAULT_RULES).
pub fn effective(rules: &[LinuxDeviceCgroup], created: &[LinuxDevice]) -> Vec<LinuxDeviceCgroup> {
    let mut all = vec![rule(false, Type::A, ANY, ANY, "rwm")];
    all.extend_from_slice(rules);
    let listed = |path: &str| created.iter().any(|d| d.path().as_os_str() == path);
    for (path, typ, major, minor, access) in DEFAULT_RULES {
        if !path.is_some_and(listed) {
            all.push(rule(true, *typ, *major, *minor, access));
        }
    }
    all
}

/// "c 1:3 rwm"; unset type is "a", unset numbers are "*". The access string is
/// checked (not empty, only r, w, m) before any plan is made.
pub fn rule_line(r: &LinuxDeviceCgroup) -> String {
    let typ = r.typ().unwrap_or(Type::A);
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let access = r.access().as_deref().unwrap_or_default();
    if typ == Type::A && r.major().is_none() && r.minor().is_none() {
        return "a".to_string();
    }
    format!(
        "{} {}:{} {access}",
        typ.as_str(),
        num(r.major()),
        num(r.minor())
    )
}

/// The effective list as writes to devices.allow / devices.deny. A write equal to the
/// one just before it is left out: the kernel would change nothing (runc's configs
/// start with their own "deny all", which follows ours).
pub fn plan_v1(rules: &[LinuxDeviceCgroup], created: &[LinuxDevice]) -> Vec<Write> {
    let n = rules.len();
    let mut writes: Vec<Write> = effective(rules, created)
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let file = if r.allow() {
                "devices.allow"
            } else {
                "devices.deny"
            };
            // Entry 0 is the leading "deny all"; the config's rules follow it.
            let field = match i.checked_sub(1).filter(|j| *j < n) {
                Some(j) => format!("{F}[{j}]"),
                None => F.to_string(),
            };
            Write::new(&field, "devices", file, rule_line(r))
        })
        .collect();
    writes.dedup_by(|w, prev| w.targets == prev.targets);
    writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_become_lines() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"b","major":8,"access":"r"}]"#,
        )
        .unwrap();
        let w = plan_v1(&rules, &[]);
        // The config's "deny all" right after ours is written once.
        assert_eq!(w[0].targets[0], ("devices.deny".into(), "a".into()));
        assert_eq!(w[1].targets[0], ("devices.allow".into(), "b 8:* r".into()));
        assert!(w.iter().any(|x| x.targets[0].1 == "c 1:3 rwm"));
        assert!(w.iter().any(|x| x.targets[0].1 == "c 10:200 rwm"));
        assert!(w.iter().any(|x| x.targets[0].1 == "c *:* m"));
        assert_eq!(w[1].field, "linux.resources.devices[1]");
        assert_eq!(w[2].field, "linux.resources.devices");
        assert_eq!(w.len(), 13);
    }

    #[test]
    fn only_a_repeat_right_after_is_left_out() {
        let rules: Vec<LinuxDeviceCgroup> = serde_json::from_str(
            r#"[{"allow":true,"type":"c","major":1,"minor":3,"access":"r"},{"allow":false,"access":"rwm"},{"allow":false,"type":"a","access":"r"}]"#,
        )
        .unwrap();
        let lines: Vec<(String, String)> = plan_v1(&rules, &[])
            .into_iter()
            .map(|w| w.targets[0].clone())
            .collect();
        let deny_all = ("devices.deny".to_string(), "a".to_string());
        assert_eq!(lines[0], deny_all);
        assert_eq!(lines[1], ("devices.allow".into(), "c 1:3 r".into()));
        assert_eq!(lines[2], deny_all);
        assert_ne!(lines[3], deny_all);
    }

    #[test]
    fn created_nodes_are_not_allowed_by_being_created() {
        let created: Vec<LinuxDevice> = serde_json::from_str(
            r#"[{"path":"/dev/kmsg","type":"c","major":1,"minor":11},{"path":"/dev/null","type":"c","major":1,"minor":3}]"#,
        )
        .unwrap();
        let lines: Vec<String> = plan_v1(&[], &created)
            .into_iter()
            .map(|w| w.targets[0].1.clone())
            .collect();
        assert!(!lines.iter().any(|l| l.starts_with("c 1:11")), "{lines:?}");
        // A listed path replaces runc's default rule for it.
        assert!(!lines.iter().any(|l| l == "c 1:3 rwm"), "{lines:?}");
        assert!(lines.iter().any(|l| l == "c 1:5 rwm"), "{lines:?}");
    }
}
