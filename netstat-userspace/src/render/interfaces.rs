//! `netstat -i`: the short interface table, and with -e the ifconfig-style
//! listing.

use std::{fmt::Write as _, net::Ipv4Addr};

use crate::{
    names::ntop6,
    procnet::{dev::DevCounters, if_inet6},
};

pub struct Interface {
    pub counters: DevCounters,
    /// IFF_* bits.
    pub flags: u32,
    pub mtu: i32,
    /// Only gathered for -e.
    pub details: Option<Details>,
}

/// What `-ie` shows beyond the short table.
pub struct Details {
    pub ipv4: Option<Ipv4Info>,
    pub ipv6: Vec<if_inet6::Address>,
    /// ARPHRD_* type and the first 8 bytes of the hardware address.
    pub hw_type: u16,
    pub hw_addr: [u8; 8],
    pub tx_queue_len: Option<i32>,
    pub irq: u8,
    pub base_addr: u16,
    pub mem_start: u64,
    pub mem_end: u64,
    pub dma: u8,
}

pub struct Ipv4Info {
    pub address: Ipv4Addr,
    pub netmask: Ipv4Addr,
    pub broadcast: Ipv4Addr,
    pub destination: Ipv4Addr,
}

pub fn header(out: &mut String, long: bool) {
    out.push_str("Kernel Interface table\n");
    if !long {
        out.push_str("Iface             MTU    RX-OK RX-ERR RX-DRP RX-OVR    TX-OK TX-ERR TX-DRP TX-OVR Flg\n");
    }
}

pub fn row(out: &mut String, i: &Interface) {
    let c = &i.counters;
    let name: String = c.name.chars().take(15).collect();
    let _ = write!(
        out,
        "{name:<15} {:>5} {:>8} {:>6} {:>6} {:<6} {:>8} {:>6} {:>6} {:>6} ",
        i.mtu,
        c.rx_packets,
        c.rx_errors,
        c.rx_dropped,
        c.rx_fifo,
        c.tx_packets,
        c.tx_errors,
        c.tx_dropped,
        c.tx_fifo
    );
    if i.flags == 0 {
        out.push_str("[NO FLAGS]");
    }
    for (bit, c) in [
        (libc::IFF_ALLMULTI, 'A'),
        (libc::IFF_BROADCAST, 'B'),
        (libc::IFF_DEBUG, 'D'),
        (libc::IFF_LOOPBACK, 'L'),
        (libc::IFF_MULTICAST, 'M'),
        (libc::IFF_DYNAMIC, 'd'),
        (libc::IFF_PROMISC, 'P'),
        (libc::IFF_NOTRAILERS, 'N'),
        (libc::IFF_NOARP, 'O'),
        (libc::IFF_POINTOPOINT, 'P'),
        (libc::IFF_SLAVE, 's'),
        (libc::IFF_MASTER, 'm'),
        (libc::IFF_RUNNING, 'R'),
        (libc::IFF_UP, 'U'),
    ] {
        if i.flags & bit as u32 != 0 {
            out.push(c);
        }
    }
    out.push('\n');
}

/// One interface in ifconfig's layout (net-tools `ife_print_long`).
pub fn long(out: &mut String, i: &Interface, d: &Details) {
    let _ = writeln!(
        out,
        "{}: {}  mtu {}",
        i.counters.name,
        flag_list(i.flags),
        i.mtu
    );
    addresses(out, i.flags, d);
    hardware(out, d);
    traffic(out, &i.counters);
    device(out, d);
    out.push('\n');
}

/// `flags=4163<UP,BROADCAST,RUNNING,MULTICAST>` as net-tools writes it.
fn flag_list(bits: u32) -> String {
    let mut flags = format!("flags={bits}<");
    if bits == 0 {
        flags.push('>');
    }
    for (bit, name) in [
        (libc::IFF_UP, "UP"),
        (libc::IFF_BROADCAST, "BROADCAST"),
        (libc::IFF_DEBUG, "DEBUG"),
        (libc::IFF_LOOPBACK, "LOOPBACK"),
        (libc::IFF_POINTOPOINT, "POINTOPOINT"),
        (libc::IFF_NOTRAILERS, "NOTRAILERS"),
        (libc::IFF_RUNNING, "RUNNING"),
        (libc::IFF_NOARP, "NOARP"),
        (libc::IFF_PROMISC, "PROMISC"),
        (libc::IFF_ALLMULTI, "ALLMULTI"),
        (libc::IFF_SLAVE, "SLAVE"),
        (libc::IFF_MASTER, "MASTER"),
        (libc::IFF_MULTICAST, "MULTICAST"),
        (libc::IFF_DYNAMIC, "DYNAMIC"),
    ] {
        if bits & bit as u32 != 0 {
            flags.push_str(name);
            flags.push(',');
        }
    }
    // net-tools closes the list by overwriting its last character.
    if flags.ends_with(',') {
        flags.pop();
        flags.push('>');
    } else {
        flags.pop();
    }
    flags
}

/// The `inet` and `inet6` lines.
fn addresses(out: &mut String, flags: u32, d: &Details) {
    if let Some(v4) = &d.ipv4 {
        let _ = write!(out, "        inet {}  netmask {}", v4.address, v4.netmask);
        if flags & libc::IFF_BROADCAST as u32 != 0 {
            let _ = write!(out, "  broadcast {}", v4.broadcast);
        }
        if flags & libc::IFF_POINTOPOINT as u32 != 0 {
            let _ = write!(out, "  destination {}", v4.destination);
        }
        out.push('\n');
    }
    for a in &d.ipv6 {
        let _ = write!(
            out,
            "        inet6 {}  prefixlen {}  scopeid 0x{:x}",
            ntop6(a.address),
            a.prefix_len,
            a.scope
        );
        out.push_str(&scope_names(a.scope));
        out.push('\n');
    }
}

/// The hardware line: type, address, queue length.
fn hardware(out: &mut String, d: &Details) {
    let (name, title) = match d.hw_type {
        1 => ("ether", "Ethernet"),
        772 => ("loop", "Local Loopback"),
        _ => ("unspec", "UNSPEC"),
    };
    let _ = write!(out, "        {name}");
    match d.hw_type {
        1 => {
            let a = d.hw_addr;
            let _ = write!(
                out,
                " {:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                a[0], a[1], a[2], a[3], a[4], a[5]
            );
        }
        772 => {}
        _ => {
            // net-tools prints a struct sockaddr's worth (16 bytes) of an
            // 8-byte copy.
            let bytes: Vec<String> = d
                .hw_addr
                .iter()
                .chain(&[0; 8])
                .map(|b| format!("{b:02X}"))
                .collect();
            let _ = write!(out, " {}", bytes.join("-"));
        }
    }
    if let Some(len) = d.tx_queue_len {
        let _ = write!(out, "  txqueuelen {len}");
    }
    let _ = writeln!(out, "  ({title})");
}

/// The RX and TX lines.
fn traffic(out: &mut String, c: &DevCounters) {
    let (rx, rx_unit) = human(c.rx_bytes);
    let (tx, tx_unit) = human(c.tx_bytes);
    let _ = writeln!(
        out,
        "        RX packets {}  bytes {} ({}.{} {rx_unit})",
        c.rx_packets,
        c.rx_bytes,
        rx / 10,
        rx % 10
    );
    let _ = writeln!(
        out,
        "        RX errors {}  dropped {}  overruns {}  frame {}",
        c.rx_errors, c.rx_dropped, c.rx_fifo, c.rx_frame
    );
    let _ = writeln!(
        out,
        "        TX packets {}  bytes {} ({}.{} {tx_unit})",
        c.tx_packets,
        c.tx_bytes,
        tx / 10,
        tx % 10
    );
    let _ = writeln!(
        out,
        "        TX errors {}  dropped {} overruns {}  carrier {}  collisions {}",
        c.tx_errors, c.tx_dropped, c.tx_fifo, c.tx_carrier, c.collisions
    );
}

/// The `device` line, where the driver reports resources.
fn device(out: &mut String, d: &Details) {
    if d.irq == 0 && d.mem_start == 0 && d.dma == 0 && d.base_addr < 0x100 {
        return;
    }
    out.push_str("        device ");
    if d.irq != 0 {
        let _ = write!(out, "interrupt {}  ", d.irq);
    }
    if d.base_addr >= 0x100 {
        let _ = write!(out, "base 0x{:x}  ", d.base_addr);
    }
    if d.mem_start != 0 {
        let _ = write!(out, "memory 0x{:x}-{:x}  ", d.mem_start, d.mem_end);
    }
    if d.dma != 0 {
        let _ = write!(out, "  dma 0x{:x}", d.dma);
    }
    out.push('\n');
}

/// `<global>`, `<link>`, `<host>` ... from IPV6_ADDR_* scope bits.
fn scope_names(mut scope: u32) -> String {
    let mut s = String::from("<");
    if scope & 0x0080 != 0 {
        s.push_str("compat,");
        scope -= 0x0080;
    }
    if scope == 0 {
        s.push_str("global,");
    }
    for (bit, name) in [(0x0020, "link,"), (0x0040, "site,"), (0x0010, "host,")] {
        if scope & bit != 0 {
            s.push_str(name);
        }
    }
    if s.ends_with(',') {
        s.pop();
        s.push('>');
    } else {
        s.pop();
    }
    s
}

/// Bytes as tenths of the largest binary unit they exceed (net-tools'
/// rounding down, and its EiB quirk).
fn human(bytes: u64) -> (u64, &'static str) {
    const UNITS: [(u64, &str); 5] = [
        (1 << 50, "PiB"),
        (1 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    if bytes > 1 << 60 {
        return (bytes / 115_292_150_460_684_697, "EiB");
    }
    let tenths = bytes.wrapping_mul(10);
    UNITS
        .iter()
        .find(|(size, _)| bytes > *size)
        .map_or((tenths, "B"), |(size, unit)| (tenths / size, unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_scopes() {
        assert_eq!(human(6382), (62, "KiB"));
        assert_eq!(human(200_543_659), (1912, "MiB"));
        assert_eq!(human(1024), (10240, "B"));
        assert_eq!(scope_names(0x20), "<link>");
        assert_eq!(scope_names(0), "<global>");
        assert_eq!(scope_names(0x10), "<host>");
        assert_eq!(scope_names(0x100), "");
    }
}
