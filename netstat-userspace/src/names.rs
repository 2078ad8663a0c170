//! Numbers to names the way net-tools netstat does it: hosts (resolver,
//! cached), networks (for routes), ports (/etc/services, /etc/protocols for
//! raw sockets) and users, each switchable to numeric.

use crate::textfmt::push_u64;

use std::{
    cell::{OnceCell, RefCell},
    collections::HashMap,
    ffi::CStr,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
};

/// Which parts of an endpoint to print as numbers (`-n`, `--numeric-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numeric {
    pub hosts: bool,
    pub ports: bool,
    pub users: bool,
}

/// How an IPv4 address is looked up, after netstat's INET_rresolve: the
/// netmask decides between a host and a network name.
#[derive(Debug, Clone, Copy)]
pub struct V4Lookup {
    /// Netmask in network byte order.
    pub netmask: Ipv4Addr,
    /// 0.0.0.0/0 is "default" (routes) rather than "*".
    pub default_name: bool,
    /// Always look up a host name, never a network name.
    pub force_host: bool,
}

impl V4Lookup {
    /// What netstat uses for socket addresses: a fixed 0xffffff00 mask read
    /// as a host-order word (so on little-endian machines the *first* octet
    /// decides "host"), reproduced here so names match.
    pub const SOCKET: Self = Self {
        netmask: sockets_mask(),
        default_name: false,
        force_host: false,
    };
}

const fn sockets_mask() -> Ipv4Addr {
    let b = 0xffff_ff00u32.to_ne_bytes();
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

pub struct Names {
    numeric: Numeric,
    services: OnceCell<Services>,
    hosts: RefCell<HashMap<(IpAddr, bool), String>>,
    users: RefCell<HashMap<u32, String>>,
}

impl Names {
    pub fn new(numeric: Numeric) -> Self {
        Self {
            numeric,
            services: OnceCell::new(),
            hosts: RefCell::default(),
            users: RefCell::default(),
        }
    }

    /// Appends `host:port` as netstat prints a socket address (`:::22`,
    /// `[::]:ssh`, `localhost:http`, IPv4-mapped addresses as IPv4).
    pub fn write_endpoint(&self, out: &mut String, addr: SocketAddr, proto: &str) {
        self.write_host(out, addr.ip());
        out.push(':');
        self.write_port(out, addr.port(), proto);
    }

    pub fn write_host(&self, out: &mut String, ip: IpAddr) {
        match ip {
            // The common case of a big numeric listing, without allocating.
            IpAddr::V4(v4) if self.numeric.hosts => {
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        out.push('.');
                    }
                    push_u64(out, octet.into());
                }
            }
            IpAddr::V4(v4) => out.push_str(&self.host_v4(v4, V4Lookup::SOCKET)),
            IpAddr::V6(v6) => out.push_str(strip_v4_mapped(&self.host_v6(v6, false), &v6)),
        }
    }

    /// An IPv4 address under netstat's rules for `lookup`.
    pub fn host_v4(&self, ip: Ipv4Addr, lookup: V4Lookup) -> String {
        if self.numeric.hosts {
            return ip.to_string();
        }
        if ip.is_unspecified() {
            return match (lookup.netmask.is_unspecified(), lookup.default_name) {
                (true, true) => "default".into(),
                (true, false) => "*".into(),
                (false, _) => "0.0.0.0".into(),
            };
        }
        let word = |a: Ipv4Addr| u32::from_ne_bytes(a.octets());
        let host = word(ip) & !word(lookup.netmask) != 0 || lookup.force_host;
        self.hosts
            .borrow_mut()
            .entry((IpAddr::V4(ip), host))
            .or_insert_with(|| {
                let name = if host {
                    host_name(IpAddr::V4(ip))
                } else {
                    network_name(ip)
                };
                name.unwrap_or_else(|| ip.to_string())
            })
            .clone()
    }

    /// An IPv6 address: `[::]` (or "default" for routes) for the wildcard,
    /// else a resolved name or the numeric form.
    pub fn host_v6(&self, ip: Ipv6Addr, default_name: bool) -> String {
        if self.numeric.hosts {
            return ntop6(ip);
        }
        if ip.is_unspecified() {
            return if default_name { "default" } else { "[::]" }.into();
        }
        self.hosts
            .borrow_mut()
            .entry((IpAddr::V6(ip), true))
            .or_insert_with(|| host_name(IpAddr::V6(ip)).unwrap_or_else(|| ntop6(ip)))
            .clone()
    }

    /// Appends a port: `*` for 0, a service name unless numeric. `proto` is
    /// the services table: "tcp", "udp" or "raw" (raw "ports" are IP protocol
    /// numbers, named from /etc/protocols).
    pub fn write_port(&self, out: &mut String, port: u16, proto: &str) {
        if port == 0 {
            out.push('*');
            return;
        }
        if !self.numeric.ports
            && let Some(name) = self.services.get_or_init(Services::load).name(port, proto)
        {
            out.push_str(name);
            return;
        }
        push_u64(out, port.into());
    }

    pub fn user(&self, uid: u32) -> String {
        if self.numeric.users {
            return uid.to_string();
        }
        self.users
            .borrow_mut()
            .entry(uid)
            .or_insert_with(|| user_name(uid).unwrap_or_else(|| uid.to_string()))
            .clone()
    }
}

/// netstat shows IPv4-mapped IPv6 addresses as plain IPv4 (`::ffff:1.2.3.4`
/// becomes `1.2.3.4`) when the text has a dotted tail.
fn strip_v4_mapped<'a>(text: &'a str, ip: &Ipv6Addr) -> &'a str {
    if ip.to_ipv4_mapped().is_none() {
        return text;
    }
    match text.find('.').and_then(|dot| text[..dot].rfind(':')) {
        Some(colon) => &text[colon + 1..],
        None => text,
    }
}

/// inet_ntop's IPv6 text: like Rust's, except that `::a.b.c.d`
/// (IPv4-compatible, first 96 bits zero) keeps its dotted tail.
pub fn ntop6(ip: Ipv6Addr) -> String {
    let s = ip.segments();
    if s[..6] == [0; 6] && s[6] != 0 {
        let [a, b, c, d] = ip.octets()[12..] else {
            unreachable!()
        };
        return format!("::{a}.{b}.{c}.{d}");
    }
    ip.to_string()
}

/// Port -> name tables as netstat builds them: every entry is pushed in
/// front of the list, so for a repeated port the *last* line wins, and
/// protocol names outrank raw services.
#[derive(Default)]
pub(crate) struct Services {
    by_port: HashMap<(u16, &'static str), String>,
}

impl Services {
    fn load() -> Self {
        let services = std::fs::read_to_string("/etc/services").unwrap_or_default();
        let protocols = std::fs::read_to_string("/etc/protocols").unwrap_or_default();
        Self::parse(&services, &protocols)
    }

    pub(crate) fn parse(services: &str, protocols: &str) -> Self {
        let mut by_port = HashMap::new();
        for (name, port, proto) in entries(services) {
            let Some((port, proto)) = port.parse::<u16>().ok().zip(proto) else {
                continue;
            };
            let proto = match proto {
                "tcp" => "tcp",
                "udp" => "udp",
                "raw" => "raw",
                _ => continue,
            };
            by_port.insert((port, proto), name.to_string());
        }
        for (name, number, _) in entries(protocols) {
            if let Ok(number) = number.parse::<u16>() {
                by_port.insert((number, "raw"), name.to_string());
            }
        }
        Self { by_port }
    }

    fn name(&self, port: u16, proto: &str) -> Option<&str> {
        let proto = match proto {
            "tcp" | "tcp6" => "tcp",
            "udp" | "udp6" | "udpl" | "udpl6" => "udp",
            "raw" | "raw6" => "raw",
            _ => return None,
        };
        self.by_port.get(&(port, proto)).map(String::as_str)
    }
}

/// `name number[/proto] ...` lines, comments and junk skipped.
fn entries(text: &str) -> impl Iterator<Item = (&str, &str, Option<&str>)> {
    text.lines().filter_map(|line| {
        let mut words = line.split('#').next()?.split_whitespace();
        let (name, spec) = (words.next()?, words.next()?);
        Some(match spec.split_once('/') {
            Some((number, proto)) => (name, number, Some(proto)),
            None => (name, spec, None),
        })
    })
}

/// Looks a port name up in /etc/services for `--port http` style filters.
pub fn service_port(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
    entries(&text)
        .find(|(n, _, proto)| *n == name && *proto == Some("tcp"))
        .and_then(|(_, port, _)| port.parse().ok())
}

/// The host name the resolver (nsswitch "hosts") gives an address, as
/// gethostbyaddr would.
fn host_name(ip: IpAddr) -> Option<String> {
    let sa: c_sockaddr::SockAddr = ip.into();
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: sa holds a valid sockaddr of sa.len bytes; host is writable.
    let rc = unsafe {
        libc::getnameinfo(
            sa.as_ptr(),
            sa.len,
            host.as_mut_ptr(),
            host.len() as libc::socklen_t,
            std::ptr::null_mut(),
            0,
            libc::NI_NAMEREQD,
        )
    };
    if rc != 0 {
        return None;
    }
    // SAFETY: getnameinfo NUL-terminates on success.
    let name = unsafe { CStr::from_ptr(host.as_ptr()) };
    Some(name.to_string_lossy().into_owned())
}

/// The network name (nsswitch "networks", e.g. /etc/networks) of an address.
fn network_name(ip: Ipv4Addr) -> Option<String> {
    #[repr(C)]
    struct NetEnt {
        n_name: *const libc::c_char,
        n_aliases: *const *const libc::c_char,
        n_addrtype: libc::c_int,
        n_net: u32,
    }
    unsafe extern "C" {
        fn getnetbyaddr(net: u32, kind: libc::c_int) -> *const NetEnt;
    }
    // SAFETY: glibc returns NULL or a pointer to a static entry, which we
    // copy before any other call; the snapshot is single-threaded.
    unsafe {
        let ent = getnetbyaddr(u32::from(ip), libc::AF_INET);
        if ent.is_null() || (*ent).n_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr((*ent).n_name).to_string_lossy().into_owned())
    }
}

fn user_name(uid: u32) -> Option<String> {
    let mut buf = vec![0 as libc::c_char; 4096];
    // SAFETY: passwd is plain data; getpwuid_r fills it and buf, or reports failure.
    unsafe {
        let mut pw: libc::passwd = std::mem::zeroed();
        let mut result = std::ptr::null_mut();
        let rc = libc::getpwuid_r(uid, &mut pw, buf.as_mut_ptr(), buf.len(), &mut result);
        if rc != 0 || result.is_null() || pw.pw_name.is_null() {
            return None;
        }
        Some(CStr::from_ptr(pw.pw_name).to_string_lossy().into_owned())
    }
}

/// A sockaddr built from an IP, without pulling in a socket crate.
mod c_sockaddr {
    use std::net::IpAddr;

    pub struct SockAddr {
        storage: libc::sockaddr_storage,
        pub len: libc::socklen_t,
    }

    impl SockAddr {
        pub fn as_ptr(&self) -> *const libc::sockaddr {
            (&self.storage as *const libc::sockaddr_storage).cast()
        }
    }

    impl From<IpAddr> for SockAddr {
        fn from(ip: IpAddr) -> Self {
            // SAFETY: sockaddr_storage is plain data; zero is a valid value.
            let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let ptr = (&mut storage as *mut libc::sockaddr_storage).cast::<u8>();
            let len = match ip {
                IpAddr::V4(v4) => {
                    let sin = libc::sockaddr_in {
                        sin_family: libc::AF_INET as libc::sa_family_t,
                        sin_port: 0,
                        sin_addr: libc::in_addr {
                            s_addr: u32::from_ne_bytes(v4.octets()),
                        },
                        sin_zero: [0; 8],
                    };
                    // SAFETY: sockaddr_storage is larger than sockaddr_in.
                    unsafe { std::ptr::write(ptr.cast(), sin) };
                    size_of::<libc::sockaddr_in>()
                }
                IpAddr::V6(v6) => {
                    let sin6 = libc::sockaddr_in6 {
                        sin6_family: libc::AF_INET6 as libc::sa_family_t,
                        sin6_port: 0,
                        sin6_flowinfo: 0,
                        sin6_addr: libc::in6_addr {
                            s6_addr: v6.octets(),
                        },
                        sin6_scope_id: 0,
                    };
                    // SAFETY: sockaddr_storage is larger than sockaddr_in6.
                    unsafe { std::ptr::write(ptr.cast(), sin6) };
                    size_of::<libc::sockaddr_in6>()
                }
            };
            Self {
                storage,
                len: len as libc::socklen_t,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NUMERIC: Numeric = Numeric {
        hosts: true,
        ports: true,
        users: true,
    };

    fn endpoint(n: &Names, addr: &str, proto: &str) -> String {
        let mut s = String::new();
        n.write_endpoint(&mut s, addr.parse().unwrap(), proto);
        s
    }

    #[test]
    fn services_last_entry_wins_and_protocols_name_raw_ports() {
        let s = Services::parse(
            "# comment\nhttp 80/tcp www # web\nwww2 80/tcp\nbad line\nx notaport/tcp\ndomain 53/udp\n",
            "icmp 1 ICMP\nipv6-icmp 58 IPv6-ICMP\n",
        );
        assert_eq!(s.name(80, "tcp6"), Some("www2"));
        assert_eq!(s.name(53, "udp"), Some("domain"));
        assert_eq!(s.name(53, "tcp"), None);
        assert_eq!(s.name(1, "raw"), Some("icmp"));
    }

    #[test]
    fn numeric_endpoints() {
        let n = Names::new(NUMERIC);
        assert_eq!(endpoint(&n, "127.0.0.1:80", "tcp"), "127.0.0.1:80");
        assert_eq!(endpoint(&n, "[::]:22", "tcp"), ":::22");
        assert_eq!(endpoint(&n, "0.0.0.0:0", "tcp"), "0.0.0.0:*");
        assert_eq!(endpoint(&n, "[::ffff:10.1.2.3]:5", "tcp"), "10.1.2.3:5");
        assert_eq!(endpoint(&n, "[::10.1.2.3]:5", "tcp"), "::10.1.2.3:5");
    }

    #[test]
    fn wildcards_by_name() {
        let n = Names::new(Numeric {
            hosts: false,
            ports: true,
            users: true,
        });
        assert_eq!(endpoint(&n, "0.0.0.0:0", "udp"), "0.0.0.0:*");
        assert_eq!(endpoint(&n, "[::]:22", "tcp"), "[::]:22");
        let route = V4Lookup {
            netmask: Ipv4Addr::UNSPECIFIED,
            default_name: true,
            force_host: false,
        };
        assert_eq!(n.host_v4(Ipv4Addr::UNSPECIFIED, route), "default");
    }
}
