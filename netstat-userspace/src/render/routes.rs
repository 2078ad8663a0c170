//! `netstat -r`: the kernel routing tables, IPv4 and IPv6.

use std::fmt::Write as _;

use crate::{
    names::{Names, V4Lookup},
    procnet::routes::{Route4, Route6},
};

// RTF_* flags from <linux/route.h> and <linux/ipv6_route.h>.
const RTF_UP: u32 = 0x0001;
const RTF_GATEWAY: u32 = 0x0002;
const RTF_HOST: u32 = 0x0004;
const RTF_REINSTATE: u32 = 0x0008;
const RTF_DYNAMIC: u32 = 0x0010;
const RTF_MODIFIED: u32 = 0x0020;
const RTF_MTU: u32 = 0x0040;
const RTF_WINDOW: u32 = 0x0080;
const RTF_IRTT: u32 = 0x0100;
const RTF_REJECT: u32 = 0x0200;
const RTF_DEFAULT: u32 = 0x0001_0000;
const RTF_ALLONLINK: u32 = 0x0002_0000;
const RTF_ADDRCONF: u32 = 0x0004_0000;
const RTF_NONEXTHOP: u32 = 0x0020_0000;
const RTF_EXPIRES: u32 = 0x0040_0000;
const RTF_CACHE: u32 = 0x0100_0000;
const RTF_FLOW: u32 = 0x0200_0000;
const RTF_POLICY: u32 = 0x0400_0000;
const RTF_LOCAL: u32 = 0x8000_0000;
const RTF_NOTCACHED: u32 = 0x0400;

/// Header for the IPv4 table in each of netstat's three column sets.
pub fn v4_header(out: &mut String, columns: u8) {
    out.push_str("Kernel IP routing table\n");
    out.push_str(match columns {
        0 => "",
        1 => "Destination     Gateway         Genmask         Flags Metric Ref    Use Iface\n",
        2 => "Destination     Gateway         Genmask         Flags   MSS Window  irtt Iface\n",
        _ => "Destination     Gateway         Genmask         Flags Metric Ref    Use Iface    MSS   Window irtt\n",
    });
}

pub fn v4_row(out: &mut String, names: &Names, columns: u8, r: &Route4) {
    if r.flags & RTF_UP == 0 || columns == 0 {
        return;
    }
    let dest = names.host_v4(
        r.destination,
        V4Lookup {
            netmask: r.mask,
            default_name: true,
            force_host: r.flags & RTF_HOST != 0,
        },
    );
    let gateway = names.host_v4(
        r.gateway,
        V4Lookup {
            netmask: V4Lookup::SOCKET.netmask,
            default_name: false,
            force_host: true,
        },
    );
    let (dest, gateway) = (cut15(&dest), cut15(&gateway));
    let mask = r.mask.to_string();
    let flags = v4_flags(r.flags);
    let reject = r.flags & RTF_REJECT != 0;
    let (metric, refcnt, uses) = (r.metric, r.refcnt, r.uses);
    let (mss, window, irtt) = (r.mss, r.window, r.irtt);
    let _ = match (columns, reject) {
        (1, true) => writeln!(
            out,
            "{dest:<15} -               {mask:<15} {flags:<5} {metric:<6} -  {uses:>7} -"
        ),
        (1, false) => writeln!(
            out,
            "{dest:<15} {gateway:<15} {mask:<15} {flags:<5} {metric:<6} {refcnt:<2} {uses:>7} {}",
            r.iface
        ),
        (2, true) => writeln!(
            out,
            "{dest:<15} -               {mask:<15} {flags:<5}     - -          - -"
        ),
        (2, false) => writeln!(
            out,
            "{dest:<15} {gateway:<15} {mask:<15} {flags:<5} {mss:>5} {window:<5} {irtt:>6} {}",
            r.iface
        ),
        (_, true) => writeln!(
            out,
            "{dest:<15} -               {mask:<15} {flags:<5} {metric:<6} -  {uses:>7} -        -     -      -"
        ),
        (_, false) => writeln!(
            out,
            "{dest:<15} {gateway:<15} {mask:<15} {flags:<5} {metric:<6} {refcnt:<3} {uses:>6} {:<6.6}   {mss:<5} {window:<6} {irtt}",
            r.iface
        ),
    };
}

/// netstat cuts route addresses to 15 characters.
fn cut15(s: &str) -> &str {
    match s.char_indices().nth(15) {
        Some((at, _)) => &s[..at],
        None => s,
    }
}

fn v4_flags(f: u32) -> String {
    let mut s = String::new();
    if f & RTF_UP != 0 {
        s.push('U');
    }
    if f & RTF_GATEWAY != 0 {
        s.push('G');
    }
    // A reject route replaces what came before with "!".
    if f & RTF_REJECT != 0 {
        s = "!".into();
    }
    for (bit, c) in [
        (RTF_HOST, 'H'),
        (RTF_REINSTATE, 'R'),
        (RTF_DYNAMIC, 'D'),
        (RTF_MODIFIED, 'M'),
        (RTF_DEFAULT, 'd'),
        (RTF_ALLONLINK, 'a'),
        (RTF_ADDRCONF, 'c'),
        (RTF_NONEXTHOP, 'o'),
        (RTF_EXPIRES, 'e'),
        (RTF_CACHE, 'c'),
        (RTF_FLOW, 'f'),
        (RTF_POLICY, 'p'),
        (RTF_LOCAL, 'l'),
        (RTF_MTU, 'u'),
        (RTF_WINDOW, 'w'),
        (RTF_IRTT, 'i'),
        (RTF_NOTCACHED, 'n'),
    ] {
        if f & bit != 0 {
            s.push(c);
        }
    }
    s
}

/// The IPv4 routing cache went away in Linux 3.6; /proc/net/rt_cache is
/// only a header now, so netstat -rC prints just this.
pub fn v4_cache_header(out: &mut String, columns: u8) {
    out.push_str("Kernel IP routing cache\n");
    out.push_str(match columns {
        0 => "",
        1 => "Source          Destination     Gateway         Flags Metric Ref    Use Iface\n",
        2 => "Source          Destination     Gateway         Flags   MSS Window  irtt Iface\n",
        _ => "Source          Destination     Gateway         Flags Metric Ref    Use Iface    MSS   Window irtt  TOS HHRef HHUptod     SpecDst\n",
    });
}

pub fn v6_header(out: &mut String, cache: bool) {
    out.push_str(if cache {
        "Kernel IPv6 routing cache\n"
    } else {
        "Kernel IPv6 routing table\n"
    });
    out.push_str(
        "Destination                    Next Hop                   Flag Met Ref  Use If\n",
    );
}

pub fn v6_row(out: &mut String, names: &Names, r: &Route6) {
    let dest = format!("{}/{}", names.host_v6(r.destination, false), r.prefix_len);
    let next_hop = names.host_v6(r.next_hop, false);
    let mut flags = String::new();
    for (bit, c) in [
        (RTF_UP, 'U'),
        (RTF_REJECT, '!'),
        (RTF_GATEWAY, 'G'),
        (RTF_HOST, 'H'),
        (RTF_DEFAULT, 'D'),
        (RTF_ADDRCONF, 'A'),
        (RTF_CACHE, 'C'),
        (RTF_ALLONLINK, 'a'),
        (RTF_EXPIRES, 'e'),
        (RTF_MODIFIED, 'm'),
        (RTF_NONEXTHOP, 'n'),
        (RTF_FLOW, 'f'),
    ] {
        if r.flags & bit != 0 {
            flags.push(c);
        }
    }
    let _ = writeln!(
        out,
        "{dest:<30} {next_hop:<26} {flags:<4} {:<3} {:<1} {:>6} {}",
        r.metric, r.refcnt, r.uses, r.iface
    );
}

/// Whether an IPv6 route belongs in the cache listing (-C) or the table.
pub fn v6_is_cache(r: &Route6) -> bool {
    r.flags & RTF_CACHE != 0
}
