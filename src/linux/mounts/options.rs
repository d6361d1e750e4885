//! `options` of a mount in config.json: fstab-style names turned into mount(2)
//! flags, propagation, recursive mount_setattr(2) attributes and filesystem data.

use nix::mount::MsFlags;

/// Parsed `options` of one mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags the options set (never MS_BIND/MS_REC; see `is_bind`).
    pub flags: MsFlags,
    /// Flags the options explicitly clear ("rw", "suid", "dev", ...).
    pub clear: MsFlags,
    /// Propagation to apply after mounting (MS_SHARED etc., with MS_REC for "r" forms).
    pub propagation: MsFlags,
    /// `mount_setattr(2)` attributes set / cleared recursively ("rro", "rnosuid", ...).
    pub attr_set: u64,
    pub attr_clr: u64,
    /// Unknown options, joined with ',', passed to the filesystem.
    pub data: String,
    pub is_bind: bool,
    pub is_recursive_bind: bool,
    /// "tmpcopyup": a tmpfs starts with a copy of what it covers.
    pub copy_up: bool,
}

#[derive(Clone, Copy)]
enum Effect {
    Set(MsFlags),
    Clear(MsFlags),
    Propagate(MsFlags),
    AttrSet(u64),
    AttrClear(u64),
    /// One of the MOUNT_ATTR__ATIME values (an enum inside a bit mask).
    AttrAtime(u64),
    Bind {
        recursive: bool,
    },
    CopyUp,
    /// Understood but not acted on (runc extensions handled elsewhere or not at all).
    Ignore,
}

pub(crate) const MS_NOSYMFOLLOW: MsFlags = MsFlags::from_bits_retain(libc::MS_NOSYMFOLLOW);

/// (sets, clears, flag) pairs of plain mount(2) flags.
const FLAG_OPTIONS: &[(&str, &str, MsFlags)] = &[
    ("ro", "rw", MsFlags::MS_RDONLY),
    ("nosuid", "suid", MsFlags::MS_NOSUID),
    ("nodev", "dev", MsFlags::MS_NODEV),
    ("noexec", "exec", MsFlags::MS_NOEXEC),
    ("sync", "async", MsFlags::MS_SYNCHRONOUS),
    ("mand", "nomand", MsFlags::MS_MANDLOCK),
    ("noatime", "atime", MsFlags::MS_NOATIME),
    ("nodiratime", "diratime", MsFlags::MS_NODIRATIME),
    ("relatime", "norelatime", MsFlags::MS_RELATIME),
    ("strictatime", "nostrictatime", MsFlags::MS_STRICTATIME),
    ("lazytime", "nolazytime", MsFlags::MS_LAZYTIME),
    ("iversion", "noiversion", MsFlags::MS_I_VERSION),
    ("silent", "loud", MsFlags::MS_SILENT),
    ("nosymfollow", "symfollow", MS_NOSYMFOLLOW),
];

/// (sets, clears, attribute) pairs of recursive mount_setattr(2) attributes.
const ATTR_OPTIONS: &[(&str, &str, u64)] = &[
    ("rro", "rrw", libc::MOUNT_ATTR_RDONLY),
    ("rnosuid", "rsuid", libc::MOUNT_ATTR_NOSUID),
    ("rnodev", "rdev", libc::MOUNT_ATTR_NODEV),
    ("rnoexec", "rexec", libc::MOUNT_ATTR_NOEXEC),
    ("rnodiratime", "rdiratime", libc::MOUNT_ATTR_NODIRATIME),
    ("rnosymfollow", "rsymfollow", libc::MOUNT_ATTR_NOSYMFOLLOW),
];

fn effect(option: &str) -> Option<Effect> {
    if let Some((set, _, flag)) = FLAG_OPTIONS
        .iter()
        .find(|(s, c, _)| *s == option || *c == option)
    {
        return Some(if *set == option {
            Effect::Set(*flag)
        } else {
            Effect::Clear(*flag)
        });
    }
    if let Some((set, _, attr)) = ATTR_OPTIONS
        .iter()
        .find(|(s, c, _)| *s == option || *c == option)
    {
        return Some(if *set == option {
            Effect::AttrSet(*attr)
        } else {
            Effect::AttrClear(*attr)
        });
    }
    if let Some(flags) = propagation_flags(option) {
        return Some(Effect::Propagate(flags));
    }
    OTHER_OPTIONS
        .iter()
        .find(|(name, _)| *name == option)
        .map(|(_, effect)| *effect)
}

/// Options that are neither flag pairs nor propagation.
const OTHER_OPTIONS: &[(&str, Effect)] = &[
    ("defaults", Effect::Ignore),
    ("dirsync", Effect::Set(MsFlags::MS_DIRSYNC)),
    ("remount", Effect::Set(MsFlags::MS_REMOUNT)),
    ("bind", Effect::Bind { recursive: false }),
    ("rbind", Effect::Bind { recursive: true }),
    ("rnoatime", Effect::AttrAtime(libc::MOUNT_ATTR_NOATIME)),
    (
        "rstrictatime",
        Effect::AttrAtime(libc::MOUNT_ATTR_STRICTATIME),
    ),
    // Leaving noatime/strictatime means the kernel default, relatime.
    ("rrelatime", Effect::AttrAtime(libc::MOUNT_ATTR_RELATIME)),
    ("ratime", Effect::AttrAtime(libc::MOUNT_ATTR_RELATIME)),
    ("rnorelatime", Effect::AttrAtime(libc::MOUNT_ATTR_RELATIME)),
    (
        "rnostrictatime",
        Effect::AttrAtime(libc::MOUNT_ATTR_RELATIME),
    ),
    ("tmpcopyup", Effect::CopyUp),
    // crun's way to turn copy-up off: off is the default here.
    ("notmpcopyup", Effect::Ignore),
    // Applied by the parent to the tree init attaches (idmap.rs).
    ("idmap", Effect::Ignore),
    ("ridmap", Effect::Ignore),
];

/// Propagation types; each also has a recursive "r" form.
const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("shared", MsFlags::MS_SHARED),
    ("slave", MsFlags::MS_SLAVE),
    ("unbindable", MsFlags::MS_UNBINDABLE),
];

/// MS_* propagation flags for "private", "rshared", ... ("r": recursive).
pub(crate) fn propagation_flags(name: &str) -> Option<MsFlags> {
    let (base, recursive) = match name.strip_prefix('r') {
        Some(base) => (base, MsFlags::MS_REC),
        None => (name, MsFlags::empty()),
    };
    let (_, flag) = PROPAGATION.iter().find(|(n, _)| *n == base)?;
    Some(*flag | recursive)
}

/// Every option name this parser acts on (anything else is filesystem data),
/// sorted: the `mountOptions` of `paddock features`.
pub(crate) fn known_options() -> Vec<String> {
    let pairs = FLAG_OPTIONS.iter().flat_map(|(s, c, _)| [*s, *c]);
    let attrs = ATTR_OPTIONS.iter().flat_map(|(s, c, _)| [*s, *c]);
    let propagation = PROPAGATION.iter().map(|(n, _)| *n);
    let mut names: Vec<String> = pairs
        .chain(attrs)
        .chain(OTHER_OPTIONS.iter().map(|(n, _)| *n))
        .map(str::to_string)
        .chain(propagation.flat_map(|n| [n.to_string(), format!("r{n}")]))
        .collect();
    names.sort();
    names
}

/// Turns fstab-style options into mount(2) flags, propagation, recursive
/// attributes and filesystem data. Later options override earlier ones.
pub fn parse_options(options: &[String]) -> MountOptions {
    let mut o = MountOptions {
        flags: MsFlags::empty(),
        clear: MsFlags::empty(),
        propagation: MsFlags::empty(),
        attr_set: 0,
        attr_clr: 0,
        data: String::new(),
        is_bind: false,
        is_recursive_bind: false,
        copy_up: false,
    };
    let mut data: Vec<&str> = Vec::new();
    for option in options {
        match effect(option) {
            Some(Effect::Set(f)) => {
                o.flags.insert(f);
                o.clear.remove(f);
            }
            Some(Effect::Clear(f)) => {
                o.flags.remove(f);
                o.clear.insert(f);
            }
            Some(Effect::Propagate(f)) => o.propagation = f,
            Some(Effect::AttrSet(a)) => {
                o.attr_set |= a;
                o.attr_clr &= !a;
            }
            Some(Effect::AttrClear(a)) => {
                o.attr_clr |= a;
                o.attr_set &= !a;
            }
            Some(Effect::AttrAtime(a)) => {
                // The kernel wants the whole atime mask cleared to change it.
                o.attr_clr |= libc::MOUNT_ATTR__ATIME;
                o.attr_set = (o.attr_set & !libc::MOUNT_ATTR__ATIME) | a;
            }
            Some(Effect::Bind { recursive }) => {
                o.is_bind = true;
                o.is_recursive_bind |= recursive;
            }
            Some(Effect::CopyUp) => o.copy_up = true,
            Some(Effect::Ignore) => {}
            None => data.push(option),
        }
    }
    o.data = data.join(",");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(list: &[&str]) -> MountOptions {
        parse_options(&list.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn parses_flags_data_and_bind() {
        let o = opts(&[
            "rbind", "ro", "nosuid", "nodev", "mode=755", "size=64k", "rprivate",
        ]);
        assert!(o.is_bind && o.is_recursive_bind);
        assert_eq!(
            o.flags,
            MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV
        );
        assert_eq!(o.propagation, MsFlags::MS_PRIVATE | MsFlags::MS_REC);
        assert_eq!(o.data, "mode=755,size=64k");
        assert_eq!((o.attr_set, o.attr_clr), (0, 0));
    }

    #[test]
    fn later_options_win() {
        let o = opts(&["ro", "rw", "suid", "nosuid", "defaults", "tmpcopyup"]);
        assert!(o.copy_up);
        assert_eq!(o.flags, MsFlags::MS_NOSUID);
        assert_eq!(o.clear, MsFlags::MS_RDONLY);
        assert_eq!(o.data, "");
        let o = opts(&["bind", "remount"]);
        assert_eq!((o.flags, o.data.as_str()), (MsFlags::MS_REMOUNT, ""));
        let o = opts(&["bind", "shared", "slave"]);
        assert!(o.is_bind && !o.is_recursive_bind);
        assert_eq!(o.propagation, MsFlags::MS_SLAVE);
    }

    #[test]
    fn parses_recursive_attributes() {
        let o = opts(&["rro", "rnosuid", "rnoexec", "rexec", "rnoatime"]);
        let set = libc::MOUNT_ATTR_RDONLY | libc::MOUNT_ATTR_NOSUID | libc::MOUNT_ATTR_NOATIME;
        assert_eq!(o.attr_set, set);
        assert_eq!(
            o.attr_clr,
            libc::MOUNT_ATTR_NOEXEC | libc::MOUNT_ATTR__ATIME
        );
        let o = opts(&["rnoatime", "ratime"]);
        assert_eq!((o.attr_set, o.attr_clr), (0, libc::MOUNT_ATTR__ATIME));
        assert!(o.flags.is_empty());
    }

    #[test]
    fn parses_propagation_names() {
        assert_eq!(
            propagation_flags("rslave"),
            Some(MsFlags::MS_SLAVE | MsFlags::MS_REC)
        );
        assert_eq!(
            propagation_flags("unbindable"),
            Some(MsFlags::MS_UNBINDABLE)
        );
        assert_eq!(propagation_flags("rro"), None);
        assert_eq!(propagation_flags("r"), None);
    }

    #[test]
    fn every_known_option_has_an_effect() {
        let known = known_options();
        for name in &known {
            assert!(effect(name).is_some(), "{name}");
        }
        assert!(known.windows(2).all(|w| w[0] < w[1]), "sorted, unique");
        assert!(known.iter().any(|n| n == "runbindable"));
        assert_eq!(opts(&["acl"]).data, "acl");
    }
}
