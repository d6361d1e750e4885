//! `org.systemd.property.*` annotations as systemd unit properties, read as
//! runc reads them.

use std::collections::HashMap;

use anyhow::{bail, Context, Result};

use super::systemd_props::Prop;
use crate::linux::dbus::wire::Value;

/// `org.systemd.property.NAME=VALUE` annotations, VALUE in GVariant text form
/// as runc parses it (the forms used in practice: numbers with or without a
/// type word, booleans, quoted strings, arrays of strings). NAMEs ending in
/// "Sec" become "USec" with the value in microseconds, as runc does.
pub fn annotation_props(annotations: &HashMap<String, String>) -> Result<Vec<Prop>> {
    const PREFIX: &str = "org.systemd.property.";
    let mut keys: Vec<&String> = annotations
        .keys()
        .filter(|k| k.starts_with(PREFIX))
        .collect();
    keys.sort();
    let mut out = Vec::new();
    for k in keys {
        let v = &annotations[k];
        let mut name = k[PREFIX.len()..].to_string();
        if name.len() < 3 {
            bail!("annotation {k} name incorrect: too short");
        }
        if !name.bytes().all(|c| c.is_ascii_alphabetic()) {
            bail!("annotation {k} name incorrect: contains non-alphabetic character");
        }
        let mut value =
            parse_variant(v).with_context(|| format!("annotation {k}={v} value parse error"))?;
        if let Some(base) = name.strip_suffix("Sec") {
            if base.ends_with(|c: char| c.is_ascii_lowercase()) {
                name = format!("{base}USec");
                value = sec_to_usec(&value)
                    .with_context(|| format!("annotation {k}={v} value parse error"))?;
            }
        }
        out.push((name, value));
    }
    Ok(out)
}

fn sec_to_usec(v: &Value) -> Result<Value> {
    const M: u64 = 1_000_000;
    Ok(Value::U64(match *v {
        Value::Byte(n) => u64::from(n) * M,
        Value::I16(n) => (n as u64).wrapping_mul(M),
        Value::U16(n) => u64::from(n) * M,
        Value::I32(n) => (n as u64).wrapping_mul(M),
        Value::U32(n) => u64::from(n) * M,
        Value::I64(n) => (n as u64).wrapping_mul(M),
        Value::U64(n) => n.wrapping_mul(M),
        Value::F64(n) => (n * M as f64) as u64,
        _ => bail!("not a number"),
    }))
}

/// A GVariant text value: `true`, `uint64 5`, `5` (int32), `1.5`, `'s'`, `"s"`, `['a', 'b']`.
pub fn parse_variant(text: &str) -> Result<Value> {
    let t = text.trim();
    match t {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        _ => {}
    }
    if let Some(s) = quoted(t) {
        return Ok(Value::Str(s));
    }
    if let Some(inner) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
        let items = inner
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                quoted(s)
                    .map(Value::Str)
                    .context("only arrays of strings are supported")
            })
            .collect::<Result<Vec<_>>>()?;
        return Ok(Value::Array("s".into(), items));
    }
    let (word, num) = t.split_once(char::is_whitespace).unwrap_or(("", t));
    let num = num.trim();
    let bad = || anyhow::anyhow!("cannot parse {t:?}");
    Ok(match word {
        "byte" => Value::Byte(num.parse().map_err(|_| bad())?),
        "int16" => Value::I16(num.parse().map_err(|_| bad())?),
        "uint16" => Value::U16(num.parse().map_err(|_| bad())?),
        "int32" => Value::I32(num.parse().map_err(|_| bad())?),
        "uint32" => Value::U32(num.parse().map_err(|_| bad())?),
        "int64" => Value::I64(num.parse().map_err(|_| bad())?),
        "uint64" => Value::U64(num.parse().map_err(|_| bad())?),
        "double" => Value::F64(num.parse().map_err(|_| bad())?),
        "" if num.contains(['.', 'e']) => Value::F64(num.parse().map_err(|_| bad())?),
        "" => Value::I32(num.parse().map_err(|_| bad())?),
        _ => return Err(bad()),
    })
}

fn quoted(s: &str) -> Option<String> {
    let q = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let inner = s.strip_prefix(q)?.strip_suffix(q)?;
    (!inner.contains(q)).then(|| inner.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(p: &[Prop]) -> Vec<String> {
        p.iter().map(|(k, v)| format!("{k}={v:?}")).collect()
    }

    #[test]
    fn annotations_as_runc_reads_them() {
        let a: HashMap<String, String> = [
            ("org.systemd.property.TimeoutStopSec", "uint64 5"),
            ("org.systemd.property.CollectMode", "'inactive-or-failed'"),
            ("org.systemd.property.CPUQuotaPeriodUSec", "uint64 20000"),
            ("other", "x"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let p = names(&annotation_props(&a).unwrap());
        assert_eq!(
            p,
            [
                "CPUQuotaPeriodUSec=U64(20000)",
                "CollectMode=Str(\"inactive-or-failed\")",
                "TimeoutStopUSec=U64(5000000)",
            ]
        );
        let bad = |k: &str, v: &str| {
            let a = HashMap::from([(k.to_string(), v.to_string())]);
            annotation_props(&a).unwrap_err().to_string()
        };
        assert!(bad("org.systemd.property.A1x", "1").contains("non-alphabetic"));
        assert!(bad("org.systemd.property.Ab", "1").contains("too short"));
        assert!(bad("org.systemd.property.Abc", "{").contains("value parse error"));
        assert_eq!(parse_variant("7").unwrap(), Value::I32(7));
        assert_eq!(
            parse_variant("['a', \"b\"]").unwrap(),
            Value::Array(
                "s".into(),
                vec![Value::Str("a".into()), Value::Str("b".into())]
            )
        );
    }
}
