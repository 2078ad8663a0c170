//! /proc/net/route (IPv4 FIB) and /proc/net/ipv6_route.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::{ParseError, Source, hex, ipv4_hex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route4 {
    pub iface: String,
    pub destination: Ipv4Addr,
    pub gateway: Ipv4Addr,
    /// RTF_* bits.
    pub flags: u32,
    pub refcnt: i64,
    pub uses: i64,
    pub metric: i64,
    pub mask: Ipv4Addr,
    pub mss: i64,
    pub window: i64,
    pub irtt: i64,
}

/// The columns of /proc/net/route, located by the header's names as netstat
/// does, so a kernel that reorders them still parses.
const ROUTE_COLUMNS: [&str; 11] = [
    "Iface",
    "Destination",
    "Gateway",
    "Flags",
    "RefCnt",
    "Use",
    "Metric",
    "Mask",
    "MTU",
    "Window",
    "IRTT",
];

pub fn parse_v4(text: &str, file: &str) -> Result<Vec<Route4>, ParseError> {
    let src = Source { file };
    let mut lines = text.lines().enumerate();
    let header: Vec<&str> = match lines.next() {
        Some((_, h)) => h.split_ascii_whitespace().collect(),
        None => return Err(src.error(0, "empty file, expected a column header")),
    };
    let mut at = [0usize; 11];
    for (slot, name) in at.iter_mut().zip(ROUTE_COLUMNS) {
        *slot = header
            .iter()
            .position(|h| *h == name)
            .ok_or_else(|| src.error(0, format!("column header lacks {name}")))?;
    }
    lines
        .map(|(i, line)| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            let get = |col: usize| {
                f.get(at[col]).copied().ok_or_else(|| {
                    src.error(
                        i,
                        format!("line ends before the {} column", ROUTE_COLUMNS[col]),
                    )
                })
            };
            let addr = |col: usize| {
                let v = get(col)?;
                ipv4_hex(v).ok_or_else(|| src.error(i, format!("bad {} {v:?}", ROUTE_COLUMNS[col])))
            };
            let int = |col: usize| {
                let v = get(col)?;
                v.parse::<i64>()
                    .map_err(|_| src.error(i, format!("bad {} {v:?}", ROUTE_COLUMNS[col])))
            };
            let flags_field = get(3)?;
            Ok(Route4 {
                iface: get(0)?.to_string(),
                destination: addr(1)?,
                gateway: addr(2)?,
                flags: hex(flags_field)
                    .ok_or_else(|| src.error(i, format!("bad Flags {flags_field:?}")))?,
                refcnt: int(4)?,
                uses: int(5)?,
                metric: int(6)?,
                mask: addr(7)?,
                mss: int(8)?,
                window: int(9)?,
                irtt: int(10)?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route6 {
    pub destination: Ipv6Addr,
    pub prefix_len: u8,
    pub next_hop: Ipv6Addr,
    /// Printed by netstat as a signed number (0xffffffff shows as -1).
    pub metric: i32,
    pub refcnt: i32,
    pub uses: i32,
    pub flags: u32,
    pub iface: String,
}

/// /proc/net/ipv6_route has no header; addresses are 32 hex digits in
/// network byte order.
pub fn parse_v6(text: &str, file: &str) -> Result<Vec<Route6>, ParseError> {
    let src = Source { file };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 10 {
                return Err(src.error(i, format!("expected 10 columns, found {}", f.len())));
            }
            let addr =
                |v: &str| ipv6_bytes(v).ok_or_else(|| src.error(i, format!("bad address {v:?}")));
            let word =
                |v: &str| hex::<u32>(v).ok_or_else(|| src.error(i, format!("bad number {v:?}")));
            Ok(Route6 {
                destination: addr(f[0])?,
                prefix_len: hex(f[1])
                    .ok_or_else(|| src.error(i, format!("bad prefix length {:?}", f[1])))?,
                next_hop: addr(f[4])?,
                metric: word(f[5])? as i32,
                refcnt: word(f[6])? as i32,
                uses: word(f[7])? as i32,
                flags: word(f[8])?,
                iface: f[9].to_string(),
            })
        })
        .collect()
}

/// 32 hex digits, most significant byte first (the kernel's `%pi6`).
pub fn ipv6_bytes(field: &str) -> Option<Ipv6Addr> {
    if field.len() != 32 || !field.is_ascii() {
        return None;
    }
    let mut bytes = [0u8; 16];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&field[i * 2..i * 2 + 2], 16).ok()?;
    }
    Some(Ipv6Addr::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str = "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\t\n";

    #[test]
    fn reads_ipv4_routes() {
        let text = format!("{V4}a0\t00000000\t02004D0A\t0003\t0\t0\t5\t00000000\t0\t0\t0\n");
        let r = parse_v4(&text, "/proc/net/route").unwrap();
        assert_eq!(r[0].gateway, Ipv4Addr::new(10, 77, 0, 2));
        assert_eq!((r[0].flags, r[0].metric), (3, 5));
    }

    #[test]
    fn reads_ipv6_routes() {
        let text = "fd000077000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001       a0\n00000000000000000000000000000000 00 00000000000000000000000000000000 00 00000000000000000000000000000000 ffffffff 00000001 00000000 00200200       lo\n";
        let r = parse_v6(text, "/proc/net/ipv6_route").unwrap();
        assert_eq!(r[0].destination, "fd00:77::".parse::<Ipv6Addr>().unwrap());
        assert_eq!((r[0].prefix_len, r[0].metric), (64, 256));
        assert_eq!(
            (r[1].metric, r[1].flags, r[1].iface.as_str()),
            (-1, 0x200200, "lo")
        );
    }

    #[test]
    fn broken_route_files_name_the_line() {
        let cut = format!("{V4}a0\t00000000\t02004D0A\t0003\t0\n");
        assert_eq!(
            parse_v4(&cut, "/proc/net/route").unwrap_err().to_string(),
            "/proc/net/route line 2: line ends before the Use column"
        );
        assert_eq!(
            parse_v4("Iface\tDestination\n", "/proc/net/route")
                .unwrap_err()
                .line,
            1
        );
        assert_eq!(parse_v4("", "/proc/net/route").unwrap_err().line, 1);
        let e = parse_v6("fd00 40\n", "/proc/net/ipv6_route").unwrap_err();
        assert_eq!(
            (e.line, e.reason.as_str()),
            (1, "expected 10 columns, found 2")
        );
        let bad = "zz000077000000000000000000000000 40 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001 a0\n";
        assert!(parse_v6(bad, "/proc/net/ipv6_route").is_err());
    }
}
