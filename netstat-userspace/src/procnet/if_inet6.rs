//! /proc/net/if_inet6: the IPv6 addresses of each interface.

use std::net::Ipv6Addr;

use super::{ParseError, Source, hex, routes::ipv6_bytes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub address: Ipv6Addr,
    pub prefix_len: u32,
    /// IPV6_ADDR_* scope bits (0 global, 0x10 host, 0x20 link, 0x40 site).
    pub scope: u32,
    pub device: String,
}

/// `address ifindex prefixlen scope flags device`, all hex but the name.
pub fn parse(text: &str, file: &str) -> Result<Vec<Address>, ParseError> {
    let src = Source { file };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 6 {
                return Err(src.error(i, format!("expected 6 columns, found {}", f.len())));
            }
            let number =
                |v: &str| hex::<u32>(v).ok_or_else(|| src.error(i, format!("bad number {v:?}")));
            Ok(Address {
                address: ipv6_bytes(f[0])
                    .ok_or_else(|| src.error(i, format!("bad address {:?}", f[0])))?,
                prefix_len: number(f[2])?,
                scope: number(f[3])?,
                device: f[5].to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_addresses_and_rejects_short_lines() {
        let a = parse(
            "00000000000000000000000000000001 01 80 10 80       lo\n",
            "/proc/net/if_inet6",
        )
        .unwrap();
        assert_eq!(a[0].address, Ipv6Addr::LOCALHOST);
        assert_eq!(
            (a[0].prefix_len, a[0].scope, a[0].device.as_str()),
            (128, 0x10, "lo")
        );
        assert_eq!(
            parse("0000 01 80\n", "/proc/net/if_inet6")
                .unwrap_err()
                .line,
            1
        );
        let bad = "0000000000000000000000000000000g 01 80 10 80 lo\n";
        assert!(parse(bad, "/proc/net/if_inet6").is_err());
    }
}
