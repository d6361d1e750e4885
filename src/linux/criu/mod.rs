//! Checkpoint/restore through CRIU's RPC (`criu swrk`, as runc drives it): the
//! version and feature checks, one dump or restore conversation, and CRIU's own
//! reason when it fails. rpc.rs encodes the messages, swrk.rs runs criu,
//! mounts.rs maps the container's mounts for CRIU.

pub mod mounts;
pub mod rpc;
pub mod swrk;

use std::fs;
use std::os::fd::BorrowedFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use rpc::{Features, Opts, ReqType, Request, Response};
use swrk::{CriuStdio, Notify, Swrk};

/// The oldest CRIU runc accepts (3.0).
pub const MIN_VERSION: i32 = 30000;

/// CRIU's version as major*10000 + minor*100 + sublevel.
pub fn version() -> Result<i32> {
    let mut s = Swrk::start(CriuStdio::Quiet, &[]).context("CRIU version check failed")?;
    let resp = s
        .call(&Request::Version, ReqType::Version, &mut |_, _, _| Ok(()))
        .context("CRIU version check failed")?;
    s.finish(ReqType::Version)
        .context("CRIU version check failed")?;
    resp.version
        .context("CRIU version check failed: no version in criu's answer")
}

/// runc's "CRIU version X must be Y or higher".
pub fn check_version(have: i32, min: i32) -> Result<()> {
    if have < min {
        bail!("CRIU version {have} must be {min} or higher");
    }
    Ok(())
}

/// Asks CRIU (and the kernel under it) for `want`; what is missing is an error
/// naming it, as runc's "criu is missing features: [LazyPages]".
pub fn check_features(want: Features) -> Result<()> {
    let mut s = Swrk::start(CriuStdio::Quiet, &[]).context("CRIU feature check failed")?;
    let resp = s
        .call(
            &Request::FeatureCheck(want),
            ReqType::FeatureCheck,
            &mut |_, _, _| Ok(()),
        )
        .context("CRIU feature check failed")?;
    s.finish(ReqType::FeatureCheck)
        .context("CRIU feature check failed")?;
    let have = resp.features.unwrap_or_default();
    let mut missing = Vec::new();
    if want.mem_track && !have.mem_track {
        missing.push("MemTrack");
    }
    if want.lazy_pages && !have.lazy_pages {
        missing.push("LazyPages");
    }
    if !missing.is_empty() {
        bail!("criu is missing features: [{}]", missing.join(" "));
    }
    Ok(())
}

/// One dump, pre-dump or restore. `started` runs once criu's pid is known and may
/// complete `opts` (a restore puts criu into the container's cgroup there). On
/// failure the error ends with CRIU's last error line from `log` when CRIU's
/// answer did not say why.
pub struct Job<'a> {
    pub kind: ReqType,
    pub opts: Opts,
    pub stdio: CriuStdio,
    pub extra_fds: Vec<BorrowedFd<'a>>,
    pub log: &'a Path,
}

impl Job<'_> {
    pub fn run(
        mut self,
        started: &mut dyn FnMut(i32, &mut Opts) -> Result<()>,
        notify: &mut Notify<'_>,
    ) -> Result<Response> {
        let mut s = Swrk::start(self.stdio, &self.extra_fds)?;
        started(s.pid(), &mut self.opts)?;
        crate::logger::debug(&format!("criu {} with {:?}", self.kind.name(), self.opts));
        let result = s.call(&Request::Run(self.kind, &self.opts), self.kind, notify);
        let errmsg = s.errmsg.take();
        let result = result.and_then(|resp| s.finish(self.kind).map(|()| resp));
        result.map_err(|e| match errmsg.or_else(|| log_reason(self.log)) {
            Some(why) if !format!("{e:#}").contains(&why) => anyhow::anyhow!("{e:#}: {why}"),
            _ => e,
        })
    }
}

/// CRIU's last error line in its log file; the lines around it go to the debug log.
fn log_reason(log: &Path) -> Option<String> {
    let text = fs::read_to_string(log).ok()?;
    if crate::logger::debug_enabled() {
        for l in text.lines().filter(|l| l.contains("Error")) {
            crate::logger::debug(&format!("{}: {l}", log.display()));
        }
    }
    swrk::last_error_line(&text)
}
