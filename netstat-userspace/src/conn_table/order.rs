//! The connection table in display order: IPv4 before IPv6, then by
//! endpoints and state, TIME_WAIT rows merged in.

use std::net::SocketAddr;

use super::{ConnTable, Packed, Row, TimeWait, Tuple};

/// One row in display order: a connection, or a TIME_WAIT row.
pub enum Entry<'a> {
    Row(&'a Row),
    TimeWait(&'a Packed, &'a TimeWait),
}

impl Entry<'_> {
    /// Where the entry is shown (`order`).
    pub fn order(&self) -> (bool, SocketAddr, SocketAddr, u8) {
        match self {
            Entry::Row(r) => order((r.socket.local, r.socket.remote), r.socket.state),
            Entry::TimeWait(packed, tw) => order(packed.tuple(), tw.state),
        }
    }
}

/// Where a row is shown: IPv4 before IPv6, then by endpoints and state.
fn order((local, remote): Tuple, state: u8) -> (bool, SocketAddr, SocketAddr, u8) {
    (local.is_ipv6(), local, remote, state)
}

/// `order` as one integer for an IPv4 row, so that sorting a large table
/// compares integers; every other row gets the largest, and `order` ranks
/// those among themselves.
fn ipv4_order((local, remote): Tuple, state: u8) -> u128 {
    let (SocketAddr::V4(l), SocketAddr::V4(r)) = (local, remote) else {
        return u128::MAX;
    };
    let endpoint =
        |a: std::net::SocketAddrV4| u128::from(u32::from(*a.ip())) << 16 | u128::from(a.port());
    endpoint(l) << 56 | endpoint(r) << 8 | u128::from(state)
}

impl ConnTable {
    /// Rows in display order: IPv4 before IPv6, then by endpoints. The
    /// TIME_WAIT rows sort by their packed bytes and are merged in.
    pub fn entries(&self) -> Vec<Entry<'_>> {
        let row_order = |r: &Row| order((r.socket.local, r.socket.remote), r.socket.state);
        let mut keyed: Vec<(u128, &Row)> = self
            .rows
            .values()
            .map(|r| {
                (
                    ipv4_order((r.socket.local, r.socket.remote), r.socket.state),
                    r,
                )
            })
            .collect();
        // Stable: listeners sharing endpoints keep their order between drawings.
        keyed.sort_by(|(a, ra), (b, rb)| a.cmp(b).then_with(|| row_order(ra).cmp(&row_order(rb))));
        let rows = keyed.into_iter().map(|(_, r)| r);
        let mut time_waits: Vec<(&Packed, &TimeWait)> = self.time_wait.iter().collect();
        time_waits.sort_unstable_by_key(|(packed, _)| *packed);
        let mut entries = Vec::with_capacity(rows.len() + time_waits.len());
        let mut time_waits = time_waits.into_iter().peekable();
        for row in rows {
            while let Some((packed, tw)) =
                time_waits.next_if(|(p, tw)| order(p.tuple(), tw.state) < row_order(row))
            {
                entries.push(Entry::TimeWait(packed, tw));
            }
            entries.push(Entry::Row(row));
        }
        entries.extend(time_waits.map(|(packed, tw)| Entry::TimeWait(packed, tw)));
        entries
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ipv4_sort_key_ranks_rows_as_the_display_order_does() {
        let addrs = [
            "10.0.0.1:80",
            "10.0.0.1:443",
            "10.0.0.2:1",
            "9.255.255.255:65535",
            "127.0.0.1:0",
            "[::1]:80",
            "[::1]:79",
        ];
        let mut cases = Vec::new();
        for local in addrs {
            for remote in addrs {
                let (local, remote): (SocketAddr, SocketAddr) =
                    (local.parse().unwrap(), remote.parse().unwrap());
                if local.is_ipv4() == remote.is_ipv4() {
                    cases.extend([1, 10].map(|state| ((local, remote), state)));
                }
            }
        }
        for a in &cases {
            for b in &cases {
                let by_key = ipv4_order(a.0, a.1)
                    .cmp(&ipv4_order(b.0, b.1))
                    .then_with(|| order(a.0, a.1).cmp(&order(b.0, b.1)));
                assert_eq!(by_key, order(a.0, a.1).cmp(&order(b.0, b.1)), "{a:?} {b:?}");
            }
        }
    }
}
