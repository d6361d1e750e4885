//! Fields of config.json that paddock does not apply (yet): a config that sets one
//! is refused, naming the field, instead of running as if it were not there. Each
//! is read from the JSON itself, so that a field oci-spec drops while parsing is seen too. Remove an entry when its feature lands. (linux.intelRdt has its
//! own refusal, in runc's words where the host has no resctrl: linux/intel_rdt.rs.)

use anyhow::{bail, Result};
use serde_json::Value;

/// JSON paths of the refused fields; `[]` means every element of an array.
/// runc applies all of them.
pub const FIELDS: &[&str] = &[
    // Accepted by lsm::validate on an SELinux host, but no mount gets the label.
    "linux.mountLabel",
];

/// Fails with "<json path>: not supported" for the first refused field that is set.
pub fn check(config: &Value) -> Result<()> {
    for field in FIELDS {
        if let Some(at) = first_set(config, field) {
            bail!("{at}: not supported");
        }
    }
    Ok(())
}

/// Where `path` is set in `config`, with array indexes filled in (`mounts[2].uidMappings`).
fn first_set(config: &Value, path: &str) -> Option<String> {
    let mut found = vec![(String::new(), config)];
    for segment in path.split('.') {
        let (key, each) = match segment.strip_suffix("[]") {
            Some(key) => (key, true),
            None => (segment, false),
        };
        let mut next = Vec::new();
        for (at, node) in found {
            let Some(child) = node.get(key) else {
                continue;
            };
            let at = if at.is_empty() {
                key.to_string()
            } else {
                format!("{at}.{key}")
            };
            if each {
                for (i, item) in child.as_array().into_iter().flatten().enumerate() {
                    next.push((format!("{at}[{i}]"), item));
                }
            } else {
                next.push((at, child));
            }
        }
        found = next;
    }
    found.into_iter().find(|(_, v)| is_set(v)).map(|(at, _)| at)
}

/// null, "" and [] mean "not set", as runc reads them; anything else (even {}) is set.
fn is_set(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn err(v: Value) -> String {
        check(&v).unwrap_err().to_string()
    }

    #[test]
    fn names_the_field() {
        assert_eq!(
            err(json!({"linux": {"mountLabel": "system_u:object_r:x:s0"}})),
            "linux.mountLabel: not supported"
        );
    }

    #[test]
    fn unset_values_pass() {
        let v = json!({
            "process": {"scheduler": null, "args": ["sh"]},
            "mounts": [{"destination": "/a", "uidMappings": []}],
            "linux": {"mountLabel": "", "namespaces": []}
        });
        check(&v).unwrap();
    }

    #[test]
    fn every_entry_is_refused_when_set() {
        for field in FIELDS {
            let mut v = json!({});
            let mut node = &mut v;
            for segment in field.split('.') {
                node = match segment.strip_suffix("[]") {
                    Some(key) => {
                        node[key] = json!([{}]);
                        &mut node[key][0]
                    }
                    None => &mut node[segment],
                };
            }
            *node = json!("x");
            let want = format!("{}: not supported", field.replace("[]", "[0]"));
            assert_eq!(err(v), want);
        }
    }
}
