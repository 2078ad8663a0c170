//! Sockets: which /proc/net files to read for the plan, which rows netstat
//! would show (-a, -l), and the "-p" owner scan.

use std::{net::IpAddr, path::PathBuf};

use anyhow::Result;
use netstat_common::{AF_INET, AF_INET6};

use crate::{
    fail,
    filter::RowFilter,
    names::Names,
    netns,
    owners::InodeOwners,
    plan::SocketPlan,
    procnet::{self, igmp, sockets::InetSocket, unix},
    render::{
        groups, live_diff,
        sockets::{InetProto, InetRow, SocketTable},
    },
    sock_diag,
};

/// TCP rows kept elsewhere (the live view's table) rather than read from
/// the kernel.
pub trait TcpRows {
    /// Hands `visit` the rows `wanted` keeps (a socket and its owner's pid).
    fn visit(
        &self,
        plan: &SocketPlan,
        wanted: &dyn Fn(&InetSocket, Option<u32>) -> bool,
        visit: &mut dyn FnMut(&InetRow),
    );
}

/// The socket listing. With `live` (the event-driven -c view), TCP rows
/// come from it instead of the kernel.
/// Internet rows come from every namespace in `namespaces` (a Netns
/// column tells them apart when there are several); unix sockets and
/// groups from ours.
pub fn list(
    plan: &SocketPlan,
    filter: &RowFilter,
    namespaces: &[(u32, Option<PathBuf>)],
    names: &Names,
    out: &mut String,
    live: Option<&dyn TcpRows>,
) -> Result<()> {
    let owners = owners_needed(plan, filter, live).then(scan_owners);
    let table = SocketTable {
        names,
        columns: plan,
        owners: owners.as_ref().filter(|_| plan.programs),
        ticks_per_second: ticks_per_second(),
        live: live.is_some(),
        netns: namespaces.len() > 1,
    };
    if plan.tcp || plan.udp || plan.udplite || plan.raw {
        table.internet_header(out);
    }
    let rows = Internet {
        plan,
        filter,
        namespaces,
        live,
        owners: owners.as_ref(),
    };
    rows.visit(&mut |row| table.inet_row(out, row))?;
    unlisted(plan, &UNLISTED[..1]);
    if plan.groups {
        groups::header(out);
        if plan.ipv4 {
            match procnet::read_optional("/proc/net/igmp")? {
                Some(text) => groups::rows(out, names, &igmp::parse_v4(&text, "/proc/net/igmp")?),
                None => missing(plan, "AF INET (igmp)")?,
            }
        }
        if plan.ipv6
            && let Some(text) = procnet::read_optional("/proc/net/igmp6")?
        {
            groups::rows(out, names, &igmp::parse_v6(&text, "/proc/net/igmp6")?);
        }
    }
    if plan.unix {
        table.unix_header(out);
        match procnet::read_optional("/proc/net/unix")? {
            Some(text) => {
                for socket in unix::parse(&text, "/proc/net/unix")? {
                    let owner = owners.as_ref().and_then(|o| o.pid_of(socket.inode));
                    if (plan.all || socket.listening() == plan.listening)
                        && filter.unix_matches(&socket, owner)
                    {
                        table.unix_row(out, &socket);
                    }
                }
            }
            None => missing(plan, "AF UNIX")?,
        }
    }
    unlisted(plan, &UNLISTED[1..]);
    Ok(())
}

/// What netstat lists besides inet, inet6 and unix (net-tools 2.10's /proc
/// files), in its order: `-v` says of each that it is missing, as netstat
/// does, or that enetstat does not list it.
const UNLISTED: [(&str, &str); 6] = [
    ("AF INET (sctp)", "/proc/net/sctp/eps"),
    ("AF IPX", "/proc/net/ipx/socket"),
    ("AF AX25", "/proc/net/ax25"),
    ("AF X25", "/proc/net/x25"),
    ("AF NETROM", "/proc/net/nr"),
    ("AF ROSE", "/proc/net/rose"),
];

/// With `-v` and no protocol named: netstat's word on each of `families`.
fn unlisted(plan: &SocketPlan, families: &[(&str, &str)]) {
    if !plan.verbose || plan.explicit {
        return;
    }
    for (what, path) in families {
        if std::path::Path::new(path).exists() {
            eprintln!(
                "enetstat: `{what}' sockets exist on this system, but enetstat does not list them."
            );
        } else {
            eprintln!("enetstat: no support for `{what}' on this system.");
        }
    }
}

/// The rows a `-c --diff` drawing shows, by what identifies them.
pub fn diff_rows(
    plan: &SocketPlan,
    filter: &RowFilter,
    namespaces: &[(u32, Option<PathBuf>)],
    live: &dyn TcpRows,
) -> Result<live_diff::Rows> {
    let mut rows = live_diff::Rows::new();
    internet_rows(plan, filter, namespaces, Some(live), &mut |row| {
        live_diff::add(&mut rows, row)
    })?;
    Ok(rows)
}

/// The Internet rows of the listing as data, from `namespaces` (the live
/// view's --diff, the event log's snapshot).
pub fn internet_rows(
    plan: &SocketPlan,
    filter: &RowFilter,
    namespaces: &[(u32, Option<PathBuf>)],
    live: Option<&dyn TcpRows>,
    visit: &mut dyn FnMut(&InetRow),
) -> Result<()> {
    let owners = owners_needed(plan, filter, live).then(InodeOwners::scan);
    Internet {
        plan,
        filter,
        namespaces,
        live,
        owners: owners.as_ref(),
    }
    .visit(visit)
}

/// Whether rows read from /proc need the owner scan: for -p, or to filter by
/// pid. Live TCP rows carry their owners.
fn owners_needed(plan: &SocketPlan, filter: &RowFilter, live: Option<&dyn TcpRows>) -> bool {
    let proc_rows = live.is_none() || plan.untracked();
    (plan.programs || filter.by_owner()) && proc_rows
}

/// Which Internet rows the listing shows, and where they come from.
struct Internet<'a> {
    plan: &'a SocketPlan,
    filter: &'a RowFilter,
    namespaces: &'a [(u32, Option<PathBuf>)],
    live: Option<&'a dyn TcpRows>,
    owners: Option<&'a InodeOwners>,
}

impl Internet<'_> {
    fn visit(&self, visit: &mut dyn FnMut(&InetRow)) -> Result<()> {
        let plan = self.plan;
        let wanted = |s: &InetSocket, owner: Option<u32>| self.filter.socket_matches(s, owner);
        let several = self.namespaces.len() > 1;
        let protocols = [
            (plan.tcp, InetProto::Tcp, "tcp"),
            (plan.udp, InetProto::Udp, "udp"),
            (plan.udplite, InetProto::UdpLite, "udplite"),
            (plan.raw, InetProto::Raw, "raw"),
        ];
        for (_, proto, file) in protocols.into_iter().filter(|(on, ..)| *on) {
            if let (InetProto::Tcp, Some(rows)) = (proto, self.live) {
                rows.visit(plan, &wanted, visit);
                continue;
            }
            for (inode, enter) in self.namespaces {
                for (family, path) in [
                    (plan.ipv4, format!("/proc/net/{file}")),
                    (plan.ipv6, format!("/proc/net/{file}6")),
                ] {
                    if !family {
                        continue;
                    }
                    let Some(rows) =
                        netns::inside(enter.as_deref(), || read_inet(plan, proto, &path))?
                    else {
                        // Gone since it was listed: nothing of it to show.
                        continue;
                    };
                    let Some(rows) = rows else {
                        // Only the IPv4 file's absence is news (IPv6 may be disabled).
                        if !path.ends_with('6') {
                            missing(plan, &format!("AF INET ({file})"))?;
                        }
                        continue;
                    };
                    for socket in &rows {
                        let owner = self.owners.and_then(|o| o.by_inode.get(&socket.inode));
                        if shown(plan, proto, socket) && wanted(socket, owner.map(|o| o.pid)) {
                            visit(&InetRow {
                                proto,
                                socket,
                                owner,
                                in_state: None,
                                netns: several.then_some(*inode),
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

/// One protocol's sockets of one family, None when the kernel lacks them.
/// TCP comes from sock_diag when netstat's columns allow (not for -e or -o,
/// see `sock_diag`) and the kernel offers it; everything else from `path`.
pub fn read_inet(
    plan: &SocketPlan,
    proto: InetProto,
    path: &str,
) -> Result<Option<Vec<InetSocket>>> {
    if proto == InetProto::Tcp && !plan.extend && !plan.timers {
        let family = if path.ends_with('6') {
            AF_INET6
        } else {
            AF_INET
        };
        match sock_diag::tcp_sockets(family) {
            Ok(rows) => {
                log::info!(
                    "{} TCP sockets of {path} read through sock_diag",
                    rows.len()
                );
                return Ok(Some(rows));
            }
            Err(e) => log::info!("no TCP sock_diag ({e}): reading {path}"),
        }
    }
    let Some(text) = procnet::read_optional(path)? else {
        return Ok(None);
    };
    let rows = procnet::sockets::parse(&text, path)?;
    log::info!("{} sockets read from {path}", rows.len());
    Ok(Some(rows))
}

/// netstat's rules for -a and -l: a TCP socket listens when it has no
/// remote port; UDP and raw sockets when they have no remote address.
pub fn shown(plan: &SocketPlan, proto: InetProto, s: &InetSocket) -> bool {
    if plan.all {
        return true;
    }
    let listening = match proto {
        InetProto::Tcp => s.remote.port() == 0,
        _ => match s.remote.ip() {
            IpAddr::V4(ip) => ip.is_unspecified(),
            IpAddr::V6(ip) => ip.is_unspecified(),
        },
    };
    listening == plan.listening
}

/// A protocol this kernel lacks: netstat says so when the protocol was asked
/// for by name (or with -v), and stops with exit code 1 when asked by name.
fn missing(plan: &SocketPlan, what: &str) -> Result<()> {
    if plan.implied {
        return Ok(());
    }
    let message = format!("no support for `{what}' on this system.");
    if plan.explicit {
        return Err(fail::with_code(1, message));
    }
    if plan.verbose {
        eprintln!("enetstat: {message}");
    }
    Ok(())
}

/// The owner scan for -p, with netstat's notice when some processes could
/// not be looked into.
fn scan_owners() -> InodeOwners {
    let owners = InodeOwners::scan();
    if owners.incomplete {
        if owners.by_inode.is_empty() {
            // SAFETY: geteuid cannot fail.
            let euid = unsafe { libc::geteuid() };
            eprintln!(
                "(No info could be read for \"-p\": geteuid()={euid} but you should be root.)"
            );
        } else {
            eprintln!(
                "(Not all processes could be identified, non-owned process info\n will not be shown, you would have to be root to see it all.)"
            );
        }
    }
    owners
}

pub fn ticks_per_second() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 { hz as u64 } else { 100 }
}
