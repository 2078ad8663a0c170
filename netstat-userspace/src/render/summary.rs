//! `enetstat -S`: one block (text) or one object (JSON) per interval. Counts
//! are for the interval; the text also gives them per second.

use std::{
    fmt::Write as _,
    net::{IpAddr, SocketAddr},
    rc::Rc,
};

use crate::{
    clock::TimeFormat,
    cost::Cost,
    render::endpoint_text,
    tcp_state::TcpState,
    traffic::{Histogram, Traffic},
};

/// What happened in one interval.
#[derive(Debug, Clone, PartialEq)]
pub struct Interval {
    pub seconds: f64,
    pub traffic: Traffic,
    /// Sockets in TIME_WAIT now, and the change over the interval.
    pub time_wait: u64,
    pub time_wait_growth: i64,
    /// Sockets still in SYN_SENT after more than a second.
    pub syn_sent_over_1s: u64,
    /// The namespace's counters; None where they are not known (a replayed log).
    pub listen_overflows: Option<u64>,
    pub listen_drops: Option<u64>,
    /// Events the kernel side knows it missed, so that the counts above
    /// fall short by at least this much: skipped runs no second program made up for,
    /// and gaps in sockets' histories (README, Known limits).
    pub missed: u64,
    /// Resets sent by reason (the kernel's names), None where it gives none.
    pub resets_by_reason: Option<Vec<(&'static str, u64)>>,
    /// TCP packets dropped by reason (the kernel's names), None where drops
    /// are not counted.
    pub drops: Option<Vec<(&'static str, u64)>>,
    /// The 5 remote endpoints with most failed connects + resets +
    /// retransmits + drops.
    pub remotes: Vec<Remote>,
    /// The 5 cgroups and the 5 processes whose sockets opened most
    /// connections (then failed most).
    pub cgroups: Vec<CgroupCount>,
    pub programs: Vec<ProgramCount>,
    /// Owners of CLOSE_WAIT leaks at the interval's end, most first, and
    /// the age that makes one (`--close-wait-age`).
    pub close_wait: Vec<CloseWait>,
    pub close_wait_age_s: f64,
    /// The 5 pairs holding most ephemeral ports at the interval's end; None
    /// where the kernel offers no TCP sock_diag to count them.
    pub ephemeral_ports: Option<Vec<EphemeralPorts>>,
    /// Every listener, most overflows first; None where the kernel offers
    /// no TCP sock_diag to read them from.
    pub listeners: Option<Vec<Listener>>,
    /// What the tracer cost in the interval (`--self-cost`; None without).
    pub cost: Option<Cost>,
}

impl Interval {
    /// The programs' time per connection opened (each end a connection
    /// has here counts: a loopback connection has two), and enetstat's own
    /// CPU time per state change counted, in us; None where nothing opened
    /// or changed.
    fn cost_ratios(&self, cost: &Cost) -> (Option<f64>, Option<f64>) {
        let opened = self.traffic.opened_active + self.traffic.opened_passive;
        let changes: u64 = self.traffic.transitions.iter().map(|t| t.2).sum();
        let per = |ns: u64, n: u64| (n > 0).then(|| ns as f64 / n as f64 / 1000.0);
        (per(cost.kernel_ns(), opened), per(cost.user_ns, changes))
    }
}

/// One listening socket's pressure in an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub netns: u32,
    pub local: SocketAddr,
    /// Connection attempts it dropped because its accept or SYN queue was full.
    pub overflows: u64,
    /// Its accept queue at the interval's end, and the queue's limit (0
    /// for one that closed).
    pub accept_queue: u64,
    pub accept_queue_max: u64,
    /// It closed within the interval (its drops read by the kernel side
    /// as it closed).
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The namespace that saw the endpoint (inode).
    pub netns: u32,
    /// Port 0: an inbound peer, counted by its address alone.
    pub endpoint: SocketAddr,
    pub failed_connects: u64,
    pub drops: u64,
    pub resets: u64,
    pub retransmits: u64,
}

/// A cgroup's connections in an interval (its sockets' owners' cgroup).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupCount {
    /// Relative to the cgroup v2 root, or `id:N` where no path is known.
    pub cgroup: Rc<str>,
    /// The unit, container or pod it is, where known.
    pub name: Option<String>,
    pub opened: u64,
    pub failed: u64,
    pub resets: u64,
}

/// The sockets of one owner in CLOSE_WAIT for longer than the leak age:
/// the peer has closed, the application has not.
#[derive(Debug, Clone, PartialEq)]
pub struct CloseWait {
    /// None: sockets whose owner the kernel side never saw act.
    pub pid: Option<u32>,
    pub program: Option<String>,
    pub cgroup: Option<Rc<str>>,
    pub count: u64,
    /// The longest any of them has been in CLOSE_WAIT.
    pub oldest_s: f64,
}

/// The ephemeral ports one (local address, remote endpoint) pair holds.
#[derive(Debug, Clone, PartialEq)]
pub struct EphemeralPorts {
    pub netns: u32,
    pub local: IpAddr,
    pub remote: SocketAddr,
    /// Connected sockets and TIME_WAIT ones; of them in TIME_WAIT.
    pub in_use: u64,
    pub time_wait: u64,
    /// The namespace's budget (`ip_local_port_range` less reserved ports).
    pub range: u64,
    /// Seconds until none is left at the interval's growth; None when the
    /// count did not grow.
    pub exhausted_in_s: Option<f64>,
}

/// A process's connections in an interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramCount {
    pub pid: u32,
    /// The kernel's command name.
    pub program: String,
    pub cgroup: Rc<str>,
    pub opened: u64,
    pub failed: u64,
}

impl Remote {
    /// What ranks an endpoint in the top list.
    pub fn total(&self) -> u64 {
        self.failed_connects + self.resets + self.retransmits + self.drops
    }
}

pub struct Writer {
    json: bool,
    time: TimeFormat,
}

impl Writer {
    pub fn new(json: bool) -> Self {
        Self {
            json,
            time: TimeFormat::default(),
        }
    }

    /// One interval's block (text) or object (JSON), with its newline.
    pub fn render(&mut self, wall_ns: i128, i: &Interval) -> String {
        let mut text = String::new();
        if self.json {
            text.push_str("{\"time\":\"");
            self.time.write_utc(&mut text, wall_ns);
            text.push('"');
            json(&mut text, i);
        } else {
            text.push_str("--- ");
            self.time.write_local(&mut text, wall_ns);
            block(&mut text, i);
        }
        text.push('\n');
        text
    }
}

/// A count, or what stands for one not known (`-` in text, `null` in JSON).
struct Known(Option<u64>, &'static str);

impl std::fmt::Display for Known {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(n) => write!(f, "{n}"),
            None => f.write_str(self.1),
        }
    }
}

/// A handshake histogram's quantiles in ms: `p50/p90/p99/max` in text, an
/// object in JSON (`{:#}`); `-` or `null` without samples.
struct Latency<'a>(&'a Histogram);

impl std::fmt::Display for Latency<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |q: f64| {
            self.0
                .quantile(q)
                .filter(|s| s.is_finite())
                .map(|s| format!("{:.3}", s * 1e3))
        };
        let values = [ms(0.5), ms(0.9), ms(0.99), ms(1.0)];
        match (f.alternate(), &values) {
            (false, [None, ..]) => f.write_str("-"),
            (false, _) => {
                let text: Vec<String> = values.map(|v| v.unwrap_or_else(|| "?".into())).into();
                f.write_str(&text.join("/"))
            }
            (true, [None, ..]) => f.write_str("null"),
            (true, [p50, p90, p99, max]) => {
                let v = |v: &Option<String>| v.clone().unwrap_or_else(|| "null".into());
                write!(
                    f,
                    "{{\"p50\":{},\"p90\":{},\"p99\":{},\"max\":{}}}",
                    v(p50),
                    v(p90),
                    v(p99),
                    v(max)
                )
            }
        }
    }
}

fn transition_name(old: u8, new: u8) -> String {
    format!("{}->{}", TcpState(old).name(), TcpState(new).name())
}

fn block(out: &mut String, i: &Interval) {
    text_counts(out, i);
    text_reasons(out, i);
    if i.missed > 0 {
        let _ = write!(
            out,
            "\nmissed by the kernel side: {} events (counts above are short; see README, Known limits)",
            i.missed
        );
    }
    if let Some(cost) = &i.cost {
        text_cost(out, i, cost);
    }
    text_lists(out, i);
}

/// The interval's rates, counts, latencies and transitions.
fn text_counts(out: &mut String, i: &Interval) {
    let rate = |n: u64| n as f64 / i.seconds.max(1e-9);
    let _ = write!(
        out,
        " ({:.1} s)\nconnections/s: {:.1} new active, {:.1} new passive, {:.1} closed\n\
failures: {}\n\
retransmits/s: {:.1} data, {:.1} SYN, {:.1} SYN-ACK; resets/s: {:.1} sent, {:.1} received\n\
TIME_WAIT: {} ({:+}); SYN_SENT over 1 s: {}; listen overflows: {}, drops: {}\n\
handshake ms (p50/p90/p99/max, bucket bounds): connect {}; accept {}\n\
transitions:",
        i.seconds,
        rate(i.traffic.opened_active),
        rate(i.traffic.opened_passive),
        rate(i.traffic.closed),
        i.traffic
            .failures()
            .map(|(verdict, n)| format!("{n} {verdict}"))
            .collect::<Vec<_>>()
            .join(", "),
        rate(i.traffic.retransmits),
        rate(i.traffic.syn_retransmits),
        rate(i.traffic.synack_retransmits),
        rate(i.traffic.resets_sent),
        rate(i.traffic.resets_received),
        i.time_wait,
        i.time_wait_growth,
        i.syn_sent_over_1s,
        Known(i.listen_overflows, "-"),
        Known(i.listen_drops, "-"),
        Latency(&i.traffic.connect_duration),
        Latency(&i.traffic.accept_duration),
    );
    if i.traffic.transitions.is_empty() {
        out.push_str(" none");
    }
    for (old, new, n) in &i.traffic.transitions {
        let _ = write!(out, " {} {n}", transition_name(*old, *new));
    }
}

/// Resets sent and drops, by the kernel's reason, where counted.
fn text_reasons(out: &mut String, i: &Interval) {
    for (label, counts) in [
        ("resets sent by reason", &i.resets_by_reason),
        ("TCP drops by reason", &i.drops),
    ] {
        let Some(counts) = counts else { continue };
        let _ = write!(out, "\n{label}:");
        if counts.is_empty() {
            out.push_str(" none");
        }
        for (reason, n) in counts {
            let _ = write!(out, " {reason} {n}");
        }
    }
}

fn text_cost(out: &mut String, i: &Interval, cost: &Cost) {
    let (kernel, user) = i.cost_ratios(cost);
    let us = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v:.2}"));
    let runs: u64 = cost.programs.iter().map(|p| p.runs).sum();
    let _ = write!(
        out,
        "\nself cost: kernel {} us per connection opened ({runs} program runs, {:.1} ms), userspace {} us per state change ({:.1} ms)",
        us(kernel),
        cost.kernel_ns() as f64 / 1e6,
        us(user),
        cost.user_ns as f64 / 1e6,
    );
}

/// The ranked lists: busy listeners and remote endpoints.
fn text_lists(out: &mut String, i: &Interval) {
    if let Some(listeners) = &i.listeners {
        let busy = listeners
            .iter()
            .filter(|l| l.overflows > 0 || l.accept_queue > 0)
            .take(5)
            .map(|l| {
                let figures = match l.closed {
                    true => format!("{}, closed", l.overflows),
                    false => format!("{}, {}/{}", l.overflows, l.accept_queue, l.accept_queue_max),
                };
                (l.local.to_string(), figures)
            });
        text_list(out, "top listeners (overflows, accept queue/limit)", busy);
    }
    let remotes = i.remotes.iter().map(|r| {
        let figures = format!(
            "{}/{}/{}/{}",
            r.failed_connects, r.resets, r.retransmits, r.drops
        );
        (endpoint_text(r.endpoint), figures)
    });
    text_list(
        out,
        "top remotes (failed connects/resets/retransmits/drops)",
        remotes,
    );
    let cgroups = i.cgroups.iter().map(|c| {
        let figures = format!("{}/{}/{}", c.opened, c.failed, c.resets);
        (c.cgroup.to_string(), figures)
    });
    text_list(out, "top cgroups (opened/failed/resets)", cgroups);
    let programs = i.programs.iter().map(|p| {
        let figures = format!("{}/{}  {}", p.opened, p.failed, p.cgroup);
        (format!("{}/{}", p.pid, p.program), figures)
    });
    text_list(out, "top programs (opened/failed, cgroup)", programs);
    let leaks = i.close_wait.iter().take(5).map(|l| {
        let owner = match (l.pid, &l.program) {
            (Some(pid), Some(program)) => format!("{pid}/{program}"),
            _ => "-".to_string(),
        };
        let cgroup = l.cgroup.as_deref().unwrap_or("-");
        (owner, format!("{}, {:.1} s  {cgroup}", l.count, l.oldest_s))
    });
    let title = format!(
        "CLOSE_WAIT over {} s (sockets, oldest, cgroup)",
        i.close_wait_age_s
    );
    text_list(out, &title, leaks);
    for p in i.ephemeral_ports.iter().flatten().take(3) {
        let share = p.in_use as f64 * 100.0 / p.range.max(1) as f64;
        let _ = write!(
            out,
            "\nephemeral ports to {} from {}: {} of {} ({share:.0}%), {} in TIME_WAIT, ",
            p.remote,
            p.local,
            thousands(p.in_use),
            thousands(p.range),
            thousands(p.time_wait),
        );
        match p.exhausted_in_s {
            Some(s) => _ = write!(out, "exhausted in ~{s:.0} s"),
            None => out.push_str("not growing"),
        }
    }
}

/// `n` with a comma every three digits, as the ephemeral-port line reads.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `\nTITLE:` and a line per item (an endpoint, a cgroup) with its
/// figures, or ` none`.
fn text_list(out: &mut String, title: &str, lines: impl Iterator<Item = (String, String)>) {
    let _ = write!(out, "\n{title}:");
    let mut none = true;
    for (endpoint, figures) in lines {
        none = false;
        let _ = write!(out, "\n  {endpoint:<47} {figures}");
    }
    if none {
        out.push_str(" none");
    }
}

fn json(out: &mut String, i: &Interval) {
    json_counts(out, i);
    json_reasons(out, i);
    json_array(out, "top_remotes", &i.remotes, |out, r| {
        let remote = endpoint_text(r.endpoint);
        let _ = write!(
            out,
            "{{\"netns\":{},\"remote\":\"{remote}\",\"failed_connects\":{},\"resets\":{},\"retransmits\":{},\"drops\":{}}}",
            r.netns, r.failed_connects, r.resets, r.retransmits, r.drops
        );
    });
    json_array(out, "top_cgroups", &i.cgroups, |out, c| {
        let _ = write!(
            out,
            "{{\"cgroup\":{},\"name\":{},\"opened\":{},\"failed\":{},\"resets\":{}}}",
            json_string(&c.cgroup),
            c.name.as_deref().map_or("null".to_string(), json_string),
            c.opened,
            c.failed,
            c.resets
        );
    });
    json_array(out, "top_programs", &i.programs, |out, p| {
        let _ = write!(
            out,
            "{{\"pid\":{},\"program\":{},\"cgroup\":{},\"opened\":{},\"failed\":{}}}",
            p.pid,
            json_string(&p.program),
            json_string(&p.cgroup),
            p.opened,
            p.failed
        );
    });
    let _ = write!(out, ",\"close_wait_age_s\":{}", i.close_wait_age_s);
    match &i.ephemeral_ports {
        None => out.push_str(",\"ephemeral_ports\":null"),
        Some(ports) => json_array(out, "ephemeral_ports", ports, |out, p| {
            let _ = write!(
                out,
                "{{\"netns\":{},\"local\":\"{}\",\"remote\":\"{}\",\"in_use\":{},\"time_wait\":{},\"range\":{},\"exhausted_in_s\":{}}}",
                p.netns,
                p.local,
                p.remote,
                p.in_use,
                p.time_wait,
                p.range,
                p.exhausted_in_s
                    .map_or("null".to_string(), |s| format!("{s:.1}"))
            );
        }),
    }
    json_array(out, "close_wait", &i.close_wait, |out, l| {
        let text = |v: Option<&str>| v.map_or("null".to_string(), json_string);
        let _ = write!(
            out,
            "{{\"pid\":{},\"program\":{},\"cgroup\":{},\"count\":{},\"oldest_s\":{:.3}}}",
            l.pid.map_or("null".to_string(), |p| p.to_string()),
            text(l.program.as_deref()),
            text(l.cgroup.as_deref()),
            l.count,
            l.oldest_s
        );
    });
    json_cost(out, i);
    match &i.listeners {
        None => out.push_str(",\"listeners\":null"),
        Some(listeners) => json_array(out, "listeners", listeners, |out, l| {
            let _ = write!(
                out,
                "{{\"netns\":{},\"local\":\"{}\",\"overflows\":{},\"accept_queue\":{},\"accept_queue_max\":{},\"closed\":{}}}",
                l.netns, l.local, l.overflows, l.accept_queue, l.accept_queue_max, l.closed
            );
        }),
    }
    out.push('}');
}

/// The interval's counts, latencies and transitions.
fn json_counts(out: &mut String, i: &Interval) {
    let _ = write!(
        out,
        ",\"interval_s\":{:.3},\"new_active\":{},\"new_passive\":{},\"closed\":{},\
\"failures\":{{{}}},\
\"retransmits\":{},\"syn_retransmits\":{},\"synack_retransmits\":{},\"resets_sent\":{},\"resets_received\":{},\
\"time_wait\":{},\"time_wait_growth\":{},\"syn_sent_over_1s\":{},\
\"listen_overflows\":{},\"listen_drops\":{},\"connect_latency_ms\":{:#},\"accept_latency_ms\":{:#},\"missed\":{},\"transitions\":{{",
        i.seconds,
        i.traffic.opened_active,
        i.traffic.opened_passive,
        i.traffic.closed,
        i.traffic
            .failures()
            .map(|(verdict, n)| format!("\"{verdict}\":{n}"))
            .collect::<Vec<_>>()
            .join(","),
        i.traffic.retransmits,
        i.traffic.syn_retransmits,
        i.traffic.synack_retransmits,
        i.traffic.resets_sent,
        i.traffic.resets_received,
        i.time_wait,
        i.time_wait_growth,
        i.syn_sent_over_1s,
        Known(i.listen_overflows, "null"),
        Known(i.listen_drops, "null"),
        Latency(&i.traffic.connect_duration),
        Latency(&i.traffic.accept_duration),
        i.missed,
    );
    for (k, (old, new, n)) in i.traffic.transitions.iter().enumerate() {
        let comma = if k > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{}\":{n}", transition_name(*old, *new));
    }
    out.push('}');
}

/// Resets sent and drops by reason; null where not counted.
fn json_reasons(out: &mut String, i: &Interval) {
    for (key, counts) in [
        ("resets_by_reason", &i.resets_by_reason),
        ("drops", &i.drops),
    ] {
        let Some(counts) = counts else {
            let _ = write!(out, ",\"{key}\":null");
            continue;
        };
        let _ = write!(out, ",\"{key}\":{{");
        for (k, (reason, n)) in counts.iter().enumerate() {
            let comma = if k > 0 { "," } else { "" };
            let _ = write!(out, "{comma}\"{reason}\":{n}");
        }
        out.push('}');
    }
}

fn json_cost(out: &mut String, i: &Interval) {
    let Some(cost) = &i.cost else {
        out.push_str(",\"self_cost\":null");
        return;
    };
    let (kernel, user) = i.cost_ratios(cost);
    let v = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.3}"));
    let _ = write!(
        out,
        ",\"self_cost\":{{\"kernel_us_per_connection\":{},\"user_us_per_event\":{},{}}}",
        v(kernel),
        v(user),
        super::stop::cost_fields(cost)
    );
}

/// `s` as a JSON string literal.
fn json_string(s: &str) -> String {
    let mut out = String::new();
    super::push_json_string(&mut out, s);
    out
}

/// `,"key":[...]`, each item written by `object`.
fn json_array<T>(out: &mut String, key: &str, items: &[T], object: impl Fn(&mut String, &T)) {
    let _ = write!(out, ",\"{key}\":[");
    for (k, item) in items.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        object(out, item);
    }
    out.push(']');
}

#[cfg(test)]
#[path = "summary_tests.rs"]
mod tests;
