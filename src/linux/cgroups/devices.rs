//! The v1 devices controller as an allow-list: deny everything, then the
//! config's rules in order, then the devices every container gets (as runc
//! does) and the nodes linux.devices creates. On v2 this would be an eBPF
//! program, which paddock does not load yet: non-default rules get a warning.

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, LinuxDeviceType};

use super::resources::Write;

const F: &str = "linux.resources.devices";

/// Rules every container gets: mknod of anything (the node is useless without
/// r/w), and r/w/m on null zero full random urandom tty console ptmx pts/*.
const DEFAULT_RULES: &[&str] = &[
    "c *:* m",
    "b *:* m",
    "c 1:3 rwm",
    "c 1:5 rwm",
    "c 1:7 rwm",
    "c 1:8 rwm",
    "c 1:9 rwm",
    "c 5:0 rwm",
    "c 5:1 rwm",
    "c 5:2 rwm",
    "c 136:* rwm",
];

/// "c 1:3 rwm"; unset type is "a", unset numbers are "*".
pub fn rule_line(r: &LinuxDeviceCgroup) -> String {
    let typ = r.typ().unwrap_or(LinuxDeviceType::A);
    let num = |n: Option<i64>| n.map_or("*".to_string(), |n| n.to_string());
    let access = r.access().as_deref().unwrap_or("rwm");
    let access = if access.is_empty() { "rwm" } else { access };
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
    for line in DEFAULT_RULES {
        w.push(Write::new(F, "devices", "devices.allow", line));
    }
    for (i, d) in created.iter().enumerate() {
        let typ = match d.typ() {
            LinuxDeviceType::B => "b",
            _ => "c",
        };
        w.push(Write::new(
            &format!("linux.devices[{i}]"),
            "devices",
            "devices.allow",
            format!("{typ} {}:{} rwm", d.major(), d.minor()),
        ));
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
        assert!(!non_default(&rules[..1]));
        assert!(non_default(&rules));
    }
}
