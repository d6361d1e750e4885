//! The few messages of CRIU's RPC (criu/images/rpc.proto, proto2) that paddock
//! sends and reads, encoded by hand: the wire format is varints and
//! length-prefixed bytes, and a protobuf crate with generated code would cost the
//! static binary more than these lines. Field numbers are rpc.proto's.

use anyhow::{bail, Result};

/// criu_req_type
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReqType {
    Dump = 1,
    Restore = 2,
    PreDump = 4,
    Notify = 6,
    FeatureCheck = 9,
    Version = 10,
}

impl ReqType {
    fn from_wire(v: u64) -> Option<ReqType> {
        use ReqType::*;
        [Dump, Restore, PreDump, Notify, FeatureCheck, Version]
            .into_iter()
            .find(|t| *t as u64 == v)
    }

    /// The name runc prints in "criu failed: type DUMP errno 0".
    pub fn name(self) -> &'static str {
        match self {
            ReqType::Dump => "DUMP",
            ReqType::Restore => "RESTORE",
            ReqType::PreDump => "PRE_DUMP",
            ReqType::Notify => "NOTIFY",
            ReqType::FeatureCheck => "FEATURE_CHECK",
            ReqType::Version => "VERSION",
        }
    }
}

/// criu_cg_mode
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgMode {
    Ignore = 0,
    Soft = 3,
    Full = 4,
    Strict = 5,
    Default = 6,
}

impl CgMode {
    /// `--manage-cgroups-mode`, as runc spells it (empty: CRIU's default).
    pub fn parse(s: &str) -> Result<CgMode> {
        Ok(match s {
            "" => CgMode::Default,
            "soft" => CgMode::Soft,
            "full" => CgMode::Full,
            "strict" => CgMode::Strict,
            "ignore" => CgMode::Ignore,
            _ => bail!("invalid manage-cgroups-mode value"),
        })
    }
}

/// criu_opts: only the fields paddock sets; `None`/empty fields are not sent.
#[derive(Debug, Default)]
pub struct Opts {
    pub images_dir_fd: i32,
    pub pid: Option<i32>,
    pub leave_running: bool,
    pub ext_unix_sk: bool,
    pub tcp_established: bool,
    pub evasive_devices: bool,
    pub shell_job: bool,
    pub file_locks: bool,
    pub log_level: i32,
    pub log_file: String,
    /// Page server (address, port).
    pub page_server: Option<(String, i32)>,
    pub root: Option<String>,
    pub parent_img: Option<String>,
    pub track_mem: bool,
    pub auto_dedup: bool,
    pub work_dir_fd: Option<i32>,
    pub link_remap: bool,
    /// (key, val) pairs: a mount's path inside, and what it maps to.
    pub ext_mnt: Vec<(String, String)>,
    /// (controller, path); no controller means every controller.
    pub cg_root: Vec<(Option<String>, String)>,
    pub rst_sibling: bool,
    pub inherit_fd: Vec<(String, i32)>,
    pub manage_cgroups_mode: Option<CgMode>,
    pub external: Vec<String>,
    pub empty_ns: u32,
    /// (namespace name, path) for namespaces the restored tree joins.
    pub join_ns: Vec<(String, String)>,
    pub freeze_cgroup: Option<String>,
    pub tcp_skip_in_flight: bool,
    pub lazy_pages: bool,
    pub status_fd: Option<i32>,
    pub orphan_pts_master: bool,
    pub config_file: Option<String>,
    pub lsm_profile: Option<String>,
    pub lsm_mount_context: Option<String>,
}

impl Opts {
    fn encode(&self) -> Vec<u8> {
        let mut m = Enc::default();
        m.int32(1, self.images_dir_fd);
        if let Some(p) = self.pid {
            m.int32(2, p);
        }
        m.flag(3, self.leave_running);
        m.flag(4, self.ext_unix_sk);
        m.flag(5, self.tcp_established);
        m.flag(6, self.evasive_devices);
        m.flag(7, self.shell_job);
        m.flag(8, self.file_locks);
        m.int32(9, self.log_level);
        m.string(10, &self.log_file);
        if let Some((addr, port)) = &self.page_server {
            let mut ps = Enc::default();
            ps.string(1, addr);
            ps.int32(2, *port);
            m.bytes(11, &ps.0);
        }
        m.flag(12, true); // notify_scripts: paddock acts on the notifications
        m.opt_string(13, &self.root);
        m.opt_string(14, &self.parent_img);
        m.flag(15, self.track_mem);
        m.flag(16, self.auto_dedup);
        if let Some(fd) = self.work_dir_fd {
            m.int32(17, fd);
        }
        m.flag(18, self.link_remap);
        for (k, v) in &self.ext_mnt {
            m.pair(23, k, v);
        }
        m.flag(24, true); // manage_cgroups, for CRIUs that predate the mode
        for (ctrl, path) in &self.cg_root {
            let mut cg = Enc::default();
            if let Some(c) = ctrl {
                cg.string(1, c);
            }
            cg.string(2, path);
            m.bytes(25, &cg.0);
        }
        m.flag(26, self.rst_sibling);
        for (key, fd) in &self.inherit_fd {
            let mut i = Enc::default();
            i.string(1, key);
            i.int32(2, *fd);
            m.bytes(27, &i.0);
        }
        if let Some(mode) = self.manage_cgroups_mode {
            m.varint_field(34, mode as u64);
        }
        for e in &self.external {
            m.string(37, e);
        }
        m.varint_field(38, u64::from(self.empty_ns));
        for (ns, file) in &self.join_ns {
            m.pair(39, ns, file);
        }
        m.opt_string(44, &self.freeze_cgroup);
        m.flag(46, self.tcp_skip_in_flight);
        m.flag(48, self.lazy_pages);
        if let Some(fd) = self.status_fd {
            m.int32(49, fd);
        }
        m.flag(50, self.orphan_pts_master);
        m.opt_string(51, &self.config_file);
        m.opt_string(53, &self.lsm_profile);
        m.opt_string(63, &self.lsm_mount_context);
        m.0
    }
}

/// criu_features: what a FEATURE_CHECK asks for or answers.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    pub mem_track: bool,
    pub lazy_pages: bool,
}

/// A criu_req.
pub enum Request<'a> {
    Version,
    FeatureCheck(Features),
    Run(ReqType, &'a Opts),
    /// The answer to a notification: carry on.
    NotifyDone,
}

impl Request<'_> {
    pub fn encode(&self) -> Vec<u8> {
        let mut m = Enc::default();
        match self {
            Request::Version => m.varint_field(1, ReqType::Version as u64),
            Request::FeatureCheck(f) => {
                m.varint_field(1, ReqType::FeatureCheck as u64);
                let mut feat = Enc::default();
                feat.flag(1, f.mem_track);
                feat.flag(2, f.lazy_pages);
                m.bytes(5, &feat.0);
            }
            Request::Run(t, opts) => {
                m.varint_field(1, *t as u64);
                m.bytes(2, &opts.encode());
            }
            Request::NotifyDone => {
                m.varint_field(1, ReqType::Notify as u64);
                m.flag(3, true);
            }
        }
        m.0
    }
}

/// A criu_resp, the parts paddock reads.
#[derive(Debug, Default)]
pub struct Response {
    pub kind: Option<ReqType>,
    pub success: bool,
    pub restored_pid: Option<i32>,
    /// criu_notify: (script name, pid).
    pub notify: Option<(String, i32)>,
    pub cr_errno: i32,
    pub features: Option<Features>,
    pub cr_errmsg: Option<String>,
    /// major * 10000 + minor * 100 + sublevel, as runc compares versions.
    pub version: Option<i32>,
}

impl Response {
    pub fn decode(buf: &[u8]) -> Result<Response> {
        let mut r = Response::default();
        for f in Fields(buf) {
            match f? {
                (1, Val::Int(v)) => r.kind = ReqType::from_wire(v),
                (2, Val::Int(v)) => r.success = v != 0,
                (4, Val::Bytes(b)) => {
                    for f in Fields(b) {
                        if let (1, Val::Int(v)) = f? {
                            r.restored_pid = Some(v as i32);
                        }
                    }
                }
                (5, Val::Bytes(b)) => {
                    let (mut script, mut pid) = (String::new(), 0);
                    for f in Fields(b) {
                        match f? {
                            (1, Val::Bytes(s)) => script = String::from_utf8_lossy(s).into_owned(),
                            (2, Val::Int(v)) => pid = v as i32,
                            _ => {}
                        }
                    }
                    r.notify = Some((script, pid));
                }
                (7, Val::Int(v)) => r.cr_errno = v as i32,
                (8, Val::Bytes(b)) => {
                    let mut feat = Features::default();
                    for f in Fields(b) {
                        match f? {
                            (1, Val::Int(v)) => feat.mem_track = v != 0,
                            (2, Val::Int(v)) => feat.lazy_pages = v != 0,
                            _ => {}
                        }
                    }
                    r.features = Some(feat);
                }
                (9, Val::Bytes(s)) => r.cr_errmsg = Some(String::from_utf8_lossy(s).into_owned()),
                (10, Val::Bytes(b)) => {
                    let (mut major, mut minor, mut sub) = (0, 0, 0);
                    for f in Fields(b) {
                        match f? {
                            (1, Val::Int(v)) => major = v as i32,
                            (2, Val::Int(v)) => minor = v as i32,
                            (4, Val::Int(v)) => sub = v as i32,
                            _ => {}
                        }
                    }
                    r.version = Some(major * 10000 + minor * 100 + sub);
                }
                _ => {}
            }
        }
        Ok(r)
    }
}

#[derive(Default)]
struct Enc(Vec<u8>);

impl Enc {
    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.0.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
    }

    fn varint_field(&mut self, field: u32, v: u64) {
        self.varint(u64::from(field) << 3);
        self.varint(v);
    }

    /// int32: negative values are sign-extended to ten bytes, as protobuf does.
    fn int32(&mut self, field: u32, v: i32) {
        self.varint_field(field, i64::from(v) as u64);
    }

    /// An optional bool, sent only when set.
    fn flag(&mut self, field: u32, v: bool) {
        if v {
            self.varint_field(field, 1);
        }
    }

    fn bytes(&mut self, field: u32, b: &[u8]) {
        self.varint((u64::from(field) << 3) | 2);
        self.varint(b.len() as u64);
        self.0.extend_from_slice(b);
    }

    fn string(&mut self, field: u32, s: &str) {
        self.bytes(field, s.as_bytes());
    }

    fn opt_string(&mut self, field: u32, s: &Option<String>) {
        if let Some(s) = s {
            self.string(field, s);
        }
    }

    /// A nested message of two strings (fields 1 and 2): ext_mount_map, join_namespace.
    fn pair(&mut self, field: u32, a: &str, b: &str) {
        let mut p = Enc::default();
        p.string(1, a);
        p.string(2, b);
        self.bytes(field, &p.0);
    }
}

enum Val<'a> {
    Int(u64),
    Bytes(&'a [u8]),
    Fixed,
}

/// Iterates over (field number, value) of one encoded message.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&b, rest)) = self.0.split_first() else {
                bail!("criu response: truncated varint");
            };
            self.0 = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        bail!("criu response: varint too long")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if self.0.len() < n {
            bail!("criu response: truncated field");
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }

    fn field(&mut self) -> Result<(u32, Val<'a>)> {
        let key = self.varint()?;
        let val = match key & 7 {
            0 => Val::Int(self.varint()?),
            1 => self.take(8).map(|_| Val::Fixed)?,
            2 => {
                let n = self.varint()?;
                Val::Bytes(self.take(usize::try_from(n)?)?)
            }
            5 => self.take(4).map(|_| Val::Fixed)?,
            w => bail!("criu response: unknown wire type {w}"),
        };
        Ok(((key >> 3) as u32, val))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u32, Val<'a>)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let r = self.field();
        if r.is_err() {
            self.0 = &[];
        }
        Some(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_request_is_the_protobuf_bytes() {
        assert_eq!(Request::Version.encode(), [0x08, 10]);
        assert_eq!(Request::NotifyDone.encode(), [0x08, 6, 0x18, 1]);
    }

    #[test]
    fn negative_int32_is_ten_bytes() {
        let mut e = Enc::default();
        e.int32(1, -1);
        assert_eq!(
            e.0,
            [0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]
        );
    }

    #[test]
    fn opts_encode_nested_and_repeated_fields() {
        let o = Opts {
            images_dir_fd: 5,
            log_file: "d".into(),
            ext_mnt: vec![("/a".into(), "/b".into())],
            ..Opts::default()
        };
        let b = o.encode();
        // images_dir_fd = 5, log_level = 0, log_file = "d", notify_scripts
        assert!(b.starts_with(&[0x08, 5, 0x48, 0, 0x52, 1, b'd', 0x60, 1]));
        // ext_mnt (field 23, wire type 2): key "/a", val "/b"
        let ext = [0xba, 0x01, 8, 0x0a, 2, b'/', b'a', 0x12, 2, b'/', b'b'];
        assert!(b.windows(ext.len()).any(|w| w == ext));
    }

    #[test]
    fn responses_decode() {
        // type NOTIFY, success, notify { script "post-restore", pid 42 }
        let mut n = Enc::default();
        n.string(1, "post-restore");
        n.int32(2, 42);
        let mut m = Enc::default();
        m.varint_field(1, 6);
        m.varint_field(2, 1);
        m.bytes(5, &n.0);
        m.string(9, "boom");
        let r = Response::decode(&m.0).unwrap();
        assert_eq!(r.kind, Some(ReqType::Notify));
        assert!(r.success);
        assert_eq!(r.notify, Some(("post-restore".to_string(), 42)));
        assert_eq!(r.cr_errmsg.as_deref(), Some("boom"));
        // version 3.17.1
        let mut v = Enc::default();
        v.int32(1, 3);
        v.int32(2, 17);
        v.int32(4, 1);
        let mut m = Enc::default();
        m.varint_field(1, 10);
        m.varint_field(2, 1);
        m.bytes(10, &v.0);
        assert_eq!(Response::decode(&m.0).unwrap().version, Some(31701));
        assert!(Response::decode(&[0x0a, 5, 1]).is_err());
    }
}
