//! The user's filter (`-4 -6 --port --sport --dport --addr --state --pid`)
//! as one `netstat_common::Filter`: the kernel programs apply it to events,
//! and the listing applies the same value to /proc rows.

use std::{cell::RefCell, collections::HashMap, net::IpAddr};

use anyhow::Result;
use netstat_common::{AF_INET, AF_INET6, Filter, tcp_state};

use crate::{
    cli::Cli,
    fail, names,
    procnet::{sockets::InetSocket, unix::UnixSocket},
    tcp_state::TcpState,
};

pub fn from_cli(cli: &Cli) -> Result<Filter> {
    let mut filter = Filter::default();
    let port = |text: &Option<String>| text.as_deref().map(parse_port).transpose();
    filter.port = port(&cli.port)?.unwrap_or(0);
    filter.sport = port(&cli.sport)?.unwrap_or(0);
    filter.dport = port(&cli.dport)?.unwrap_or(0);
    if let Some(pid) = cli.pid {
        if pid == 0 {
            return Err(fail::usage("invalid --pid 0: use a process id"));
        }
        filter.pid = pid;
    }
    if let Some(states) = &cli.state {
        filter.states = parse_states(states)?;
    }
    if let Some(cidr) = &cli.addr {
        let (family, addr, mask) = parse_cidr(cidr)?;
        (filter.addr_family, filter.addr, filter.addr_mask) = (family, addr, mask);
    }
    // Neither or both of -4/-6 means both families.
    if cli.inet != cli.inet6 {
        filter.families = 1 << if cli.inet { AF_INET } else { AF_INET6 };
    }
    Ok(filter)
}

/// Whether a /proc row is wanted; `owner` is its owner's pid when known.
pub fn socket_matches(filter: &Filter, s: &InetSocket, owner: Option<u32>) -> bool {
    let (family, local) = address(s.local.ip());
    let (_, remote) = address(s.remote.ip());
    filter.state_matches(s.state)
        // A row whose owner is unknown here cannot be shown as the pid's.
        && filter.pid_matches(Some(owner.unwrap_or(0)))
        && filter.endpoints_match(family, &local, s.local.port(), &remote, s.remote.port())
}

/// What the listing and the live view keep of /proc's rows: the shared
/// terms, and `--cgroup`, checked against each owner's /proc/PID/cgroup.
#[derive(Debug, Clone, Default)]
pub struct RowFilter {
    pub terms: Filter,
    /// `--cgroup`: a path from the cgroup v2 root.
    pub cgroup: Option<String>,
    /// Whether each owner looked at is in `cgroup` (or below it).
    owners_in: RefCell<HashMap<u32, bool>>,
}

impl RowFilter {
    pub fn new(terms: Filter, cgroup: Option<String>) -> Self {
        Self {
            terms,
            cgroup,
            owners_in: RefCell::default(),
        }
    }

    /// Whether a row needs its owner to be kept or dropped.
    pub fn by_owner(&self) -> bool {
        self.terms.pid != 0 || self.cgroup.is_some()
    }

    /// Whether an Internet row is wanted; `owner` is its owner's pid when known.
    pub fn socket_matches(&self, s: &InetSocket, owner: Option<u32>) -> bool {
        socket_matches(&self.terms, s, owner) && self.owner_in_cgroup(owner)
    }

    /// Whether a unix socket is wanted (see `unix_matches`).
    pub fn unix_matches(&self, s: &UnixSocket, owner: Option<u32>) -> bool {
        unix_matches(&self.terms, s, owner) && self.owner_in_cgroup(owner)
    }

    /// Whether `--cgroup` keeps a row of `owner` (an unknown owner is not
    /// in any cgroup asked for).
    fn owner_in_cgroup(&self, owner: Option<u32>) -> bool {
        let Some(wanted) = &self.cgroup else {
            return true;
        };
        let Some(pid) = owner else {
            return false;
        };
        *self.owners_in.borrow_mut().entry(pid).or_insert_with(|| {
            std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
                .ok()
                .and_then(|text| {
                    let path = text
                        .lines()
                        .find_map(|l| l.strip_prefix("0::"))?
                        .to_string();
                    Some(cgroup_under(&path, wanted))
                })
                .unwrap_or(false)
        })
    }
}

/// Whether cgroup `path` is `wanted` or below it.
pub fn cgroup_under(path: &str, wanted: &str) -> bool {
    let wanted = wanted.trim_end_matches('/');
    path.strip_prefix(wanted)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/') || wanted.is_empty())
}

/// Whether `--state` and `--pid` keep a unix socket (`owner`: its pid if
/// known). Unix sockets have states of their own; the TCP names that mean
/// the same select them: LISTEN (LISTENING), SYN_SENT (CONNECTING),
/// ESTABLISHED (CONNECTED) and CLOSE (unconnected). Endpoint filters were
/// refused with unix sockets (`combinations::check`).
pub fn unix_matches(filter: &Filter, s: &UnixSocket, owner: Option<u32>) -> bool {
    const UNCONNECTED: u32 = 1;
    const CONNECTING: u32 = 2;
    const CONNECTED: u32 = 3;
    let as_tcp = match s.state {
        _ if s.listening() => Some(tcp_state::LISTEN),
        UNCONNECTED => Some(tcp_state::CLOSE),
        CONNECTING => Some(tcp_state::SYN_SENT),
        CONNECTED => Some(tcp_state::ESTABLISHED),
        _ => None,
    };
    let state_wanted = match as_tcp {
        Some(state) => filter.state_matches(state),
        None => filter.states == 0,
    };
    state_wanted && filter.pid_matches(Some(owner.unwrap_or(0)))
}

/// An address as the kernel side lays it out (IPv4 in the first 4 bytes).
fn address(ip: IpAddr) -> (u8, [u8; 16]) {
    let mut bytes = [0u8; 16];
    match ip {
        IpAddr::V4(v4) => {
            bytes[..4].copy_from_slice(&v4.octets());
            (AF_INET, bytes)
        }
        IpAddr::V6(v6) => (AF_INET6, v6.octets()),
    }
}

/// A port given as a number (1-65535) or an /etc/services name.
pub fn parse_port(text: &str) -> Result<u16> {
    if let Ok(port) = text.parse::<u32>() {
        return match u16::try_from(port) {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(fail::usage(format!(
                "invalid port '{text}': use a number from 1 to 65535 or a service name"
            ))),
        };
    }
    names::service_port(text).ok_or_else(|| {
        fail::usage(format!(
            "unknown port '{text}': not a number and not a tcp service in /etc/services"
        ))
    })
}

/// `ADDR[/PREFIX]`, IPv4 or IPv6: the family, the network and its mask.
fn parse_cidr(text: &str) -> Result<(u8, [u8; 16], [u8; 16])> {
    let bad = |why: &str| {
        fail::usage(format!(
            "invalid --addr '{text}': {why} (use e.g. 10.0.0.0/8 or fd00::/64)"
        ))
    };
    let (ip, prefix) = match text.split_once('/') {
        Some((ip, prefix)) => (ip, Some(prefix)),
        None => (text, None),
    };
    let ip: IpAddr = ip.parse().map_err(|_| bad("not an IP address"))?;
    let (family, addr) = address(ip);
    let bits = if family == AF_INET { 32 } else { 128 };
    let prefix = match prefix {
        Some(p) => p
            .parse::<u32>()
            .ok()
            .filter(|p| *p <= bits)
            .ok_or_else(|| bad(&format!("the prefix must be a number from 0 to {bits}")))?,
        None => bits,
    };
    let mut mask = [0u8; 16];
    for (i, byte) in mask.iter_mut().enumerate() {
        let left = prefix.saturating_sub(8 * i as u32).min(8);
        *byte = (0xff00u16 >> left) as u8;
    }
    let mut net = addr;
    for (b, m) in net.iter_mut().zip(mask) {
        *b &= m;
    }
    Ok((family, net, mask))
}

/// Comma-separated state names, netstat's (`TIME_WAIT`) or ss's
/// (`time-wait`) spelling, any case.
fn parse_states(text: &str) -> Result<u16> {
    let mut mask = 0u16;
    for name in text.split(',') {
        let wanted = name.trim().to_ascii_uppercase().replace('-', "_");
        // ss spells FIN_WAIT1 as fin-wait-1.
        let wanted = wanted.replace("WAIT_", "WAIT");
        let state = (1..=11)
            .map(TcpState)
            .find(|s| s.name() == wanted)
            .ok_or_else(|| {
                fail::usage(format!(
                    "unknown state '{name}' in --state: use e.g. ESTABLISHED,TIME_WAIT or syn-sent"
                ))
            })?;
        mask |= 1 << state.0;
    }
    Ok(mask)
}

#[cfg(test)]
mod tests {
    use netstat_common::tcp_state as k;

    use super::*;

    #[test]
    fn a_cgroup_holds_itself_and_those_below_it() {
        assert!(cgroup_under("/system.slice/nginx.service", "/system.slice"));
        assert!(cgroup_under("/system.slice", "/system.slice/"));
        assert!(cgroup_under("/system.slice", "/system.slice"));
        assert!(cgroup_under("/user.slice", "/"));
        assert!(!cgroup_under("/system.slice2", "/system.slice"));
        assert!(!cgroup_under("/user.slice", "/system.slice"));
    }

    #[test]
    fn ports() {
        assert_eq!(parse_port("8080").unwrap(), 8080);
        assert!(parse_port("0").is_err());
        assert!(parse_port("70000").is_err());
        let err = parse_port("no-such-service-xyz").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown port 'no-such-service-xyz'")
        );
    }

    #[test]
    fn networks() {
        let (family, net, mask) = parse_cidr("10.1.2.3/12").unwrap();
        assert_eq!(family, AF_INET);
        assert_eq!(&net[..4], &[10, 0, 0, 0]);
        assert_eq!(&mask[..4], &[255, 240, 0, 0]);
        assert_eq!(&mask[4..], &[0; 12]);
        let (family, _, mask) = parse_cidr("fd00::1").unwrap();
        assert_eq!((family, mask), (AF_INET6, [0xff; 16]));
        for bad in ["10.0.0.0/33", "fd00::/129", "nonsense/8", "10.0.0.0/x"] {
            let err = parse_cidr(bad).unwrap_err().to_string();
            assert!(err.starts_with(&format!("invalid --addr '{bad}'")), "{err}");
        }
    }

    fn row(local: &str, remote: &str, state: u8) -> InetSocket {
        InetSocket::from_endpoints(local.parse().unwrap(), remote.parse().unwrap(), state)
    }

    #[test]
    fn rows_are_filtered_like_events() {
        let est = k::ESTABLISHED;
        let filter = Filter {
            sport: 80,
            ..Default::default()
        };
        assert!(socket_matches(
            &filter,
            &row("10.0.0.1:80", "10.0.0.2:5000", est),
            None
        ));
        assert!(!socket_matches(
            &filter,
            &row("10.0.0.1:5000", "10.0.0.2:80", est),
            None
        ));

        let (addr_family, addr, addr_mask) = parse_cidr("fd00::/16").unwrap();
        let filter = Filter {
            addr_family,
            addr,
            addr_mask,
            states: parse_states("established,syn-sent").unwrap(),
            ..Default::default()
        };
        assert!(socket_matches(
            &filter,
            &row("[::1]:1", "[fd00::9]:2", est),
            None
        ));
        assert!(!socket_matches(
            &filter,
            &row("[::1]:1", "[fe80::9]:2", est),
            None
        ));
        assert!(!socket_matches(
            &filter,
            &row("10.0.0.1:1", "10.0.0.2:2", est),
            None
        ));
        let listen = k::LISTEN;
        assert!(!socket_matches(
            &filter,
            &row("[fd00::1]:1", "[::]:0", listen),
            None
        ));

        let filter = Filter {
            pid: 42,
            ..Default::default()
        };
        let r = row("10.0.0.1:1", "10.0.0.2:2", est);
        assert!(socket_matches(&filter, &r, Some(42)));
        assert!(!socket_matches(&filter, &r, Some(7)));
        assert!(!socket_matches(&filter, &r, None));
    }

    #[test]
    fn a_local_port_not_chosen_yet_may_still_match() {
        let (lo, peer) = (
            [127, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            [0u8; 16],
        );
        for filter in [
            Filter {
                port: 7501,
                ..Default::default()
            },
            Filter {
                sport: 7501,
                ..Default::default()
            },
        ] {
            // CLOSE -> SYN_SENT comes before connect() picks the local
            // port, which it takes from the namespace's ephemeral range.
            assert!(!filter.endpoints_match(AF_INET, &lo, 0, &peer, 80));
            assert!(filter.endpoints_may_match(AF_INET, &lo, 0, &peer, 80, (7000, 8000)));
            assert!(filter.endpoints_may_match(AF_INET, &lo, 0, &peer, 80, (7501, 7501)));
            assert!(!filter.endpoints_may_match(AF_INET, &lo, 0, &peer, 80, (32768, 60999)));
            assert!(!filter.endpoints_may_match(AF_INET, &lo, 5000, &peer, 80, (0, 65535)));
            assert!(filter.endpoints_may_match(AF_INET, &lo, 7501, &peer, 80, (32768, 60999)));
        }
        let remote = Filter {
            dport: 443,
            ..Default::default()
        };
        assert!(!remote.endpoints_may_match(AF_INET, &lo, 0, &peer, 80, (0, 65535)));
        let v6_only = Filter {
            families: 1 << AF_INET6,
            ..Default::default()
        };
        assert!(!v6_only.endpoints_may_match(AF_INET, &lo, 0, &peer, 80, (0, 65535)));
    }

    #[test]
    fn state_names() {
        let fw1 = 1 << k::FIN_WAIT1;
        assert_eq!(parse_states("fin-wait-1").unwrap(), fw1);
        assert_eq!(parse_states("FIN_WAIT1").unwrap(), fw1);
        assert_eq!(
            parse_states("time-wait,LISTEN").unwrap(),
            1 << TcpState::TIME_WAIT.0 | 1 << k::LISTEN
        );
        let err = parse_states("established,bogus").unwrap_err().to_string();
        assert!(err.starts_with("unknown state 'bogus'"), "{err}");
    }
}
