//! /proc/net/igmp and /proc/net/igmp6: multicast group memberships.

use std::net::{IpAddr, Ipv4Addr};

use super::{ParseError, Source, hex, routes::ipv6_bytes};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub device: String,
    pub group: IpAddr,
    pub users: i64,
}

/// IPv4: a device line (`1\tlo        :     1      V3`) followed by its
/// groups, each on a line starting with a tab.
pub fn parse_v4(text: &str, file: &str) -> Result<Vec<Membership>, ParseError> {
    let src = Source { file };
    let mut device: Option<String> = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().skip(1) {
        if let Some(rest) = line.strip_prefix('\t') {
            let mut f = rest.split_ascii_whitespace();
            let (Some(group), Some(users)) = (f.next(), f.next()) else {
                return Err(src.error(i, "group line without group and user count"));
            };
            let group = (group.len() == 8)
                .then(|| hex::<u32>(group))
                .flatten()
                .ok_or_else(|| src.error(i, format!("bad group {group:?}")))?;
            let device = device
                .clone()
                .ok_or_else(|| src.error(i, "group line before any device line"))?;
            out.push(Membership {
                device,
                group: IpAddr::V4(Ipv4Addr::from(group.to_ne_bytes())),
                users: users
                    .parse()
                    .map_err(|_| src.error(i, format!("bad user count {users:?}")))?,
            });
        } else {
            let name = line
                .split_once('\t')
                .and_then(|(_, rest)| rest.split(':').next())
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| src.error(i, "expected `index<TAB>device :` on a device line"))?;
            device = Some(name.to_string());
        }
    }
    Ok(out)
}

/// IPv6: `index device address users flags timer`, no header.
pub fn parse_v6(text: &str, file: &str) -> Result<Vec<Membership>, ParseError> {
    let src = Source { file };
    text.lines()
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.split_ascii_whitespace().collect();
            if f.len() < 4 {
                return Err(src.error(i, format!("expected at least 4 columns, found {}", f.len())));
            }
            Ok(Membership {
                device: f[1].to_string(),
                group: IpAddr::V6(
                    ipv6_bytes(f[2])
                        .ok_or_else(|| src.error(i, format!("bad group {:?}", f[2])))?,
                ),
                users: f[3]
                    .parse()
                    .map_err(|_| src.error(i, format!("bad user count {:?}", f[3])))?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_both_families() {
        let v4 = "Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter\n1\tlo        :     1      V3\n\t\t\t\t010000E0     1 0:00000000\t\t0\n";
        let m = parse_v4(v4, "/proc/net/igmp").unwrap();
        assert_eq!(
            m,
            vec![Membership {
                device: "lo".into(),
                group: "224.0.0.1".parse().unwrap(),
                users: 1
            }]
        );
        let v6 = "1    lo              ff020000000000000000000000000001     1 0000000C 0\n";
        let m = parse_v6(v6, "/proc/net/igmp6").unwrap();
        assert_eq!(m[0].group, "ff02::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn broken_lines_are_errors() {
        let orphan = "Idx\tDevice\n\t\t\t\t010000E0     1\n";
        assert_eq!(parse_v4(orphan, "/proc/net/igmp").unwrap_err().line, 2);
        let cut = "Idx\tDevice\n1\tlo        :     1      V3\n\t\t\t\t0100\n";
        assert_eq!(parse_v4(cut, "/proc/net/igmp").unwrap_err().line, 3);
        assert_eq!(
            parse_v6("1 lo ff02\n", "/proc/net/igmp6").unwrap_err().line,
            1
        );
    }
}
