//! `netstat -i`: the short interface table.

use std::fmt::Write as _;

use crate::procnet::dev::DevCounters;

pub struct Interface {
    pub counters: DevCounters,
    /// IFF_* bits.
    pub flags: u32,
    pub mtu: i32,
}

pub fn header(out: &mut String) {
    out.push_str("Kernel Interface table\nIface             MTU    RX-OK RX-ERR RX-DRP RX-OVR    TX-OK TX-ERR TX-DRP TX-OVR Flg\n");
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
