//! /proc/net/nf_conntrack: the kernel's connection tracking table, where
//! NAT ("masquerade") state lives since ip_masquerade was removed.

use std::net::{IpAddr, SocketAddr};

use super::{ParseError, Source};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    /// "tcp", "udp", ...
    pub protocol: String,
    /// Seconds until the entry expires.
    pub expires: u64,
    /// The original direction, as the client sent it.
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// The reply direction's destination: where replies really go. It differs
    /// from `source` when the connection was source-NATed.
    pub reply_destination: SocketAddr,
}

impl Tracked {
    /// Source NAT rewrote the sender's address or port (masquerading).
    pub fn is_masqueraded(&self) -> bool {
        self.reply_destination != self.source
    }
}

/// `ipv4 2 tcp 6 431999 ESTABLISHED src=.. dst=.. sport=.. dport=.. src=..
/// dst=.. sport=.. dport=.. [ASSURED] mark=0 use=2`. Entries without ports
/// (ICMP, GRE ...) are skipped: the masquerade listing shows ports.
pub fn parse(text: &str, file: &str) -> Result<Vec<Tracked>, ParseError> {
    let src = Source { file };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 5 {
            return Err(src.error(i, format!("expected at least 5 columns, found {}", f.len())));
        }
        let expires = f[4]
            .parse()
            .map_err(|_| src.error(i, format!("bad timeout {:?}", f[4])))?;
        let values = |key: &str| -> Vec<&str> {
            f.iter()
                .filter_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .collect()
        };
        let (addrs_src, addrs_dst, sports, dports) = (
            values("src"),
            values("dst"),
            values("sport"),
            values("dport"),
        );
        if sports.len() < 2 || dports.len() < 2 {
            continue;
        }
        if addrs_src.len() < 2 || addrs_dst.len() < 2 {
            return Err(src.error(i, "expected src= and dst= for both directions"));
        }
        let endpoint = |ip: &str, port: &str| -> Result<SocketAddr, ParseError> {
            let ip: IpAddr = ip
                .parse()
                .map_err(|_| src.error(i, format!("bad address {ip:?}")))?;
            let port: u16 = port
                .parse()
                .map_err(|_| src.error(i, format!("bad port {port:?}")))?;
            Ok(SocketAddr::new(ip, port))
        };
        out.push(Tracked {
            protocol: f[2].to_string(),
            expires,
            source: endpoint(addrs_src[0], sports[0])?,
            destination: endpoint(addrs_dst[0], dports[0])?,
            reply_destination: endpoint(addrs_dst[1], dports[1])?,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_source_nat() {
        let text = "ipv4     2 tcp      6 431999 ESTABLISHED src=10.0.0.2 dst=93.184.216.34 sport=40000 dport=80 src=93.184.216.34 dst=192.0.2.1 sport=80 dport=61000 [ASSURED] mark=0 zone=0 use=2\n\
ipv4     2 udp      17 20 src=10.0.0.2 dst=10.0.0.1 sport=5000 dport=53 src=10.0.0.1 dst=10.0.0.2 sport=53 dport=5000 mark=0 zone=0 use=2\n\
ipv4     2 icmp     1 29 src=10.0.0.2 dst=10.0.0.1 type=8 code=0 id=7 src=10.0.0.1 dst=10.0.0.2 type=0 code=0 id=7 mark=0 use=2\n";
        let t = parse(text, "/proc/net/nf_conntrack").unwrap();
        assert_eq!(t.len(), 2);
        assert!(t[0].is_masqueraded());
        assert_eq!(t[0].reply_destination, "192.0.2.1:61000".parse().unwrap());
        assert!(!t[1].is_masqueraded());
    }

    #[test]
    fn broken_lines_are_errors() {
        assert_eq!(
            parse("ipv4 2 tcp\n", "/proc/net/nf_conntrack")
                .unwrap_err()
                .line,
            1
        );
        let bad = "ipv4 2 tcp 6 x ESTABLISHED\n";
        assert_eq!(
            parse(bad, "/proc/net/nf_conntrack").unwrap_err().reason,
            "bad timeout \"x\""
        );
        let half = "ipv4 2 tcp 6 5 ESTABLISHED src=1.2.3.4 sport=1 dport=2 sport=3 dport=4\n";
        assert!(parse(half, "/proc/net/nf_conntrack").is_err());
    }
}
