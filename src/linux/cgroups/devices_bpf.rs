//! The v2 device controller: the effective device rules (devices.rs) as a
//! BPF_PROG_TYPE_CGROUP_DEVICE program on the container's cgroup.
//!
//! The rules are first reduced to what they leave in effect, with v1's and
//! runc's semantics: a rule of type "a" starts over (allow all or deny all);
//! any other rule adds its access to, or takes it from, the exception for
//! exactly its type and numbers, so the last rule about a device wins. Taking
//! access out of a wildcard exception is refused, as runc refuses it (v1
//! would silently keep the access). The exceptions left all carry the same
//! verdict, so their order in the program does not matter.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::bpf::{self, Insn};
use super::devices::rule_line;

const F: &str = "linux.resources.devices";

// Access bits and device types as the kernel passes them (BPF_DEVCG_*).
const MKNOD: u8 = 1;
const READ: u8 = 2;
const WRITE: u8 = 4;
const ALL: u8 = MKNOD | READ | WRITE;
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;

// struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; }:
// R1 points at it on entry; R2..R5 hold its parts, R1 is then scratch.
const CTX: u8 = 1;
const TYPE: u8 = 2;
const ACCESS: u8 = 3;
const MAJOR: u8 = 4;
const MINOR: u8 = 5;
const TMP: u8 = 1;
const RET: u8 = 0;

/// What an exception matches: one type, a number or any (None) for each.
/// Ordered as runc lists them: major, minor, then block before char.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    major: Option<u32>,
    minor: Option<u32>,
    block: bool,
}

/// The rules reduced: a default verdict and the devices that get the other one.
#[derive(Debug, PartialEq, Eq)]
pub struct Exceptions {
    default_allow: bool,
    access: BTreeMap<Key, u8>,
}

/// Loads the program for `rules` (the effective list) and attaches it to the
/// cgroup `dir` in place of any device program already there.
pub fn apply(dir: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let program = program(&reduce(rules)?);
    let prog = bpf::load_device_program(&program, "Apache", "paddock_devices")
        .with_context(|| format!("{F}: load the cgroup v2 device program"))?;
    let cgroup = File::options()
        .read(true)
        .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
        .open(dir)
        .with_context(|| format!("{F}: open cgroup {}", dir.display()))?;
    bpf::attach_replacing(cgroup.as_raw_fd(), &prog)
        .with_context(|| format!("{F}: attach the device program to {}", dir.display()))
}

/// Applies the rules in order (see the module comment).
pub fn reduce(rules: &[LinuxDeviceCgroup]) -> Result<Exceptions> {
    let mut ex = Exceptions {
        default_allow: false,
        access: BTreeMap::new(),
    };
    for r in rules {
        let acc = access_bits(r)?;
        let Some(key) = key(r)? else {
            ex = Exceptions {
                default_allow: r.allow(),
                access: BTreeMap::new(),
            };
            continue;
        };
        if r.allow() != ex.default_allow {
            *ex.access.entry(key).or_default() |= acc;
            continue;
        }
        let wildcards = [
            Key { major: None, ..key },
            Key { minor: None, ..key },
            Key {
                major: None,
                minor: None,
                ..key
            },
        ];
        for w in wildcards.iter().filter(|w| **w != key) {
            let held = ex.access.get(w).copied().unwrap_or(0);
            if held & acc != 0 {
                bail!(
                    "{F}: {:?} cannot take access out of the earlier wildcard rule {:?} (not supported, as in runc); list the devices one by one instead",
                    verdict_line(r),
                    verdict_line(&wildcard_rule(w, held, !r.allow()))
                );
            }
        }
        if let Some(a) = ex.access.get_mut(&key) {
            *a &= !acc;
            if *a == 0 {
                ex.access.remove(&key);
            }
        }
    }
    Ok(ex)
}

fn verdict_line(r: &LinuxDeviceCgroup) -> String {
    let verdict = if r.allow() { "allow" } else { "deny" };
    format!("{verdict} {}", rule_line(r))
}

fn wildcard_rule(k: &Key, access: u8, allow: bool) -> LinuxDeviceCgroup {
    let mut r = LinuxDeviceCgroup::default();
    r.set_allow(allow);
    r.set_typ(Some(if k.block {
        LinuxDeviceType::B
    } else {
        LinuxDeviceType::C
    }));
    r.set_major(k.major.map(i64::from));
    r.set_minor(k.minor.map(i64::from));
    let letters = [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')];
    let s: String = letters
        .iter()
        .filter(|(b, _)| access & b != 0)
        .map(|(_, c)| c)
        .collect();
    r.set_access(Some(s));
    r
}

fn access_bits(r: &LinuxDeviceCgroup) -> Result<u8> {
    let s = r.access().as_deref().unwrap_or_default();
    let mut bits = 0;
    for c in s.chars() {
        bits |= match c {
            'r' => READ,
            'w' => WRITE,
            'm' => MKNOD,
            _ => bail!("{F}: invalid access {s:?} in {:?}", verdict_line(r)),
        };
    }
    if bits == 0 {
        bail!("{F}: empty access in {:?}", verdict_line(r));
    }
    Ok(bits)
}

/// None for type "a" (every device, whatever the numbers say).
fn key(r: &LinuxDeviceCgroup) -> Result<Option<Key>> {
    let block = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => return Ok(None),
        LinuxDeviceType::B => true,
        LinuxDeviceType::C => false,
        t => bail!("{F}: invalid cgroup device type {:?}", t.as_str()),
    };
    // As runc: a negative number is a wildcard.
    let num = |n: Option<i64>, what: &str| -> Result<Option<u32>> {
        match n.filter(|n| *n >= 0) {
            None => Ok(None),
            Some(n) => match u32::try_from(n) {
                Ok(n) => Ok(Some(n)),
                Err(_) => bail!("{F}: invalid {what} {n} in {:?}", verdict_line(r)),
            },
        }
    };
    Ok(Some(Key {
        major: num(r.major(), "major")?,
        minor: num(r.minor(), "minor")?,
        block,
    }))
}

/// The program: load the request's parts, one block per exception returning
/// the exception's verdict when it matches, then the default verdict.
pub fn program(ex: &Exceptions) -> Vec<Insn> {
    let mut p = vec![
        Insn::load_u32(TYPE, CTX, 0),
        Insn::and32(TYPE, 0xffff),
        Insn::load_u32(ACCESS, CTX, 0),
        Insn::rsh32(ACCESS, 16),
        Insn::load_u32(MAJOR, CTX, 4),
        Insn::load_u32(MINOR, CTX, 8),
    ];
    for (key, access) in &ex.access {
        p.extend(block(key, *access, !ex.default_allow));
    }
    p.push(Insn::mov32(RET, i32::from(ex.default_allow)));
    p.push(Insn::exit());
    p
}

/// One exception; every test that fails jumps past the block's end.
fn block(key: &Key, access: u8, allow: bool) -> Vec<Insn> {
    let typ = if key.block { DEV_BLOCK } else { DEV_CHAR };
    let mut b = vec![Insn::jne(TYPE, typ, 0)];
    if access != ALL {
        b.push(Insn::mov32_reg(TMP, ACCESS));
        b.push(Insn::and32(TMP, i32::from(access)));
        if allow {
            // Allowed only when every access asked for is in the rule.
            b.push(Insn::jne_reg(TMP, ACCESS, 0));
        } else {
            // Denied when any access asked for is in the rule, as v1 denies.
            b.push(Insn::jeq(TMP, 0, 0));
        }
    }
    for (reg, n) in [(MAJOR, key.major), (MINOR, key.minor)] {
        let Some(n) = n else { continue };
        match i32::try_from(n) {
            Ok(imm) => b.push(Insn::jne(reg, imm, 0)),
            // An immediate is sign-extended to 64 bits; compare registers.
            Err(_) => {
                b.push(Insn::mov32(TMP, n as i32));
                b.push(Insn::jne_reg(reg, TMP, 0));
            }
        }
    }
    b.push(Insn::mov32(RET, i32::from(allow)));
    b.push(Insn::exit());
    let len = b.len();
    for (i, insn) in b.iter_mut().enumerate() {
        if insn.is_cond_jump() {
            insn.off = (len - i - 1) as i16;
        }
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::linux::cgroups::devices::effective;

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    /// Runs a program the way the kernel would for one request (only the
    /// instructions `program` emits).
    fn run(p: &[Insn], typ: i32, access: u8, major: u32, minor: u32) -> u64 {
        let ctx = [(u32::from(access) << 16) | typ as u32, major, minor];
        let mut reg = [0u64; 11];
        let mut pc = 0;
        loop {
            let i = p[pc];
            let (d, s) = (usize::from(i.dst), usize::from(i.src));
            let imm64 = i64::from(i.imm) as u64;
            pc += 1;
            match i.code {
                0x61 => reg[d] = u64::from(ctx[i.off as usize / 4]),
                0x54 => reg[d] = u64::from(reg[d] as u32 & i.imm as u32),
                0x74 => reg[d] = u64::from(reg[d] as u32 >> i.imm),
                0xb4 => reg[d] = u64::from(i.imm as u32),
                0xbc => reg[d] = u64::from(reg[s] as u32),
                0x55 | 0x5d | 0x15 => {
                    let other = if i.code == 0x5d { reg[s] } else { imm64 };
                    let taken = if i.code == 0x15 {
                        reg[d] == other
                    } else {
                        reg[d] != other
                    };
                    if taken {
                        pc += i.off as usize;
                    }
                }
                0x95 => return reg[0],
                c => panic!("opcode {c:#x}"),
            }
        }
    }

    /// The verdict for one request: "c 1:3", access letters.
    fn allowed(list: &[LinuxDeviceCgroup], dev: &str, access: &str) -> bool {
        let p = program(&reduce(list).unwrap());
        let (t, nums) = dev.split_once(' ').unwrap();
        let (ma, mi) = nums.split_once(':').unwrap();
        let typ = if t == "b" { DEV_BLOCK } else { DEV_CHAR };
        let acc = access.chars().fold(0, |a, c| {
            a | match c {
                'r' => READ,
                'w' => WRITE,
                _ => MKNOD,
            }
        });
        run(&p, typ, acc, ma.parse().unwrap(), mi.parse().unwrap()) == 1
    }

    fn with_defaults(json: &str) -> Vec<LinuxDeviceCgroup> {
        effective(&rules(json), &[])
    }

    const HEADER: usize = 6;

    #[test]
    fn default_list_allows_the_usual_devices_and_mknod_only() {
        let list = with_defaults(r#"[{"allow":false,"access":"rwm"}]"#);
        for dev in [
            "c 1:3", "c 1:5", "c 1:7", "c 1:8", "c 1:9", "c 5:0", "c 5:2",
        ] {
            assert!(allowed(&list, dev, "rw"), "{dev}");
        }
        assert!(allowed(&list, "c 136:7", "rw"));
        assert!(allowed(&list, "c 10:200", "rw"));
        for dev in ["c 1:1", "c 1:11", "b 7:0", "b 8:0", "c 10:229"] {
            assert!(!allowed(&list, dev, "r"), "{dev}");
            assert!(!allowed(&list, dev, "w"), "{dev}");
            assert!(allowed(&list, dev, "m"), "{dev}");
        }
    }

    #[test]
    fn instruction_sequence_per_rule_kind() {
        let ex = reduce(&rules(
            r#"[{"allow":false,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":3,"access":"rwm"}]"#,
        ))
        .unwrap();
        let p = program(&ex);
        assert_eq!(p.len(), HEADER + 5 + 2);
        assert_eq!(
            p[HEADER..],
            [
                Insn::jne(TYPE, DEV_CHAR, 4),
                Insn::jne(MAJOR, 1, 3),
                Insn::jne(MINOR, 3, 2),
                Insn::mov32(RET, 1),
                Insn::exit(),
                Insn::mov32(RET, 0),
                Insn::exit(),
            ]
        );
        // Partial access: a subset test; a wildcard minor: no minor test.
        let ex = reduce(&rules(
            r#"[{"allow":true,"type":"b","major":8,"access":"r"}]"#,
        ))
        .unwrap();
        assert_eq!(
            program(&ex)[HEADER..HEADER + 7],
            [
                Insn::jne(TYPE, DEV_BLOCK, 6),
                Insn::mov32_reg(TMP, ACCESS),
                Insn::and32(TMP, i32::from(READ)),
                Insn::jne_reg(TMP, ACCESS, 3),
                Insn::jne(MAJOR, 8, 2),
                Insn::mov32(RET, 1),
                Insn::exit(),
            ]
        );
        // Allow all, then deny: a deny block tests for any overlap.
        let ex = reduce(&rules(
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"c","minor":4,"access":"w"}]"#,
        ))
        .unwrap();
        assert_eq!(
            program(&ex)[HEADER..],
            [
                Insn::jne(TYPE, DEV_CHAR, 6),
                Insn::mov32_reg(TMP, ACCESS),
                Insn::and32(TMP, i32::from(WRITE)),
                Insn::jeq(TMP, 0, 3),
                Insn::jne(MINOR, 4, 2),
                Insn::mov32(RET, 0),
                Insn::exit(),
                Insn::mov32(RET, 1),
                Insn::exit(),
            ]
        );
        // Numbers above i32::MAX are compared as registers, not sign-extended.
        let ex = reduce(&rules(
            r#"[{"allow":true,"type":"c","major":4294967295,"minor":1,"access":"rwm"}]"#,
        ))
        .unwrap();
        let p = program(&ex);
        assert_eq!(
            p[HEADER..HEADER + 3],
            [
                Insn::jne(TYPE, DEV_CHAR, 5),
                Insn::mov32(TMP, -1),
                Insn::jne_reg(MAJOR, TMP, 3),
            ]
        );
        assert_eq!(run(&p, DEV_CHAR, READ, u32::MAX, 1), 1);
        assert_eq!(run(&p, DEV_CHAR, READ, u32::MAX, 2), 0);
        assert_eq!(run(&p, DEV_CHAR, READ, 1, 1), 0);
    }

    #[test]
    fn allow_all_is_a_program_without_blocks() {
        let list = with_defaults(r#"[{"allow":true,"access":"rwm"}]"#);
        let p = program(&reduce(&list).unwrap());
        assert_eq!(p[HEADER..], [Insn::mov32(RET, 1), Insn::exit()]);
        // Type "a" starts over whatever its numbers and access say.
        let list = with_defaults(
            r#"[{"allow":true,"type":"c","major":1,"minor":11,"access":"rwm"},{"allow":false,"type":"a","major":1,"access":"r"}]"#,
        );
        assert!(!allowed(&list, "c 1:11", "r"));
    }

    #[test]
    fn the_last_rule_about_a_device_wins() {
        let allow_deny = with_defaults(
            r#"[{"allow":true,"type":"c","major":1,"minor":11,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":11,"access":"rwm"}]"#,
        );
        assert!(!allowed(&allow_deny, "c 1:11", "w"));
        let deny_allow = with_defaults(
            r#"[{"allow":false,"type":"c","major":1,"minor":11,"access":"rwm"},{"allow":true,"type":"c","major":1,"minor":11,"access":"rwm"}]"#,
        );
        assert!(allowed(&deny_allow, "c 1:11", "w"));
        // Access adds up per device and is taken away per letter.
        let split = with_defaults(
            r#"[{"allow":true,"type":"c","major":1,"minor":11,"access":"r"},{"allow":true,"type":"c","major":1,"minor":11,"access":"w"},{"allow":false,"type":"c","major":1,"minor":11,"access":"w"}]"#,
        );
        assert!(allowed(&split, "c 1:11", "r"));
        assert!(!allowed(&split, "c 1:11", "w"));
        assert!(!allowed(&split, "c 1:11", "rw"));
        // The defaults come last: a config cannot deny /dev/null.
        let null =
            with_defaults(r#"[{"allow":false,"type":"c","major":1,"minor":3,"access":"rwm"}]"#);
        assert!(allowed(&null, "c 1:3", "rw"));
    }

    #[test]
    fn wildcards_and_access_letters() {
        let list = with_defaults(
            r#"[{"allow":true,"type":"c","major":1,"access":"rw"},{"allow":true,"type":"b","minor":0,"access":"r"}]"#,
        );
        assert!(allowed(&list, "c 1:11", "rw"));
        assert!(allowed(&list, "c 1:1", "r"));
        assert!(!allowed(&list, "c 2:1", "r"));
        assert!(allowed(&list, "b 7:0", "r"));
        assert!(allowed(&list, "b 8:0", "r"));
        assert!(!allowed(&list, "b 8:0", "w"));
        assert!(!allowed(&list, "b 8:0", "rw"));
        assert!(!allowed(&list, "b 8:1", "r"));
        // m without r or w: the node can be made, not opened.
        let m = with_defaults(r#"[{"allow":true,"type":"c","major":1,"minor":11,"access":"m"}]"#);
        assert!(allowed(&m, "c 1:11", "m"));
        assert!(!allowed(&m, "c 1:11", "r"));
        // Allow all, deny one letter: any request with that letter is denied.
        let deny_w = with_defaults(
            r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"b","major":8,"minor":0,"access":"w"}]"#,
        );
        assert!(allowed(&deny_w, "b 8:0", "r"));
        assert!(!allowed(&deny_w, "b 8:0", "rw"));
        assert!(allowed(&deny_w, "b 8:1", "rw"));
    }

    #[test]
    fn bad_rules_are_errors() {
        for (json, want) in [
            (
                r#"[{"allow":true,"type":"c","major":1,"access":"rwm"},{"allow":false,"type":"c","major":1,"minor":3,"access":"r"}]"#,
                "wildcard rule \"allow c 1:* rwm\"",
            ),
            (
                r#"[{"allow":true,"type":"c","major":4294967296,"access":"r"}]"#,
                "invalid major",
            ),
            (
                r#"[{"allow":true,"type":"c","access":"x"}]"#,
                "invalid access",
            ),
            (r#"[{"allow":true,"type":"c","access":""}]"#, "empty access"),
            (r#"[{"allow":true,"type":"p","access":"r"}]"#, "type"),
        ] {
            let e = format!("{:#}", reduce(&rules(json)).unwrap_err());
            assert!(e.contains(want) && e.contains(F), "{json}: {e}");
        }
        // Taking from an exact rule, or from a wildcard without that letter, is fine.
        reduce(&rules(
            r#"[{"allow":true,"type":"c","major":1,"access":"m"},{"allow":false,"type":"c","major":1,"minor":3,"access":"r"}]"#,
        ))
        .unwrap();
    }

    /// The kernel's verifier accepts what we generate (where this process may load programs).
    #[test]
    fn the_kernel_accepts_the_programs() {
        let lists = [
            with_defaults("[]"),
            with_defaults(
                r#"[{"allow":true,"access":"rwm"},{"allow":false,"type":"b","access":"w"}]"#,
            ),
            with_defaults(
                r#"[{"allow":true,"type":"c","major":4294967295,"minor":7,"access":"r"}]"#,
            ),
        ];
        for list in lists {
            let p = program(&reduce(&list).unwrap());
            match bpf::load_device_program(&p, "Apache", "paddock_test") {
                Ok(_) => {}
                Err(e) if format!("{e:#}").contains("Operation not permitted") => {
                    eprintln!("skipped: this process may not load bpf programs");
                    return;
                }
                Err(e) => panic!("{e:#}"),
            }
        }
    }
}
