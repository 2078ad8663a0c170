//! -s: read the SNMP counter files and print them in netstat's words.

use anyhow::{Context as _, Result};

use crate::plan::StatisticsPlan as Plan;
use crate::{
    procnet::{self, snmp},
    render::statistics::{Sections, StatisticsPrinter},
};

pub fn list(plan: &Plan, out: &mut String) -> Result<()> {
    let sections = Sections {
        raw: plan.raw,
        tcp: plan.tcp,
        udp: plan.udp,
    };
    let snmp = snmp::parse_tables(&read("/proc/net/snmp")?, "/proc/net/snmp")?;
    let mut printer = StatisticsPrinter::new(out, sections);
    if plan.ipv6 {
        let pairs = snmp::parse_pairs(&read("/proc/net/snmp6")?, "/proc/net/snmp6")?;
        printer.pairs(&pairs);
        // IPv6 has no TCP counters of its own; netstat adds the shared ones.
        printer.tables(&snmp, Some("Tcp"));
    } else {
        printer.tables(&snmp, None);
        if let Some(text) = procnet::read_optional("/proc/net/netstat")? {
            printer.tables(&snmp::parse_tables(&text, "/proc/net/netstat")?, None);
        }
    }
    Ok(())
}

fn read(path: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
}
