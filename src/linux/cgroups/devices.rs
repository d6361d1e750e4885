//! The v1 devices controller as an allow-list: deny everything, then the
//! config's rules in order, then the devices every container gets, as runc 1.5
//! does. A node in linux.devices is created, not allowed: access follows
//! linux.resources.devices alone. On v2 this would be an eBPF program, which
//! paddock does not load yet: non-default rules get a warning.

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::resources::Write;

const F: &str = "linux.resources.devices";

/// Rules every container gets after its own, in runc's order: mknod of anything
/// (the node is useless without r/w), r/w/m on the usual character devices,
/// pts/*, ptmx and /dev/net/tun. A default that names a path is left out when
/// linux.devices lists the same path (the config's node takes its place, as in
/// runc, and needs its own rule).
const DEFAULT_RULES: &[(Option<&str>, &str)] = &[
    (None, "c *:* m"),
    (None, "b *:* m"),
    (Some("/dev/null"), "c 1:3 rwm"),
    (Some("/dev/random"), "c 1:8 rwm"),
    (Some("/dev/full"), "c 1:7 rwm"),
    (Some("/dev/tty"), "c 5:0 rwm"),
    (Some("/dev/zero"), "c 1:5 rwm"),
    (Some("/dev/urandom"), "c 1:9 rwm"),
    (None, "c 136:* rwm"),
    (None, "c 5:2 rwm"),
    (None, "c 10:200 rwm"),
];

/// "c 1:3 rwm"; unset type is "a", unset numbers are "*". The access string is
/// checked (not empty, only r, w, m) before any plan is made.
pub fn rule_line(r: &LinuxDeviceCgroup) -> String {
    let typ = r.typ().unwrap_or(LinuxDeviceType::A);
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let access = r.access().as_deref().unwrap_or_default();
    if typ == LinuxDeviceType::A && r.major().is_none() && r.minor().is_none() {
        return "a".to_string();
    }
    format!(
        "{} {}:{} {access}",
        typ.as_str(),
        num(r.major()),
        num(r.minor())
    )
}

/// `created` is linux.devices: only its paths matter here (see DEFAULT_RULES).
pub fn plan_v1(rules: &[LinuxDeviceCgroup], created: &[LinuxDevice]) -> Vec<Write> {
    let mut w = vec![Write::new(F, "devices", "devices.deny", "a")];
    for (i, r) in rules.iter().enumerate() {
        let file = if r.allow() {
            "devices.allow"
        } else {
            "devices.deny"
        };
        w.push(Write::new(
            &format!("{F}[{i}]"),
            "devices",
            file,
            rule_line(r),
        ));
    }
    let listed = |path: &str| created.iter().any(|d| d.path().as_os_str() == path);
    for (path, line) in DEFAULT_RULES {
        if !path.is_some_and(listed) {
            w.push(Write::new(F, "devices", "devices.allow", line));
        }
    }
    w
}

/// Whether the rules say more than "deny everything" (what `paddock spec` writes),
/// i.e. something v2 would need a device program for.
pub fn non_default(rules: &[LinuxDeviceCgroup]) -> bool {
    rules.iter().any(|r| r.allow() || rule_line(r) != "a")
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
        assert_eq!(w[0].targets[0], ("devices.deny".into(), "a".into()));
        assert_eq!(w[1].targets[0], ("devices.deny".into(), "a".into()));
        assert_eq!(w[2].targets[0], ("devices.allow".into(), "b 8:* r".into()));
        assert!(w.iter().any(|x| x.targets[0].1 == "c 1:3 rwm"));
        assert!(w.iter().any(|x| x.targets[0].1 == "c 10:200 rwm"));
        assert!(!non_default(&rules[..1]));
        assert!(non_default(&rules));
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
