//! `netstat -s`: SNMP counters as net-tools words them.
//!
//! netstat looks each counter up in a table of sentences with bsearch(3),
//! but several of its tables are not sorted, so some counters miss their
//! sentence and are printed raw ("Name: value"). To print what netstat
//! prints, the tables below keep netstat's order and `find` is the same
//! binary search. The indentation also follows netstat's state machine: an
//! unknown counter is indented like the line before it.

use std::fmt::Write as _;

use super::statistics_tables::{CounterFormat, ICMP, ICMP6, IP, IP6, TCP, TCP_EXT, UDP, UDP6};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Number,
    /// Printed only when non-zero.
    Optional,
    /// Printed under "ICMP input histogram:", only when non-zero.
    InHistogram,
    /// Printed under "ICMP output histogram:", only when non-zero.
    OutHistogram,
    /// Configuration values netstat never prints (DefaultTTL, Forwarding, RtoAlgorithm).
    Static,
}

impl Kind {
    fn indent(self) -> usize {
        match self {
            Kind::InHistogram | Kind::OutHistogram => 8,
            _ => 4,
        }
    }
}

/// Which sections the user asked for (-w: Ip/Icmp, -t: Tcp, -u: Udp).
#[derive(Debug, Clone, Copy)]
pub struct Sections {
    pub raw: bool,
    pub tcp: bool,
    pub udp: bool,
}

/// The printer, carrying netstat's "state" (the kind of the last counter
/// looked at) from table to table and file to file.
pub struct StatisticsPrinter<'a> {
    out: &'a mut String,
    sections: Sections,
    state: Kind,
}

/// The table a counter name is looked up in, and whether it is printed.
struct Table {
    entries: Option<&'static [CounterFormat]>,
    shown: bool,
}

impl<'a> StatisticsPrinter<'a> {
    pub fn new(out: &'a mut String, sections: Sections) -> Self {
        Self {
            out,
            sections,
            state: Kind::Number,
        }
    }

    /// Starts the table named `title` (Ip, Tcp, TcpExt, Ip6 ...). Unknown
    /// tables are always shown, their counters raw.
    fn table(&mut self, title: &str) -> Table {
        let s = self.sections;
        let known = match title {
            "Ip" => Some((IP, s.raw)),
            "Icmp" => Some((ICMP, s.raw)),
            "Tcp" | "Tcp6" => Some((TCP, s.tcp)),
            "Udp" => Some((UDP, s.udp)),
            "TcpExt" => Some((TCP_EXT, s.tcp)),
            "Ip6" => Some((IP6, s.raw)),
            "Icmp6" => Some((ICMP6, s.raw)),
            "Udp6" => Some((UDP6, s.udp)),
            _ => None,
        };
        match known {
            Some((entries, shown)) => {
                if shown {
                    let _ = writeln!(self.out, "{title}:");
                }
                self.state = Kind::Number;
                Table {
                    entries: Some(entries),
                    shown,
                }
            }
            None => {
                let _ = writeln!(self.out, "{title}:");
                Table {
                    entries: None,
                    shown: true,
                }
            }
        }
    }

    fn value(&mut self, table: &Table, name: &str, value: u64) {
        if !table.shown {
            return;
        }
        let Some(&(_, text, kind)) = table.entries.and_then(|e| find(e, name)) else {
            if value != 0 {
                let _ = writeln!(
                    self.out,
                    "{:indent$}{name}: {value}",
                    "",
                    indent = self.state.indent()
                );
            }
            return;
        };
        if kind == Kind::Static || text.is_empty() {
            return;
        }
        if matches!(kind, Kind::InHistogram | Kind::OutHistogram) && self.state != kind {
            let title = if kind == Kind::InHistogram {
                "ICMP input histogram:"
            } else {
                "ICMP output histogram:"
            };
            let _ = writeln!(
                self.out,
                "{:indent$}{title}",
                "",
                indent = self.state.indent()
            );
        }
        if kind == Kind::Number || value != 0 {
            let _ = writeln!(
                self.out,
                "{:indent$}{}",
                "",
                text.replace("{}", &value.to_string()),
                indent = kind.indent()
            );
        }
        self.state = kind;
    }

    /// /proc/net/snmp or /proc/net/netstat, table by table; with `only`,
    /// just the tables whose names start with it.
    pub fn tables(&mut self, tables: &[crate::procnet::snmp::Table], only: Option<&str>) {
        for t in tables {
            if only.is_some_and(|prefix| !t.name.starts_with(prefix)) {
                continue;
            }
            let table = self.table(&t.name);
            for (name, value) in &t.fields {
                self.value(&table, name, *value);
            }
        }
    }

    /// /proc/net/snmp6: one counter per line; a table is the name up to and
    /// including its first '6' (Ip6, Icmp6, Udp6, UdpLite6).
    pub fn pairs(&mut self, pairs: &[(String, u64)]) {
        let mut current: Option<(String, Table)> = None;
        for (name, value) in pairs {
            let same = current
                .as_ref()
                .is_some_and(|(title, _)| name.contains(title.as_str()));
            if !same {
                let title = match name.find('6') {
                    Some(at) => &name[..=at],
                    None => name.as_str(),
                };
                let table = self.table(title);
                current = Some((title.to_string(), table));
            }
            if let Some((_, table)) = &current {
                self.value(table, name, *value);
            }
        }
    }
}

/// glibc's bsearch over netstat's table order, which is not always sorted.
fn find(entries: &'static [CounterFormat], key: &str) -> Option<&'static CounterFormat> {
    let (mut lo, mut hi) = (0, entries.len());
    while lo < hi {
        let mid = (lo + hi) / 2;
        match key.as_bytes().cmp(entries[mid].0.as_bytes()) {
            std::cmp::Ordering::Less => hi = mid,
            std::cmp::Ordering::Greater => lo = mid + 1,
            std::cmp::Ordering::Equal => return Some(&entries[mid]),
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procnet::snmp::Table as ProcTable;

    fn table(name: &str, fields: &[(&str, u64)]) -> ProcTable {
        ProcTable {
            name: name.into(),
            fields: fields.iter().map(|(n, v)| (n.to_string(), *v)).collect(),
        }
    }

    /// Straight from in- to out-histogram, netstat indents the second
    /// title like the histogram lines; TW is found by its bsearch.
    #[test]
    fn sentences_histograms_and_raw_counters() {
        let mut out = String::new();
        let mut s = StatisticsPrinter::new(
            &mut out,
            Sections {
                raw: true,
                tcp: true,
                udp: true,
            },
        );
        s.tables(
            &[
                table(
                    "Icmp",
                    &[
                        ("InMsgs", 2),
                        ("InErrors", 0),
                        ("InCsumErrors", 0),
                        ("InDestUnreachs", 0),
                        ("InEchos", 2),
                        ("OutEchoReps", 2),
                    ],
                ),
                table("IcmpMsg", &[("InType8", 2)]),
                table("TcpExt", &[("TW", 3), ("TCPLoss", 0), ("ListenDrops", 0)]),
            ],
            None,
        );
        assert_eq!(
            out,
            "Icmp:\n    2 ICMP messages received\n    0 input ICMP message failed\n    ICMP input histogram:\n        echo requests: 2\n        ICMP output histogram:\n        echo replies: 2\nIcmpMsg:\n        InType8: 2\nTcpExt:\n    3 TCP sockets finished time wait in fast timer\n"
        );
    }

    #[test]
    fn hidden_sections_print_nothing_but_unknown_tables_show() {
        let mut out = String::new();
        let mut s = StatisticsPrinter::new(
            &mut out,
            Sections {
                raw: false,
                tcp: true,
                udp: false,
            },
        );
        s.tables(
            &[
                table("Ip", &[("InReceives", 5)]),
                table("UdpLite", &[("InErrors", 0)]),
            ],
            None,
        );
        assert_eq!(out, "UdpLite:\n");
    }

    #[test]
    fn snmp6_tables_follow_names() {
        let mut out = String::new();
        let mut s = StatisticsPrinter::new(
            &mut out,
            Sections {
                raw: true,
                tcp: true,
                udp: true,
            },
        );
        s.pairs(&[
            ("Ip6InReceives".into(), 4),
            ("Icmp6InMsgs".into(), 1),
            ("Icmp6InType1".into(), 1),
            ("UdpLite6InErrors".into(), 0),
        ]);
        assert_eq!(
            out,
            "Ip6:\n    4 total packets received\nIcmp6:\n    1 ICMP messages received\n    Icmp6InType1: 1\nUdpLite6:\n"
        );
    }
}
