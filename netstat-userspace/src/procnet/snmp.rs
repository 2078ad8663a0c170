//! /proc/net/snmp and /proc/net/netstat (pairs of `Table: names` /
//! `Table: values` lines) and /proc/net/snmp6 (`name value` lines).

use super::{ParseError, Source};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    pub name: String,
    pub fields: Vec<(String, u64)>,
}

pub fn parse_tables(text: &str, file: &str) -> Result<Vec<Table>, ParseError> {
    let src = Source { file };
    let mut lines = text.lines().enumerate().filter(|(_, l)| !l.is_empty());
    let mut out = Vec::new();
    while let Some((i, names)) = lines.next() {
        let (title, names) = names
            .split_once(':')
            .ok_or_else(|| src.error(i, "expected `Table: names`"))?;
        let (j, values) = lines
            .next()
            .ok_or_else(|| src.error(i, format!("{title} has a header line but no values line")))?;
        let (title2, values) = values
            .split_once(':')
            .ok_or_else(|| src.error(j, "expected `Table: values`"))?;
        if title != title2 {
            return Err(src.error(
                j,
                format!("values for {title2} follow the header of {title}"),
            ));
        }
        let names: Vec<&str> = names.split_ascii_whitespace().collect();
        let values: Vec<u64> = values
            .split_ascii_whitespace()
            .map(|v| counter(v).ok_or_else(|| src.error(j, format!("bad value {v:?}"))))
            .collect::<Result<_, _>>()?;
        if names.len() != values.len() {
            return Err(src.error(
                j,
                format!("{} names but {} values", names.len(), values.len()),
            ));
        }
        out.push(Table {
            name: title.to_string(),
            fields: names.into_iter().map(str::to_string).zip(values).collect(),
        });
    }
    Ok(out)
}

pub fn parse_pairs(text: &str, file: &str) -> Result<Vec<(String, u64)>, ParseError> {
    let src = Source { file };
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let mut f = line.split_ascii_whitespace();
            match (f.next(), f.next().and_then(counter)) {
                (Some(name), Some(value)) => Ok((name.to_string(), value)),
                _ => Err(src.error(i, "expected `name value`")),
            }
        })
        .collect()
}

/// A counter as netstat reads it with strtoull: `-1` (MaxConn) wraps.
fn counter(v: &str) -> Option<u64> {
    match v.strip_prefix('-') {
        Some(neg) => neg.parse::<u64>().ok().map(u64::wrapping_neg),
        None => v.parse().ok(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tables_and_pairs() {
        let t = parse_tables(
            "Tcp: RtoAlgorithm MaxConn\nTcp: 1 -1\nUdp: InDatagrams\nUdp: 7\n",
            "/proc/net/snmp",
        )
        .unwrap();
        assert_eq!(
            t[0].fields,
            vec![("RtoAlgorithm".into(), 1), ("MaxConn".into(), u64::MAX)]
        );
        assert_eq!(t[1].name, "Udp");
        let p = parse_pairs("Ip6InReceives  \t4\nIcmp6InMsgs 0\n", "/proc/net/snmp6").unwrap();
        assert_eq!(p[0], ("Ip6InReceives".into(), 4));
    }

    #[test]
    fn broken_tables_are_errors() {
        let e = parse_tables("Tcp: A B\nTcp: 1\n", "/proc/net/snmp").unwrap_err();
        assert_eq!(e.to_string(), "/proc/net/snmp line 2: 2 names but 1 values");
        assert_eq!(
            parse_tables("Tcp: A\n", "/proc/net/snmp").unwrap_err().line,
            1
        );
        assert_eq!(
            parse_tables("Tcp: A\nUdp: 1\n", "/proc/net/snmp")
                .unwrap_err()
                .line,
            2
        );
        assert_eq!(
            parse_tables("Tcp: A\nTcp: x\n", "/proc/net/netstat")
                .unwrap_err()
                .line,
            2
        );
        assert_eq!(
            parse_pairs("Ip6InReceives\n", "/proc/net/snmp6")
                .unwrap_err()
                .line,
            1
        );
    }
}
