//! Command line: netstat's flags, plus the event-stream options.

use clap::Parser;

#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "enetstat",
    version,
    about = "netstat on eBPF: the classic listing from /proc, plus a live TCP state-change log",
    after_help = "Events: `enetstat -E [-n] [--json] [-4|-6] [--port P] [--pid PID]` logs every TCP state change (needs root)."
)]
pub struct Cli {
    /// Log TCP state changes, retransmits and resets as they happen (needs root)
    #[arg(short = 'E', long = "events")]
    pub events: bool,
    /// With -E: one JSON object per line instead of text
    #[arg(long)]
    pub json: bool,
    /// With -E: only connections with this local or remote port (number or service name)
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// With -E: only sockets owned by this process
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// With -E: stop after this many events
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// With -E: stop after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// With -E: kernel ring buffer size in bytes (power of two, at least the page size)
    #[arg(long, value_name = "BYTES")]
    pub ring_size: Option<u32>,

    /// Don't resolve names
    #[arg(short = 'n', long = "numeric")]
    pub numeric: bool,
    /// Don't resolve host names
    #[arg(long = "numeric-hosts")]
    pub numeric_hosts: bool,
    /// Don't resolve port names
    #[arg(long = "numeric-ports")]
    pub numeric_ports: bool,
    /// Don't resolve user names
    #[arg(long = "numeric-users")]
    pub numeric_users: bool,

    /// Only IPv4
    #[arg(short = '4', long = "inet", visible_alias = "ip")]
    pub inet: bool,
    /// Only IPv6
    #[arg(short = '6', long = "inet6")]
    pub inet6: bool,
}

impl Cli {
    pub fn numeric(&self) -> crate::names::Numeric {
        crate::names::Numeric {
            hosts: self.numeric || self.numeric_hosts,
            ports: self.numeric || self.numeric_ports,
            users: self.numeric || self.numeric_users,
        }
    }
}
