//! -i: interfaces from /proc/net/dev, with flags and MTU from the kernel
//! (SIOCGIFFLAGS/SIOCGIFMTU, as netstat asks for them), in netstat's order.

use std::{cmp::Ordering, io};

use anyhow::{Context as _, Result};

use crate::{
    procnet,
    render::interfaces::{self, Interface},
};

pub fn list(all: bool, out: &mut String) -> Result<()> {
    let text = std::fs::read_to_string("/proc/net/dev").context("reading /proc/net/dev")?;
    let mut devs = procnet::dev::parse(&text, "/proc/net/dev")?;
    devs.sort_by(|a, b| natural_cmp(&a.name, &b.name));
    let socket = Socket::open()?;
    interfaces::header(out);
    for counters in devs {
        // An interface that vanished since /proc/net/dev was read is skipped.
        let Ok((flags, mtu)) = socket.flags_and_mtu(&counters.name) else {
            continue;
        };
        if flags & libc::IFF_UP as u32 != 0 || all {
            interfaces::row(
                out,
                &Interface {
                    counters,
                    flags,
                    mtu,
                },
            );
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

    fn flags_and_mtu(&self, name: &str) -> io::Result<(u32, i32)> {
        use std::os::fd::AsRawFd as _;
        // SAFETY: ifreq is plain data; zero is valid.
        let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
        if name.len() >= req.ifr_name.len() {
            return Err(io::Error::from(io::ErrorKind::InvalidInput));
        }
        for (dst, src) in req.ifr_name.iter_mut().zip(name.bytes()) {
            *dst = src as libc::c_char;
        }
        let fd = self.0.as_raw_fd();
        // SAFETY: req is a valid ifreq with a NUL-terminated name.
        if unsafe { libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: SIOCGIFFLAGS filled the flags member of the union.
        let flags = unsafe { req.ifr_ifru.ifru_flags } as u16 as u32;
        // SAFETY: as above, for SIOCGIFMTU and the mtu member.
        if unsafe { libc::ioctl(fd, libc::SIOCGIFMTU, &mut req) } < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: SIOCGIFMTU filled the mtu member.
        let mtu = unsafe { req.ifr_ifru.ifru_mtu };
        Ok((flags, mtu))
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
