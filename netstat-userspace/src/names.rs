//! Numbers to names as netstat shows them: hosts (resolver, cached), ports
//! (/etc/services) and users (/etc/passwd), each switchable to numeric.

use std::{
    cell::RefCell,
    collections::HashMap,
    ffi::CStr,
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
};

/// Which parts of an endpoint to print as numbers (`-n`, `--numeric-*`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Numeric {
    pub hosts: bool,
    pub ports: bool,
    pub users: bool,
}

impl Numeric {
    pub const ALL: Self = Self {
        hosts: true,
        ports: true,
        users: true,
    };
}

pub struct Names {
    numeric: Numeric,
    /// (port, protocol) -> service name, loaded on first use.
    services: RefCell<Option<HashMap<(u16, String), String>>>,
    hosts: RefCell<HashMap<IpAddr, String>>,
    users: RefCell<HashMap<u32, String>>,
}

impl Names {
    pub fn new(numeric: Numeric) -> Self {
        Self {
            numeric,
            services: RefCell::new(None),
            hosts: RefCell::new(HashMap::new()),
            users: RefCell::new(HashMap::new()),
        }
    }

    pub fn numeric(&self) -> Numeric {
        self.numeric
    }

    /// Appends a port as netstat prints it: `*` for 0, a service name unless numeric.
    pub fn write_port(&self, out: &mut String, port: u16, proto: &str) {
        if port == 0 {
            out.push('*');
            return;
        }
        if !self.numeric.ports {
            let mut services = self.services.borrow_mut();
            let table = services.get_or_insert_with(load_services);
            if let Some(name) = table.get(&(port, proto.to_string())) {
                out.push_str(name);
                return;
            }
        }
        let _ = write!(out, "{port}");
    }

    /// Appends a host as netstat prints it: numeric, the wildcard spelled
    /// out, or the resolver's name for it.
    pub fn write_host(&self, out: &mut String, ip: IpAddr) {
        if self.numeric.hosts || ip.is_unspecified() {
            let _ = write!(out, "{ip}");
            return;
        }
        let mut hosts = self.hosts.borrow_mut();
        let name = hosts
            .entry(ip)
            .or_insert_with(|| resolve_host(ip).unwrap_or_else(|| ip.to_string()));
        out.push_str(name);
    }

    /// Appends `host:port`, IPv6 without brackets as netstat writes it (`:::22`).
    pub fn write_endpoint(&self, out: &mut String, addr: SocketAddr, proto: &str) {
        self.write_host(out, addr.ip());
        out.push(':');
        self.write_port(out, addr.port(), proto);
    }

    pub fn endpoint(&self, addr: SocketAddr, proto: &str) -> String {
        let mut s = String::new();
        self.write_endpoint(&mut s, addr, proto);
        s
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

/// Parses /etc/services: `name port/proto aliases...`.
fn load_services() -> HashMap<(u16, String), String> {
    let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
    parse_services(&text)
}

pub fn parse_services(text: &str) -> HashMap<(u16, String), String> {
    let mut table = HashMap::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        let mut words = line.split_whitespace();
        let (Some(name), Some(port_proto)) = (words.next(), words.next()) else {
            continue;
        };
        let Some((port, proto)) = port_proto.split_once('/') else {
            continue;
        };
        let Ok(port) = port.parse::<u16>() else {
            continue;
        };
        // The first entry for a port wins, as with getservbyport().
        table
            .entry((port, proto.to_string()))
            .or_insert_with(|| name.to_string());
    }
    table
}

/// Looks a port name up in /etc/services for `--port http` style filters.
pub fn service_port(name: &str) -> Option<u16> {
    let text = std::fs::read_to_string("/etc/services").unwrap_or_default();
    parse_services(&text)
        .into_iter()
        .find(|((_, proto), n)| n == name && proto == "tcp")
        .map(|((port, _), _)| port)
}

fn resolve_host(ip: IpAddr) -> Option<String> {
    let (storage, len) = sockaddr_of(ip);
    let mut host = [0 as libc::c_char; 1025];
    // SAFETY: storage holds a valid sockaddr of `len` bytes; host is writable.
    let rc = unsafe {
        libc::getnameinfo(
            (&storage as *const libc::sockaddr_storage).cast(),
            len,
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

fn sockaddr_of(ip: IpAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
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
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin) };
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
            unsafe { std::ptr::write((&mut storage as *mut libc::sockaddr_storage).cast(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn user_name(uid: u32) -> Option<String> {
    let text = std::fs::read_to_string("/etc/passwd").ok()?;
    text.lines().find_map(|line| {
        let mut f = line.split(':');
        let name = f.next()?;
        let id = f.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_first_entry_wins_and_junk_is_skipped() {
        let t = parse_services(
            "# comment\nhttp 80/tcp www # web\nwww2 80/tcp\nbad line\nx notaport/tcp\ndomain 53/udp\n",
        );
        assert_eq!(t.get(&(80, "tcp".into())).map(String::as_str), Some("http"));
        assert_eq!(
            t.get(&(53, "udp".into())).map(String::as_str),
            Some("domain")
        );
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn numeric_endpoints() {
        let n = Names::new(Numeric::ALL);
        assert_eq!(
            n.endpoint("127.0.0.1:80".parse().unwrap(), "tcp"),
            "127.0.0.1:80"
        );
        assert_eq!(n.endpoint("[::]:22".parse().unwrap(), "tcp"), ":::22");
        assert_eq!(n.endpoint("0.0.0.0:0".parse().unwrap(), "tcp"), "0.0.0.0:*");
    }
}
