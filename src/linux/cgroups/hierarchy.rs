//! Which cgroup hierarchies this host has, read from /proc/self/mountinfo:
//! v1 (one mount per controller set), hybrid (v1 plus a cgroup2 "unified"
//! mount) or pure v2 (one cgroup2 mount).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hierarchy {
    pub mount: PathBuf,
    /// v1: the controllers of this mount ("cpu", "memory", "name=systemd", ...);
    /// v2: empty (the controllers are in cgroup.controllers).
    pub controllers: Vec<String>,
    pub v2: bool,
    /// Mount data that names this same hierarchy again, e.g. "cpu,cpuacct" or
    /// "xattr,name=systemd" (the super options without rw/ro/release_agent).
    pub options: String,
}

/// Mount points of every cgroup hierarchy in this mount namespace, each
/// filesystem once (bind mounts of a hierarchy elsewhere are skipped). Read
/// once per process: mountinfo lists every host mount, and the layout does not
/// change while a command runs. A container's init inherits the parent's copy.
pub fn hierarchies() -> Result<Vec<Hierarchy>> {
    static CACHE: OnceLock<Vec<Hierarchy>> = OnceLock::new();
    if let Some(h) = CACHE.get() {
        return Ok(h.clone());
    }
    super::own::record_runtime_ns();
    let info = read_kernel_text("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    Ok(CACHE.get_or_init(|| parse(&info)).clone())
}

/// A /proc or cgroupfs text file in as few reads as the kernel allows: these report
/// size 0, so `fs::read_to_string` stats the file, then reads 32 bytes and doubles.
pub(crate) fn read_kernel_text(path: impl AsRef<Path>) -> io::Result<String> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 8192];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(len * 2, 0);
        }
        match f.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).map_err(|e| io::Error::new(ErrorKind::InvalidData, e))
}

pub fn parse(mountinfo: &str) -> Vec<Hierarchy> {
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split_whitespace().collect();
        let post: Vec<&str> = post.split_whitespace().collect();
        let (Some(dev), Some(root), Some(mnt), Some(fstype)) =
            (pre.get(2), pre.get(3), pre.get(4), post.first())
        else {
            continue;
        };
        if !matches!(*fstype, "cgroup" | "cgroup2") || *root != "/" || !seen.insert(*dev) {
            continue;
        }
        let v2 = *fstype == "cgroup2";
        let super_options = post.get(2).copied().unwrap_or_default();
        let options: Vec<&str> = super_options
            .split(',')
            .filter(|o| !matches!(*o, "rw" | "ro") && !o.starts_with("release_agent="))
            .collect();
        let controllers = if v2 {
            Vec::new()
        } else {
            options
                .iter()
                .filter(|c| **c != "xattr" && !c.contains('/'))
                .map(|c| c.to_string())
                .collect()
        };
        out.push(Hierarchy {
            mount: PathBuf::from(unescape_octal(mnt)),
            controllers,
            v2,
            options: options.join(","),
        });
    }
    out
}

/// mountinfo writes space, tab, newline and backslash as `\ooo`.
pub(crate) fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let digits = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match digits {
            Some(d) if b[i] == b'\\' => {
                out.push(
                    d.iter()
                        .fold(0u8, |acc, c| acc.wrapping_mul(8).wrapping_add(c - b'0')),
                );
                i += 4;
            }
            _ => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Pure v2: a cgroup2 hierarchy and no v1 one.
pub fn is_pure_v2(h: &[Hierarchy]) -> bool {
    h.iter().any(|h| h.v2) && h.iter().all(|h| h.v2)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,release_agent=/x,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
51 27 0:29 / /tmp/x rw - cgroup cgroup rw,cpu
52 27 0:36 /sub /tmp/y rw - cgroup cgroup rw,pids
";

    #[test]
    fn hybrid_layout() {
        let h = parse(HYBRID);
        assert_eq!(h.len(), 4);
        assert_eq!(h[0].controllers, ["cpu"]);
        assert_eq!(h[1].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h[2].controllers, ["name=systemd"]);
        assert_eq!(h[1].options, "cpu,cpuacct");
        assert_eq!(h[2].options, "xattr,name=systemd");
        assert!(h[3].v2);
        assert_eq!(h[3].options, "");
        assert!(!is_pure_v2(&h));
    }

    #[test]
    fn read_kernel_text_reads_past_its_first_buffer() {
        let path = std::env::temp_dir().join(format!("paddock-read-proc-{}", std::process::id()));
        let text: String = (0..3000).map(|i| format!("{i}\n")).collect();
        std::fs::write(&path, &text).unwrap();
        let got = read_kernel_text(path.to_str().unwrap());
        std::fs::remove_file(&path).unwrap();
        assert_eq!(got.unwrap(), text);
        assert!(read_kernel_text("/proc/self/mountinfo")
            .unwrap()
            .contains(" - "));
    }

    #[test]
    fn pure_v2_layout() {
        let h = parse("30 23 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n");
        assert_eq!(h.len(), 1);
        assert!(is_pure_v2(&h));
    }
}
