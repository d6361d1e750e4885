//! runc's reading of a `linux.seccomp` the config parser refuses. oci-spec's enums
//! reject an unknown flag, architecture, action or operator with a generic serde
//! message, and it requires defaultAction; when parsing fails inside `linux.seccomp`,
//! this reads the raw JSON in the order runc checks it and says what runc would.

use anyhow::{anyhow, Error, Result};
use serde_json::Value;

use super::flags::too_old;

const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
];
/// Known to runc, but it needs libseccomp 2.6 (API level 7); paddock links 2.5.
const FLAG_WAIT_KILLABLE_RECV: &str = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";
const ARCHS: &[&str] = &[
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
];
/// Known to runc; the libseccomp paddock links cannot filter it.
const ARCH_LOONGARCH64: &str = "SCMP_ARCH_LOONGARCH64";
const ACTIONS: &[&str] = &[
    "SCMP_ACT_KILL",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_TRAP",
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_KILL_PROCESS",
];
const OPERATORS: &[&str] = &[
    "SCMP_CMP_NE",
    "SCMP_CMP_LT",
    "SCMP_CMP_LE",
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_MASKED_EQ",
];

/// The flag names `linux.seccomp.flags` may hold, in runc's order (some may not be
/// applicable here: see `supported_flags`): the `knownFlags` of `paddock features`.
pub fn known_flags() -> Vec<&'static str> {
    let mut known = FLAGS.to_vec();
    known.push(FLAG_WAIT_KILLABLE_RECV);
    known
}

/// The architectures a filter can be built for, sorted.
pub fn known_archs() -> Vec<&'static str> {
    sorted(ARCHS)
}

/// The actions, sorted.
pub fn known_actions() -> Vec<&'static str> {
    sorted(ACTIONS)
}

/// The argument comparison operators, sorted.
pub fn known_operators() -> Vec<&'static str> {
    sorted(OPERATORS)
}

fn sorted(names: &[&'static str]) -> Vec<&'static str> {
    let mut v = names.to_vec();
    v.sort_unstable();
    v
}

/// What runc makes of a config.json whose `linux.seccomp` failed to parse: Some(Ok) with
/// the config without it when runc takes it as "no seccomp" (neither a default action
/// nor rules), Some(Err) with runc's words for a name it refuses, None otherwise.
pub fn runc_reading(data: &[u8]) -> Option<Result<Vec<u8>>> {
    let mut config: Value = serde_json::from_slice(data).ok()?;
    let linux = config.get_mut("linux")?.as_object_mut()?;
    let s = linux.get("seccomp").filter(|s| s.is_object())?;
    // runc looks at this before anything else in the section.
    let no_default = s
        .get("defaultAction")
        .is_none_or(|a| a.as_str() == Some(""));
    let no_rules = s
        .get("syscalls")
        .is_none_or(|v| v.is_null() || v.as_array().is_some_and(|a| a.is_empty()));
    if no_default && no_rules {
        linux.remove("seccomp");
        return Some(serde_json::to_vec(&config).map_err(Error::from));
    }
    explain(s).map(Err)
}

/// The first name in the seccomp section `s` that runc refuses, as runc words it
/// (prefixed with the field); None when the names are fine.
fn explain(s: &Value) -> Option<Error> {
    let f = "linux.seccomp";
    for (i, flag) in strings(s.get("flags")) {
        if flag == FLAG_WAIT_KILLABLE_RECV {
            let why = too_old("SetWaitKill", 7, "2.6.0", libseccomp::get_api());
            return Some(anyhow!(
                "{f}.flags[{i}]: error adding WaitKill flag to seccomp filter: {why}"
            ));
        }
        if !FLAGS.contains(&flag) {
            return Some(anyhow!(
                "{f}.flags[{i}]: seccomp flag {flag} is not known to paddock"
            ));
        }
    }
    for (i, arch) in strings(s.get("architectures")) {
        if arch == ARCH_LOONGARCH64 {
            return Some(anyhow!(
                "{f}.architectures[{i}]: {arch}: not supported by this libseccomp"
            ));
        }
        if !ARCHS.contains(&arch) {
            return Some(anyhow!(
                "{f}.architectures[{i}]: string {arch} is not a valid arch for seccomp"
            ));
        }
    }
    let default = s.get("defaultAction").and_then(Value::as_str).unwrap_or("");
    let syscalls = s.get("syscalls").and_then(Value::as_array);
    if !ACTIONS.contains(&default) {
        return Some(anyhow!(
            "{f}.defaultAction: string {default} is not a valid action for seccomp"
        ));
    }
    for (i, sc) in syscalls.into_iter().flatten().enumerate() {
        let action = sc.get("action").and_then(Value::as_str).unwrap_or("");
        if !ACTIONS.contains(&action) {
            return Some(anyhow!(
                "{f}.syscalls[{i}].action: string {action} is not a valid action for seccomp"
            ));
        }
        let args = sc.get("args").and_then(Value::as_array);
        for (j, a) in args.into_iter().flatten().enumerate() {
            let op = a.get("op").and_then(Value::as_str).unwrap_or("");
            if !OPERATORS.contains(&op) {
                return Some(anyhow!(
                    "{f}.syscalls[{i}].args[{j}].op: string {op} is not a valid operator for seccomp"
                ));
            }
        }
    }
    None
}

/// The string elements of a JSON array, with their indexes.
fn strings(v: Option<&Value>) -> impl Iterator<Item = (usize, &str)> {
    v.and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, x)| x.as_str().map(|s| (i, s)))
}
