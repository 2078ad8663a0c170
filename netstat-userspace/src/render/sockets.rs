//! The socket listing, column for column as net-tools netstat 2.10 prints
//! it: "Active Internet connections" and "Active UNIX domain sockets".

use std::{fmt::Write as _, net::SocketAddr};

use crate::{
    decoder::StateAge,
    names::Names,
    owners::{InodeOwners, Owner},
    plan::SocketPlan,
    procnet::{
        sockets::InetSocket,
        unix::{ACCEPTING, UnixSocket},
    },
    tcp_state::TcpState,
    textfmt::{pad_to, push_right, push_u64},
};

/// The IP protocols netstat lists, with the names of their proto column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum InetProto {
    Tcp,
    Udp,
    UdpLite,
    Raw,
}

impl InetProto {
    pub fn column(self, ipv6: bool) -> &'static str {
        match (self, ipv6) {
            (InetProto::Tcp, false) => "tcp",
            (InetProto::Tcp, true) => "tcp6",
            (InetProto::Udp, false) => "udp",
            (InetProto::Udp, true) => "udp6",
            (InetProto::UdpLite, false) => "udpl",
            (InetProto::UdpLite, true) => "udpl6",
            (InetProto::Raw, false) => "raw",
            (InetProto::Raw, true) => "raw6",
        }
    }

    /// The services table ports are named from (UDP-Lite shares UDP's).
    pub fn services(self) -> &'static str {
        match self {
            InetProto::Tcp => "tcp",
            InetProto::Udp | InetProto::UdpLite => "udp",
            InetProto::Raw => "raw",
        }
    }
}

/// One Internet socket of the listing, with what the listing found out
/// about it besides /proc's fields.
pub struct InetRow<'a> {
    pub proto: InetProto,
    pub socket: &'a InetSocket,
    /// Shown with -p.
    pub owner: Option<&'a Owner>,
    /// The live view's time in the current state.
    pub in_state: Option<StateAge>,
    /// The socket's network namespace, when rows of several are listed.
    pub netns: Option<u32>,
}

/// The State column: TCP's state names; UDP's ESTABLISHED or nothing; raw
/// sockets' state number.
pub fn state(out: &mut String, proto: InetProto, state: u8) {
    match proto {
        InetProto::Tcp => out.push_str(match state {
            0 => "",
            1..=11 => TcpState(state).name(),
            _ => "UNKNOWN",
        }),
        InetProto::Udp | InetProto::UdpLite => out.push_str(match state {
            1 => "ESTABLISHED",
            7 => "",
            _ => "UNKNOWN",
        }),
        InetProto::Raw => push_u64(out, u64::from(state)),
    }
}

/// Where netstat cuts an address column unless -W: 22 characters plus ':'.
const SHORT_ADDRESS: usize = 22;
/// A live row in CLOSE_WAIT this long is marked a leak (as `-S`'s
/// `--close-wait-age` default).
const CLOSE_WAIT_LEAK_NS: u64 = 10_000_000_000;

/// "PID/Program name" is at most 19 bytes, in a 20-wide column.
const PROGRAM_WIDTH: usize = 20;

pub struct SocketTable<'a> {
    pub names: &'a Names,
    pub columns: &'a SocketPlan,
    pub owners: Option<&'a InodeOwners>,
    /// Clock ticks per second, the unit of TCP timers in /proc.
    pub ticks_per_second: u64,
    /// The live view (`-c` on events) adds a time-in-state column.
    pub live: bool,
    /// Rows from several network namespaces: a Netns column.
    pub netns: bool,
}

/// "PID/Program name" in its column, `-` when unknown.
fn program(out: &mut String, owner: Option<&Owner>) {
    let start = out.len();
    match owner {
        Some(owner) => {
            let _ = write!(out, "{}/{}", owner.pid, owner.program);
            let end = floor_char_boundary(&out[start..], PROGRAM_WIDTH - 1);
            out.truncate(start + end);
        }
        None => out.push('-'),
    }
    let used = out.len() - start;
    out.extend(std::iter::repeat_n(' ', PROGRAM_WIDTH.saturating_sub(used)));
}

impl SocketTable<'_> {
    fn scope(&self) -> &'static str {
        match (self.columns.all, self.columns.listening) {
            (true, _) => "(servers and established)",
            (false, true) => "(only servers)",
            (false, false) => "(w/o servers)",
        }
    }

    pub fn internet_header(&self, out: &mut String) {
        let _ = write!(
            out,
            "Active Internet connections {}\nProto Recv-Q Send-Q Local Address           Foreign Address         State      ",
            self.scope()
        );
        if self.columns.extend {
            out.push_str(" User       Inode     ");
        }
        if self.columns.programs {
            let _ = write!(out, " {:<PROGRAM_WIDTH$}", "PID/Program name");
        }
        if self.columns.timers {
            out.push_str(" Timer");
        }
        if self.live {
            out.push_str(" In-State");
        }
        if self.netns {
            out.push_str(" Netns");
        }
        out.push('\n');
    }

    pub fn inet_row(&self, out: &mut String, row: &InetRow) {
        // Hand-built rather than write!(): this runs once per socket.
        let (proto, s) = (row.proto, row.socket);
        let start = out.len();
        out.push_str(proto.column(s.local.is_ipv6()));
        // "%-4s  " for tcp and raw, "%-5s " for udp.
        pad_to(out, start, 5);
        out.push(' ');
        push_right(out, s.rx_queue, 6);
        out.push(' ');
        push_right(out, s.tx_queue, 6);
        out.push(' ');
        self.address(out, s.local, proto);
        out.push(' ');
        self.address(out, s.remote, proto);
        out.push(' ');
        let start = out.len();
        state(out, proto, s.state);
        pad_to(out, start, 11);
        if self.columns.extend {
            let _ = write!(out, " {:<10} {:<10}", self.names.user(s.uid), s.inode);
        }
        if self.columns.programs {
            out.push(' ');
            program(out, row.owner);
        }
        if self.columns.timers {
            out.push(' ');
            self.timer(out, proto, s);
        }
        if self.live {
            out.push(' ');
            let age = match row.in_state {
                Some(StateAge::Exact(ns)) => {
                    let _ = write!(out, "{:.1}s", ns as f64 / 1e9);
                    ns
                }
                Some(StateAge::Bound(ns)) => {
                    let _ = write!(out, ">{:.1}s", ns as f64 / 1e9);
                    ns
                }
                None => {
                    out.push('-');
                    0
                }
            };
            // The peer closed that long ago and the application has not.
            if s.state == netstat_common::tcp_state::CLOSE_WAIT && age >= CLOSE_WAIT_LEAK_NS {
                out.push_str(" leak");
            }
        }
        if let Some(inode) = row.netns {
            let _ = write!(out, " {inode}");
        }
        out.push('\n');
    }

    /// `host:port` in a 23-wide column, cut to 22+1 characters unless -W
    /// (the port keeps up to 18 characters, the host gets the rest).
    fn address(&self, out: &mut String, addr: SocketAddr, proto: InetProto) {
        let start = out.len();
        self.names.write_host(out, addr.ip());
        let host_end = out.len();
        out.push(':');
        self.names.write_port(out, addr.port(), proto.services());
        let (host_len, port_len) = (host_end - start, out.len() - host_end - 1);
        if !self.columns.wide && host_len + port_len > SHORT_ADDRESS {
            let port = out[host_end + 1..].to_string();
            let keep_port = port_len.min(SHORT_ADDRESS - 4);
            let keep_host = SHORT_ADDRESS - keep_port;
            out.truncate(start + floor_char_boundary(&out[start..host_end], keep_host));
            out.push(':');
            out.push_str(&port[..floor_char_boundary(&port, keep_port)]);
        }
        pad_to(out, start, 23);
    }

    /// The -o column: `keepalive (7190.43/0/0)`: timer, seconds left,
    /// retransmits, probes.
    fn timer(&self, out: &mut String, proto: InetProto, s: &InetSocket) {
        let tcp = proto == InetProto::Tcp;
        // TCP timers are in clock ticks; netstat divides UDP and raw ones by 100.
        let hz = if tcp { self.ticks_per_second } else { 100 };
        let secs = s.timer_ticks as f64 / hz as f64;
        // netstat shows no retransmit count for UDP.
        let retr = if matches!(proto, InetProto::Udp | InetProto::UdpLite) {
            0
        } else {
            s.retransmits
        };
        let (retr, probes) = (retr, s.timeouts);
        let _ = match (s.timer, tcp) {
            (0, _) => write!(out, "off (0.00/{retr}/{probes})"),
            (1, true) => write!(out, "on ({secs:.2}/{retr}/{probes})"),
            (2, true) => write!(out, "keepalive ({secs:.2}/{retr}/{probes})"),
            (3, true) => write!(out, "timewait ({secs:.2}/{retr}/{probes})"),
            (4, true) => write!(out, "probe ({secs:.2}/{retr}/{probes})"),
            (n @ (1 | 2), false) => write!(out, "on{n} ({secs:.2}/{retr}/{probes})"),
            (n, _) => write!(out, "unkn-{n} ({secs:.2}/{retr}/{probes})"),
        };
    }

    pub fn unix_header(&self, out: &mut String) {
        let _ = write!(
            out,
            "Active UNIX domain sockets {}\nProto RefCnt Flags       Type       State         I-Node  ",
            self.scope()
        );
        if self.columns.programs {
            let _ = write!(out, " {:<PROGRAM_WIDTH$}", "PID/Program name");
        }
        out.push_str(" Path\n");
    }

    pub fn unix_row(&self, out: &mut String, s: &UnixSocket) {
        let proto = if s.protocol == 0 { "unix" } else { "??" };
        let mut flags = String::from("[ ");
        for (bit, name) in [(ACCEPTING, "ACC "), (1 << 17, "W "), (1 << 18, "N ")] {
            if s.flags & bit != 0 {
                flags.push_str(name);
            }
        }
        flags.push(']');
        let kind = match s.kind {
            1 => "STREAM",
            2 => "DGRAM",
            3 => "RAW",
            4 => "RDM",
            5 => "SEQPACKET",
            _ => "UNKNOWN",
        };
        let state = match s.state {
            0 => "FREE",
            1 if s.flags & ACCEPTING != 0 => "LISTENING",
            1 => "",
            2 => "CONNECTING",
            3 => "CONNECTED",
            4 => "DISCONNECTING",
            _ => "UNKNOWN",
        };
        let _ = write!(
            out,
            "{proto:<5} {:<6} {flags:<11} {kind:<10} {state:<13} {:<8}",
            s.refcnt, s.inode
        );
        if self.columns.programs {
            out.push(' ');
            program(out, self.owners.and_then(|o| o.by_inode.get(&s.inode)));
        }
        out.push(' ');
        out.push_str(s.path.as_deref().unwrap_or(""));
        out.push('\n');
    }
}

fn floor_char_boundary(s: &str, mut at: usize) -> usize {
    if at >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{names::Numeric, procnet::sockets::InetSocket};

    /// The live view marks a socket in CLOSE_WAIT for 10 s or more.
    #[test]
    fn a_live_close_wait_row_of_ten_seconds_is_marked_a_leak() {
        let names = Names::new(Numeric::default());
        let plan = SocketPlan::default();
        let table = SocketTable {
            names: &names,
            columns: &plan,
            owners: None,
            ticks_per_second: 100,
            live: true,
            netns: false,
        };
        let socket = InetSocket::from_endpoints(
            "127.0.0.1:80".parse().unwrap(),
            "127.0.0.1:5000".parse().unwrap(),
            netstat_common::tcp_state::CLOSE_WAIT,
        );
        let line = |age| {
            let mut out = String::new();
            table.inet_row(
                &mut out,
                &InetRow {
                    proto: InetProto::Tcp,
                    socket: &socket,
                    owner: None,
                    in_state: Some(age),
                    netns: None,
                },
            );
            out
        };
        assert!(line(StateAge::Exact(12_000_000_000)).ends_with("CLOSE_WAIT  12.0s leak\n"));
        assert!(line(StateAge::Bound(10_000_000_000)).ends_with(">10.0s leak\n"));
        assert!(line(StateAge::Exact(9_900_000_000)).ends_with("CLOSE_WAIT  9.9s\n"));
    }
}
