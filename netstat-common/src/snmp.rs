//! Single counters of /proc/net/snmp and /proc/net/netstat.

/// One counter of the kernel's SNMP-style files (/proc/net/snmp,
/// /proc/net/netstat: a `Table: Name ...` line, then `Table: value ...`),
/// e.g. `snmp_field(text, "TcpExt", "ListenDrops")`; None when absent or
/// malformed. The one reader of single counters for enetstat, its tests
/// and its bench (`-s` lists whole tables with its own parser).
pub fn snmp_field(text: &str, table: &str, name: &str) -> Option<u64> {
    let mut lines = text.lines().filter_map(|l| {
        let (title, rest) = l.split_once(':')?;
        (title == table).then_some(rest)
    });
    let (names, values) = (lines.next()?, lines.next()?);
    let at = names.split_whitespace().position(|n| n == name)?;
    values.split_whitespace().nth(at)?.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_counter_by_table_and_name() {
        let text = "Tcp: RtoAlgorithm ActiveOpens\nTcp: 1 42\nTcpExt: ListenDrops\nTcpExt: 7\n";
        assert_eq!(super::snmp_field(text, "Tcp", "ActiveOpens"), Some(42));
        assert_eq!(super::snmp_field(text, "TcpExt", "ListenDrops"), Some(7));
        assert_eq!(super::snmp_field(text, "TcpExt", "Nothing"), None);
        assert_eq!(super::snmp_field("Tcp: A\n", "Tcp", "A"), None);
    }
}
