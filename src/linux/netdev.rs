//! linux.netDevices: host interfaces moved into the container's network namespace by
//! the runtime (the parent, which still sees the runtime's namespace), as runc 1.5 does:
//! set the link down, note its permanent global addresses, move and rename it in one
//! RTM_NEWLINK (IFLA_NET_NS_FD + IFLA_IFNAME), add the addresses back inside and set it
//! up. Nothing is done at delete: when the namespace goes, the kernel returns physical
//! devices to the initial namespace and destroys virtual ones.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Context, Result};

use super::namespaces;
use crate::spec::attrs::NetDevice;

const RTM_NEWLINK: u16 = 16;
const RTM_GETLINK: u16 = 18;
const RTM_NEWADDR: u16 = 20;
const RTM_GETADDR: u16 = 22;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_DUMP: u16 = 0x300;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_FD: u16 = 28;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;
const IFA_F_PERMANENT: u8 = 0x80;
const RT_SCOPE_UNIVERSE: u8 = 0;
const IFF_UP: u32 = 0x1;
const HEADER: usize = 16;

/// Moves each device into the namespace `netns` (named `ns_path` in errors).
pub fn move_all(
    devices: &BTreeMap<String, NetDevice>,
    netns: &OwnedFd,
    ns_path: &str,
) -> Result<()> {
    for (name, dev) in devices {
        move_one(name, dev, netns, ns_path)
            .with_context(|| format!("move netDevice {name} to namespace {ns_path}"))?;
    }
    Ok(())
}

/// An address of the device, as its RTM_NEWADDR needs it again.
struct Address {
    family: u8,
    prefix: u8,
    local: Vec<u8>,
}

fn move_one(name: &str, dev: &NetDevice, netns: &OwnedFd, ns_path: &str) -> Result<()> {
    let host = Netlink::open()?;
    let index = host
        .link_index(name)
        .with_context(|| format!("link not found for interface {name} on runtime namespace"))?;
    host.set_link(index, 0).context("fail to set link down")?;
    let addresses = host.addresses(index).context("fail to get ip addresses")?;
    let new_name = if dev.name.is_empty() {
        name
    } else {
        dev.name.as_str()
    };
    let mut msg = Message::new(RTM_NEWLINK, NLM_F_ACK);
    msg.ifinfo(index, 0, 0);
    msg.attr(IFLA_IFNAME, &c_string(new_name));
    msg.attr(IFLA_NET_NS_FD, &(netns.as_raw_fd() as u32).to_ne_bytes());
    host.call(msg).with_context(|| {
        format!("fail to move network device {name} to network namespace {ns_path}")
    })?;

    let inside = Netlink::open_in(netns)?;
    let index = inside.link_index(new_name).with_context(|| {
        format!("link not found for interface {new_name} on namespace {ns_path}")
    })?;
    for a in &addresses {
        inside.add_address(index, a).with_context(|| {
            format!(
                "fail to set up address {}/{} on namespace {ns_path}",
                show_ip(&a.local),
                a.prefix
            )
        })?;
    }
    inside
        .set_link(index, IFF_UP)
        .with_context(|| format!("fail to set up interface {new_name} on namespace {ns_path}"))
}

/// Sets `lo` up in the (new) network namespace we are in, as runc does for a
/// container with a network namespace of its own.
pub fn loopback_up() -> Result<()> {
    let nl = Netlink::open()?;
    let index = nl.link_index("lo").context("find lo")?;
    nl.set_link(index, IFF_UP).context("set lo up")
}

fn c_string(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    v
}

fn show_ip(ip: &[u8]) -> String {
    match ip.len() {
        4 => std::net::Ipv4Addr::new(ip[0], ip[1], ip[2], ip[3]).to_string(),
        16 => {
            let mut b = [0u8; 16];
            b.copy_from_slice(ip);
            std::net::Ipv6Addr::from(b).to_string()
        }
        _ => format!("{ip:?}"),
    }
}

/// One rtnetlink request being built: header, fixed part, attributes.
struct Message {
    buf: Vec<u8>,
}

impl Message {
    fn new(kind: u16, flags: u16) -> Message {
        let mut buf = vec![0u8; HEADER];
        buf[4..6].copy_from_slice(&kind.to_ne_bytes());
        buf[6..8].copy_from_slice(&(flags | NLM_F_REQUEST).to_ne_bytes());
        buf[8..12].copy_from_slice(&1u32.to_ne_bytes());
        Message { buf }
    }

    /// struct ifinfomsg (AF_UNSPEC).
    fn ifinfo(&mut self, index: i32, flags: u32, change: u32) {
        self.buf.extend_from_slice(&[0, 0, 0, 0]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
        self.buf.extend_from_slice(&flags.to_ne_bytes());
        self.buf.extend_from_slice(&change.to_ne_bytes());
    }

    /// struct ifaddrmsg.
    fn ifaddr(&mut self, family: u8, prefix: u8, scope: u8, index: i32) {
        self.buf.extend_from_slice(&[family, prefix, 0, scope]);
        self.buf.extend_from_slice(&index.to_ne_bytes());
    }

    fn attr(&mut self, kind: u16, data: &[u8]) {
        let len = 4 + data.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&kind.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.buf.resize(align(self.buf.len()), 0);
    }

    fn bytes(&mut self) -> &[u8] {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        &self.buf
    }
}

fn align(n: usize) -> usize {
    (n + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    b.get(at..at + 2)
        .map_or(0, |s| u16::from_ne_bytes([s[0], s[1]]))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    b.get(at..at + 4)
        .map_or(0, |s| u32::from_ne_bytes([s[0], s[1], s[2], s[3]]))
}

/// The attributes (type, payload) in `b`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16_at(b, 0) as usize;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((u16_at(b, 2) & 0x3fff, &b[4..len]));
        b = &b[align(len).min(b.len())..];
    }
    out
}

/// A NETLINK_ROUTE socket, talking to the namespace it was made in.
struct Netlink {
    fd: OwnedFd,
}

impl Netlink {
    fn open() -> Result<Netlink> {
        // SAFETY: socket() with constant arguments.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink socket");
        }
        // SAFETY: fd was just created and is owned by nothing else.
        Ok(Netlink {
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    /// A socket of the namespace `netns`: made there, after which we return to our own
    /// (paddock is single-threaded, so nothing else runs in between).
    fn open_in(netns: &OwnedFd) -> Result<Netlink> {
        let own: OwnedFd = File::open("/proc/self/ns/net")
            .context("open /proc/self/ns/net")?
            .into();
        namespaces::setns(netns, libc::CLONE_NEWNET, "container network namespace")?;
        let sock = Netlink::open();
        namespaces::setns(
            &own,
            libc::CLONE_NEWNET,
            "back to the runtime's network namespace",
        )?;
        sock
    }

    fn send(&self, msg: &mut Message) -> Result<()> {
        let data = msg.bytes();
        // SAFETY: send from a live buffer; the kernel is the peer (no address needed).
        let n = unsafe { libc::send(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len(), 0) };
        if n < 0 {
            return Err(std::io::Error::last_os_error()).context("netlink send");
        }
        Ok(())
    }

    /// The next datagram of replies.
    fn recv(&self) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            // SAFETY: recv into a buffer of the stated length.
            let n = unsafe {
                libc::recv(
                    self.fd.as_fd().as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    0,
                )
            };
            if n >= 0 {
                buf.truncate(n as usize);
                return Ok(buf);
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err).context("netlink recv");
            }
        }
    }

    /// Sends a request and returns the messages (type, payload) of its answer, up to its
    /// acknowledgement or the end of a dump; a kernel error becomes its errno.
    fn request(&self, mut msg: Message, dump: bool) -> Result<Vec<(u16, Vec<u8>)>> {
        self.send(&mut msg)?;
        let mut out = Vec::new();
        loop {
            let data = self.recv()?;
            let mut b = &data[..];
            while b.len() >= HEADER {
                let len = u32_at(b, 0) as usize;
                if len < HEADER || len > b.len() {
                    bail!("netlink: truncated reply");
                }
                let kind = u16_at(b, 4);
                let payload = &b[HEADER..len];
                match kind {
                    NLMSG_DONE if dump => return Ok(out),
                    NLMSG_ERROR => {
                        let errno = u32_at(payload, 0) as i32;
                        if errno == 0 && !dump {
                            return Ok(out);
                        }
                        if errno != 0 {
                            return Err(std::io::Error::from_raw_os_error(-errno).into());
                        }
                    }
                    _ => out.push((kind, payload.to_vec())),
                }
                b = &b[align(len).min(b.len())..];
            }
        }
    }

    fn call(&self, msg: Message) -> Result<()> {
        self.request(msg, false).map(|_| ())
    }

    fn link_index(&self, name: &str) -> Result<i32> {
        let mut msg = Message::new(RTM_GETLINK, NLM_F_ACK);
        msg.ifinfo(0, 0, 0);
        msg.attr(IFLA_IFNAME, &c_string(name));
        let reply = self.request(msg, false)?;
        reply
            .iter()
            .find(|(kind, p)| *kind == RTM_NEWLINK && p.len() >= 16)
            .map(|(_, p)| u32_at(p, 4) as i32)
            .context("no such link")
    }

    /// Sets IFF_UP to `up` (0 or IFF_UP), leaving the other flags alone.
    fn set_link(&self, index: i32, up: u32) -> Result<()> {
        let mut msg = Message::new(RTM_NEWLINK, NLM_F_ACK);
        msg.ifinfo(index, up, IFF_UP);
        self.call(msg)
    }

    /// The permanent, global addresses of link `index` (the ones runc carries over:
    /// dynamic ones depend on the old namespace, host- and link-scoped ones are not
    /// meaningful in the new one).
    fn addresses(&self, index: i32) -> Result<Vec<Address>> {
        let mut msg = Message::new(RTM_GETADDR, NLM_F_DUMP);
        msg.buf.extend_from_slice(&[0u8; 8]);
        let mut out = Vec::new();
        for (kind, p) in self.request(msg, true)? {
            if kind != RTM_NEWADDR || p.len() < 8 || u32_at(&p, 4) as i32 != index {
                continue;
            }
            let (family, prefix, flags, scope) = (p[0], p[1], p[2], p[3]);
            if flags & IFA_F_PERMANENT == 0 || scope != RT_SCOPE_UNIVERSE {
                continue;
            }
            let list = attrs(&p[8..]);
            let pick = |t: u16| list.iter().find(|(k, _)| *k == t).map(|(_, d)| d.to_vec());
            if let Some(local) = pick(IFA_LOCAL).or_else(|| pick(IFA_ADDRESS)) {
                out.push(Address {
                    family,
                    prefix,
                    local,
                });
            }
        }
        Ok(out)
    }

    fn add_address(&self, index: i32, a: &Address) -> Result<()> {
        let mut msg = Message::new(RTM_NEWADDR, NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL);
        msg.ifaddr(a.family, a.prefix, RT_SCOPE_UNIVERSE, index);
        msg.attr(IFA_LOCAL, &a.local);
        msg.attr(IFA_ADDRESS, &a.local);
        if let Some(brd) = broadcast(a) {
            msg.attr(IFA_BROADCAST, &brd);
        }
        self.call(msg)
    }
}

/// The IPv4 broadcast address of a subnet wider than /31 (what `ip addr add` and
/// runc's netlink library add), none otherwise.
fn broadcast(a: &Address) -> Option<[u8; 4]> {
    let ip: [u8; 4] = a.local.as_slice().try_into().ok()?;
    if a.family != libc::AF_INET as u8 || a.prefix >= 31 {
        return None;
    }
    let host_bits = u32::MAX.checked_shr(u32::from(a.prefix)).unwrap_or(0);
    Some((u32::from_be_bytes(ip) | host_bits).to_be_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_laid_out_as_rtnetlink_wants() {
        let mut m = Message::new(RTM_NEWLINK, NLM_F_ACK);
        m.ifinfo(7, 0, IFF_UP);
        m.attr(IFLA_IFNAME, &c_string("eth1"));
        let b = m.bytes().to_vec();
        assert_eq!(b.len(), 16 + 16 + 12);
        assert_eq!(u32_at(&b, 0), 44);
        assert_eq!(u16_at(&b, 6), NLM_F_REQUEST | NLM_F_ACK);
        assert_eq!(u32_at(&b, 20), 7);
        assert_eq!(u32_at(&b, 28), IFF_UP);
        assert_eq!(attrs(&b[32..]), vec![(IFLA_IFNAME, &b"eth1\0"[..])]);
    }

    #[test]
    fn ipv4_broadcast() {
        let a = |prefix| Address {
            family: libc::AF_INET as u8,
            prefix,
            local: vec![10, 1, 2, 3],
        };
        assert_eq!(broadcast(&a(24)), Some([10, 1, 2, 255]));
        assert_eq!(broadcast(&a(0)), Some([255, 255, 255, 255]));
        assert_eq!(broadcast(&a(31)), None);
        assert_eq!(show_ip(&[10, 1, 2, 3]), "10.1.2.3");
    }
}
