//! -i: interfaces from /proc/net/dev, with flags and MTU from the kernel
//! (SIOCGIFFLAGS/SIOCGIFMTU, as netstat asks for them), in netstat's order.

use std::{cmp::Ordering, io, net::Ipv4Addr};

use anyhow::{Context as _, Result};

use crate::{
    procnet::{self, if_inet6},
    render::interfaces::{self, Details, Interface, Ipv4Info},
};

pub fn list(all: bool, long: bool, out: &mut String) -> Result<()> {
    let text = procnet::read("/proc/net/dev").context("reading /proc/net/dev")?;
    let mut devs = procnet::dev::parse(&text, "/proc/net/dev")?;
    devs.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let ipv6 = match (long, procnet::read_optional("/proc/net/if_inet6")?) {
        (true, Some(text)) => if_inet6::parse(&text, "/proc/net/if_inet6")?,
        _ => Vec::new(),
    };
    let socket = Socket::open()?;
    interfaces::header(out, long);
    for counters in devs {
        // An interface that vanished since /proc/net/dev was read is skipped.
        let Ok(req) = socket.ioctl(&counters.name, libc::SIOCGIFFLAGS) else {
            continue;
        };
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags } as u16 as u32;
        if flags & libc::IFF_UP as u32 == 0 && !all {
            continue;
        }
        // SAFETY: SIOCGIFMTU fills the mtu member.
        let mtu = socket
            .ioctl(&counters.name, libc::SIOCGIFMTU)
            .map_or(0, |r| unsafe { r.ifr_ifru.ifru_mtu });
        let details = long.then(|| socket.details(&counters.name, &ipv6));
        let i = Interface {
            counters,
            flags,
            mtu,
            details,
        };
        match &i.details {
            Some(d) => interfaces::long(out, &i, d),
            None => interfaces::row(out, &i),
        }
    }
    Ok(())
}

/// netstat's interface order (nstrcmp): names compare as text up to their
/// trailing number, then by that number, so eth2 sorts before eth10.
fn natural_cmp(a: &str, b: &str) -> Ordering {
    let ((ap, an), (bp, bn)) = (split_number(a), split_number(b));
    let common = ap.len().min(bp.len());
    ap.as_bytes()[..common]
        .cmp(&bp.as_bytes()[..common])
        .then(ap.len().cmp(&bp.len()))
        .then(an.cmp(&bn))
        .then(a.cmp(b))
}

/// `eth10` -> ("eth", 10).
fn split_number(s: &str) -> (&str, u64) {
    let at = s.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    (&s[..at], s[at..].parse().unwrap_or(0))
}

struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn open() -> Result<Self> {
        use std::os::fd::FromRawFd as _;
        // SAFETY: plain socket(2) call; the fd is owned from here on.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(io::Error::last_os_error())
                .context("opening a socket for interface ioctls");
        }
        // SAFETY: fd is a fresh, valid descriptor.
        Ok(Self(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd) }))
    }

    /// One SIOCGIF* request for `name`.
    fn ioctl(&self, name: &str, request: libc::Ioctl) -> io::Result<libc::ifreq> {
        use std::os::fd::AsRawFd as _;
        // SAFETY: ifreq is plain data; zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= req.ifr_name.len() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        // SAFETY: req is a valid ifreq with a NUL-terminated name.
        if unsafe { libc::ioctl(self.0.as_raw_fd(), request, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(req)
    }

    fn ipv4(&self, name: &str, request: libc::Ioctl) -> Option<Ipv4Addr> {
        let req = self.ioctl(name, request).ok()?;
        // SAFETY: these requests fill the address member with a sockaddr_in.
        let sin = unsafe {
            *(&req.ifr_ifru.ifru_addr as *const libc::sockaddr).cast::<libc::sockaddr_in>()
        };
        Some(Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()))
    }

    /// The -ie extras, each as net-tools gets it (a failed request leaves
    /// zeros, or no txqueuelen).
    fn details(&self, name: &str, ipv6: &[if_inet6::Address]) -> Details {
        let zero = Ipv4Addr::UNSPECIFIED;
        let ipv4 = self.ipv4(name, libc::SIOCGIFADDR).map(|address| Ipv4Info {
            address,
            netmask: self.ipv4(name, libc::SIOCGIFNETMASK).unwrap_or(zero),
            broadcast: self.ipv4(name, libc::SIOCGIFBRDADDR).unwrap_or(zero),
            destination: self.ipv4(name, libc::SIOCGIFDSTADDR).unwrap_or(zero),
        });
        let (hw_type, hw_addr) = match self.ioctl(name, libc::SIOCGIFHWADDR) {
            Ok(req) => {
                // SAFETY: SIOCGIFHWADDR fills the hwaddr member.
                let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
                let mut addr = [0u8; 8];
                for (dst, src) in addr.iter_mut().zip(sa.sa_data) {
                    *dst = src as u8;
                }
                (sa.sa_family, addr)
            }
            Err(_) => (0, [0; 8]),
        };
        // SAFETY: SIOCGIFTXQLEN fills the int member (shared with ifindex).
        let tx_queue_len = self
            .ioctl(name, libc::SIOCGIFTXQLEN)
            .ok()
            .map(|r| unsafe { r.ifr_ifru.ifru_ifindex });
        // SAFETY: SIOCGIFMAP fills the map member.
        let map = self
            .ioctl(name, libc::SIOCGIFMAP)
            .ok()
            .map(|r| unsafe { r.ifr_ifru.ifru_map });
        Details {
            ipv4,
            ipv6: ipv6.iter().filter(|a| a.device == name).cloned().collect(),
            hw_type,
            hw_addr,
            tx_queue_len,
            irq: map.map_or(0, |m| m.irq),
            base_addr: map.map_or(0, |m| m.base_addr),
            mem_start: map.map_or(0, |m| m.mem_start),
            mem_end: map.map_or(0, |m| m.mem_end),
            dma: map.map_or(0, |m| m.dma),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn natural_order() {
        let mut names = vec!["eth10", "lo", "eth2", "a1", "a0", "eth"];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["a0", "a1", "eth", "eth2", "eth10", "lo"]);
    }
}
