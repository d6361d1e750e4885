//! `linux.seccomp.flags` as runc 1.5 takes them:
//! - absent (not even `[]`): SECCOMP_FILTER_FLAG_SPEC_ALLOW when the host supports it;
//! - SECCOMP_FILTER_FLAG_TSYNC: accepted and not passed on (the runtime is single
//!   threaded when it loads the filter, so there is nothing to synchronise);
//! - LOG and SPEC_ALLOW: applied, or refused when libseccomp's API level (which
//!   reflects the kernel) is too low, with runc's wording;
//! - SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV needs libseccomp 2.6: the parser refuses it
//!   with that reason (see names.rs); unknown names likewise.

use anyhow::{anyhow, Result};
use libseccomp::ScmpVersion;
use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompFilterFlag as Flag};

/// The flags for seccomp(SECCOMP_SET_MODE_FILTER) that the profile asks for.
pub(super) fn filter_flags(s: &LinuxSeccomp) -> Result<libc::c_ulong> {
    let api = libseccomp::get_api();
    let Some(list) = s.flags() else {
        return Ok(if api >= 4 {
            libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW
        } else {
            0
        });
    };
    let mut all = 0;
    for (i, flag) in list.iter().enumerate() {
        all |= bits(*flag, api).map_err(|why| anyhow!("linux.seccomp.flags[{i}]: {why}"))?;
    }
    Ok(all)
}

/// The seccomp(2) bits of one flag, or runc's words for why this libseccomp (whose
/// API level reflects the kernel) cannot apply it.
fn bits(flag: Flag, api: u32) -> Result<libc::c_ulong, String> {
    match flag {
        Flag::SeccompFilterFlagTsync => Ok(0),
        Flag::SeccompFilterFlagLog if api < 3 => Err(format!(
            "error adding log flag to seccomp filter: {}",
            too_old("SetLogBit", 3, "2.4.0", api)
        )),
        Flag::SeccompFilterFlagLog => Ok(libc::SECCOMP_FILTER_FLAG_LOG),
        Flag::SeccompFilterFlagSpecAllow if api < 4 => Err(format!(
            "error adding SSB flag to seccomp filter: {}",
            too_old("SetSSB", 4, "2.5.0", api)
        )),
        Flag::SeccompFilterFlagSpecAllow => Ok(libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW),
    }
}

/// The known flags (`names::known_flags`) this libseccomp and kernel can apply, as
/// runc lists them: the `supportedFlags` of `paddock features`.
pub fn supported_flags() -> Vec<&'static str> {
    let api = libseccomp::get_api();
    super::names::known_flags()
        .into_iter()
        .filter(|name| {
            serde_json::from_value::<Flag>((*name).into()).is_ok_and(|f| bits(f, api).is_ok())
        })
        .collect()
}

/// runc's (libseccomp-golang's) text for a flag the library or kernel cannot apply.
pub(super) fn too_old(op: &str, min_api: u32, min_version: &str, api: u32) -> String {
    let version = ScmpVersion::current().map_or("unknown".to_string(), |v| v.to_string());
    format!(
        "{op} requires libseccomp >= {min_version} and API level >= {min_api} (current version: {version}, API level: {api})"
    )
}
