//! `process.rlimits`: validation and setrlimit.

use anyhow::{bail, Result};
use nix::sys::resource::{setrlimit, Resource};
use oci_spec::runtime::{PosixRlimit, PosixRlimitType};

/// Soft must not exceed hard; each type may appear once.
pub fn validate(rlimits: &[PosixRlimit]) -> Result<()> {
    for (index, rlimit) in rlimits.iter().enumerate() {
        let typ = rlimit.typ();
        if rlimit.soft() > rlimit.hard() {
            bail!(
                "process.rlimits[{index}]: {typ} soft limit {} exceeds hard limit {}",
                rlimit.soft(),
                rlimit.hard()
            );
        }
        if let Some(first) = rlimits[..index].iter().position(|r| r.typ() == typ) {
            bail!("process.rlimits[{index}]: duplicate {typ} (already set by process.rlimits[{first}])");
        }
    }
    Ok(())
}

/// Sets each limit on the calling process, in order.
pub fn apply(rlimits: &[PosixRlimit]) -> Result<()> {
    for rlimit in rlimits {
        set_one(rlimit)?;
    }
    Ok(())
}

fn set_one(rlimit: &PosixRlimit) -> Result<()> {
    let typ = rlimit.typ();
    if let Err(errno) = setrlimit(resource_of(typ), rlimit.soft(), rlimit.hard()) {
        bail!("setrlimit {typ}: {}", errno.desc());
    }
    Ok(())
}

fn resource_of(typ: PosixRlimitType) -> Resource {
    match typ {
        PosixRlimitType::RlimitCpu => Resource::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => Resource::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => Resource::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => Resource::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => Resource::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => Resource::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => Resource::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => Resource::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => Resource::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => Resource::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => Resource::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => Resource::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => Resource::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => Resource::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => Resource::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => Resource::RLIMIT_RTTIME,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Vec<PosixRlimit> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn soft_above_hard_is_rejected() {
        let rlimits = parse(r#"[{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]"#);
        let err = validate(&rlimits).unwrap_err().to_string();
        assert_eq!(
            err,
            "process.rlimits[0]: RLIMIT_NOFILE soft limit 2048 exceeds hard limit 1024"
        );
    }

    #[test]
    fn duplicates_are_rejected() {
        let rlimits = parse(
            r#"[{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
                {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]"#,
        );
        let err = validate(&rlimits).unwrap_err().to_string();
        assert_eq!(
            err,
            "process.rlimits[2]: duplicate RLIMIT_NOFILE (already set by process.rlimits[0])"
        );
    }

    #[test]
    fn valid_list_passes_and_infinity_is_allowed() {
        let rlimits = parse(
            r#"[{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 1024},
                {"type": "RLIMIT_CORE", "soft": 18446744073709551615, "hard": 18446744073709551615}]"#,
        );
        validate(&rlimits).unwrap();
    }

    #[test]
    fn apply_sets_the_limit() {
        // Lowering a soft limit below the hard one is allowed to anyone.
        let (_, hard) = nix::sys::resource::getrlimit(Resource::RLIMIT_CORE).unwrap();
        let json = format!(r#"[{{"type": "RLIMIT_CORE", "soft": 0, "hard": {hard}}}]"#);
        apply(&parse(&json)).unwrap();
        assert_eq!(
            nix::sys::resource::getrlimit(Resource::RLIMIT_CORE).unwrap(),
            (0, hard)
        );
    }
}
