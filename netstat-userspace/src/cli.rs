//! Command line: netstat's flags (net-tools 2.10 spelling), plus the
//! event-stream options.

use clap::{ArgAction, Parser};

/// Where `--metrics` serves when no address is given.
pub const METRICS_ADDR: &str = "127.0.0.1:9977";

#[derive(Parser, Debug, Default, Clone)]
#[command(
    name = "enetstat",
    version,
    about = "netstat on eBPF: the classic listing from /proc, a live TCP state-change log, storm summaries and Prometheus metrics",
    after_help = "Sockets: -t tcp, -u udp, -U udplite, -w raw, -x unix; families: -4, -6, -A inet,inet6,unix.\n\
Events: `enetstat -E [-n] [--json]` logs every TCP state change; `enetstat -S [SECONDS]` summarises them; `enetstat --metrics [ADDR]` serves them to Prometheus (all need root).\n\
Filters (every mode; applied in the kernel for -E, -S and -c): --port, --sport, --dport, --addr, --state, --pid, --netns."
)]
pub struct Cli {
    // ---- what to show (netstat's modes) ----
    /// Display the routing table
    #[arg(short = 'r', long = "route")]
    pub route: bool,
    /// Display the interface table
    #[arg(short = 'i', long = "interfaces")]
    pub interfaces: bool,
    /// Display multicast group memberships
    #[arg(short = 'g', long = "groups")]
    pub groups: bool,
    /// Display networking statistics (like SNMP)
    #[arg(short = 's', long = "statistics")]
    pub statistics: bool,
    /// Display masqueraded (NATed) connections, from conntrack
    #[arg(short = 'M', long = "masquerade")]
    pub masquerade: bool,

    // ---- socket selection ----
    /// TCP sockets
    #[arg(short = 't', long = "tcp")]
    pub tcp: bool,
    /// UDP sockets
    #[arg(short = 'u', long = "udp")]
    pub udp: bool,
    /// UDP-Lite sockets
    #[arg(short = 'U', long = "udplite")]
    pub udplite: bool,
    /// Raw sockets
    #[arg(short = 'w', long = "raw")]
    pub raw: bool,
    /// Unix domain sockets
    #[arg(short = 'x', long = "unix")]
    pub unix: bool,
    /// Address families, comma separated: inet, inet6, unix (also ip, ip6, tcpip)
    #[arg(short = 'A', long = "protocol", value_name = "FAMILIES", action = ArgAction::Append)]
    pub families: Vec<String>,
    /// IPv4 only (--inet, --ip, --tcpip)
    #[arg(short = '4', long = "inet", visible_aliases = ["ip", "tcpip"])]
    pub inet: bool,
    /// IPv6 only (--inet6, --ip6)
    #[arg(short = '6', long = "inet6", visible_alias = "ip6")]
    pub inet6: bool,
    /// Display all sockets (default: connected)
    #[arg(short = 'a', long = "all")]
    pub all: bool,
    /// Display listening server sockets
    #[arg(short = 'l', long = "listening")]
    pub listening: bool,

    // ---- columns and formatting ----
    /// Display other/more information (twice for more)
    #[arg(short = 'e', long = "extend", action = ArgAction::Count)]
    pub extend: u8,
    /// Display PID/Program name for sockets
    #[arg(short = 'p', long = "programs")]
    pub programs: bool,
    /// Display timers
    #[arg(short = 'o', long = "timers")]
    pub timers: bool,
    /// Don't truncate IP addresses
    #[arg(
        short = 'W',
        long = "wide",
        visible_short_alias = 'T',
        visible_alias = "notrim"
    )]
    pub wide: bool,
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
    /// Resolve hardware names (with -r: print addresses numerically, as netstat does)
    #[arg(short = 'N', long = "symbolic")]
    pub symbolic: bool,
    /// With -r: display the routing cache instead of the FIB
    #[arg(short = 'C', long = "cache")]
    pub cache: bool,
    /// With -r: display the Forwarding Information Base (default)
    #[arg(short = 'F', long = "fib")]
    pub fib: bool,
    /// Be verbose (report protocols this kernel lacks)
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Continuous listing: as root, TCP follows kernel events (otherwise a /proc re-read every second)
    #[arg(short = 'c', long = "continuous")]
    pub continuous: bool,
    /// With -c: redraw at most every MS milliseconds (0: on every change)
    #[arg(long, value_name = "MS", default_value_t = 1000)]
    pub interval: u64,
    /// With -c: print only rows that appeared, changed state or vanished
    #[arg(long)]
    pub diff: bool,

    // ---- event log ----
    /// Log TCP state changes, retransmits and resets as they happen (needs root)
    #[arg(short = 'E', long = "events")]
    pub events: bool,
    /// With -E: also log each TCP packet the kernel drops (its reason, from skb:kfree_skb)
    #[arg(long)]
    pub drops: bool,
    /// With -E or -S: one JSON object per line instead of text, and the stop object on stderr
    #[arg(long)]
    pub json: bool,
    /// With -E or -S: end stderr with the JSON stop object even when the output is text
    #[arg(long)]
    pub stop_json: bool,
    /// Every SECONDS (default 1), one block of counts: new connections, closes, transitions, failures, retransmits, resets, top remote endpoints (needs root)
    #[arg(short = 'S', long = "summary", value_name = "SECONDS", num_args = 0..=1, default_missing_value = "1")]
    pub summary: Option<f64>,
    /// Serve Prometheus metrics on http://ADDR/metrics (default 127.0.0.1:9977; :PORT for every interface), alone or beside -E, -S or -c (needs root)
    #[arg(long, value_name = "ADDR", num_args = 0..=1, default_missing_value = METRICS_ADDR)]
    pub metrics: Option<String>,
    /// With --metrics: TLS and basic authentication for the endpoint, from a YAML file in the Prometheus exporter-toolkit's format (tls_server_config, basic_auth_users)
    #[arg(long, value_name = "FILE")]
    pub web_config: Option<std::path::PathBuf>,

    // ---- filters (every mode) ----
    /// Only connections with this local or remote port (number or service name)
    #[arg(long, value_name = "PORT")]
    pub port: Option<String>,
    /// Only connections with this local port
    #[arg(long, value_name = "PORT")]
    pub sport: Option<String>,
    /// Only connections with this remote port
    #[arg(long, value_name = "PORT")]
    pub dport: Option<String>,
    /// Only connections with a local or remote address in this network (ADDR[/PREFIX], IPv4 or IPv6)
    #[arg(long, value_name = "CIDR")]
    pub addr: Option<String>,
    /// Only sockets in these states, comma separated (ESTABLISHED,TIME_WAIT or syn-sent; -E: changes into or out of them)
    #[arg(long, value_name = "STATES")]
    pub state: Option<String>,
    /// Only sockets owned by this process
    #[arg(long, value_name = "PID")]
    pub pid: Option<u32>,
    /// Network namespace: a name from /var/run/netns, an inode number, a pid (its namespace), or `all` (default: our own)
    #[arg(long, value_name = "NS")]
    pub netns: Option<String>,
    /// With -E: stop after this many events; with -S: after this many intervals
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// With -E, -S, -c or --metrics: stop after this many seconds
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// With -E, -S or --metrics: only sockets owned by a process in this cgroup v2 or below it (a path from the cgroup v2 root, as in the 0:: line of /proc/PID/cgroup)
    #[arg(long, value_name = "PATH")]
    pub cgroup: Option<String>,
    /// With -S: a socket in CLOSE_WAIT longer than this (its peer closed, its application has not) is listed as a leak, by owner
    #[arg(long, value_name = "SECONDS")]
    pub close_wait_age: Option<f64>,
    /// With -E: kernel ring buffer size in bytes (power of two, at least the page size)
    #[arg(long, value_name = "BYTES")]
    pub ring_size: Option<u32>,
    /// With -E, -S, -c or --metrics: measure what the tracer costs (the kernel's statistics of its programs, on while enetstat runs; its own CPU time), reported by -S per interval, the stop object and the metrics (needs CAP_SYS_ADMIN)
    #[arg(long)]
    pub self_cost: bool,
    /// With -E, -S, -c or --metrics: sockets the kernel side remembers (owner, state, times); past that the least recently active are evicted, and counted
    #[arg(long, value_name = "N", default_value_t = netstat_common::maps::SOCKS_ENTRIES)]
    pub max_sockets: u32,

    // The log: written with -E --json, rotated, and read back.
    /// With -E: write the log to FILE (appended to) instead of standard output
    #[arg(long, value_name = "FILE")]
    pub output: Option<std::path::PathBuf>,
    /// With --output: at this size (bytes; K, M or G suffix) move FILE to FILE.1 (FILE.1 to FILE.2 ...) and start a new FILE, with its own snapshot under --json
    #[arg(long, value_name = "BYTES")]
    pub rotate_size: Option<String>,
    /// With --rotate-size: keep this many rotated files (default 5)
    #[arg(long, value_name = "N")]
    pub rotate_keep: Option<u32>,
    /// Print the TCP listing as of --at (or with -S the summaries) from an enetstat -E --json log (FILE, or - for standard input) instead of the kernel
    #[arg(long, value_name = "FILE")]
    pub replay: Option<String>,
    /// With --replay: the moment to list, RFC 3339 (2026-12-07T03:12:45Z) or HH:MM:SS[.frac] in local time on the log's first day (default: the log's last record)
    #[arg(long, value_name = "TIME")]
    pub at: Option<String>,
    /// With --replay -c: play the log at X times its own pace (default: as fast as it reads)
    #[arg(long, value_name = "X")]
    pub speed: Option<f64>,
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
