//! `enetstat -S`: one block (text) or one object (JSON) per interval. Counts
//! are for the interval; the text also gives them per second.

use std::{fmt::Write as _, net::SocketAddr, rc::Rc};

use crate::{
    clock::TimeFormat,
    cost::Cost,
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
    pub listen_overflows: u64,
    pub listen_drops: u64,
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
    /// Its accept queue at the interval's end, and the queue's limit.
    pub accept_queue: u64,
    pub accept_queue_max: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    /// The namespace that saw the endpoint (inode).
    pub netns: u32,
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
        i.listen_overflows,
        i.listen_drops,
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
                let figures = format!("{}, {}/{}", l.overflows, l.accept_queue, l.accept_queue_max);
                (l.local.to_string(), figures)
            });
        text_list(out, "top listeners (overflows, accept queue/limit)", busy);
    }
    let remotes = i.remotes.iter().map(|r| {
        let figures = format!(
            "{}/{}/{}/{}",
            r.failed_connects, r.resets, r.retransmits, r.drops
        );
        (r.endpoint.to_string(), figures)
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
        let _ = write!(
            out,
            "{{\"netns\":{},\"remote\":\"{}\",\"failed_connects\":{},\"resets\":{},\"retransmits\":{},\"drops\":{}}}",
            r.netns, r.endpoint, r.failed_connects, r.resets, r.retransmits, r.drops
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
    json_cost(out, i);
    match &i.listeners {
        None => out.push_str(",\"listeners\":null"),
        Some(listeners) => json_array(out, "listeners", listeners, |out, l| {
            let _ = write!(
                out,
                "{{\"netns\":{},\"local\":\"{}\",\"overflows\":{},\"accept_queue\":{},\"accept_queue_max\":{}}}",
                l.netns, l.local, l.overflows, l.accept_queue, l.accept_queue_max
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
        i.listen_overflows,
        i.listen_drops,
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
mod tests {
    use super::*;

    fn interval() -> Interval {
        Interval {
            seconds: 2.0,
            traffic: Traffic {
                opened_active: 10,
                opened_passive: 8,
                closed: 16,
                // 2 refused, 1 reset, 3 aborted.
                failures: [0, 2, 0, 1, 3, 0, 0],
                retransmits: 4,
                syn_retransmits: 0,
                synack_retransmits: 0,
                resets_sent: 3,
                resets_received: 3,
                transitions: vec![(7, 2, 10), (5, 6, 8)],
                // 6 handshakes under 128 us, 4 under 1.024 ms.
                connect_duration: Histogram {
                    buckets: (0..40)
                        .map(|b| [0, 6, 4][(b == 7) as usize + 2 * (b == 10) as usize])
                        .collect(),
                    sum_ns: 2_000_000,
                },
                accept_duration: Histogram {
                    buckets: vec![0; 40],
                    sum_ns: 0,
                },
                ..Traffic::default()
            },
            time_wait: 8,
            time_wait_growth: 8,
            syn_sent_over_1s: 0,
            listen_overflows: 0,
            listen_drops: 0,
            missed: 0,
            cost: None,
            resets_by_reason: Some(vec![("no_socket", 3)]),
            drops: Some(vec![("netfilter_drop", 2)]),
            remotes: vec![Remote {
                netns: 1,
                endpoint: "127.0.0.1:7001".parse().unwrap(),
                failed_connects: 2,
                drops: 1,
                resets: 2,
                retransmits: 0,
            }],
            cgroups: vec![CgroupCount {
                cgroup: Rc::from("/system.slice/nginx.service"),
                name: Some("nginx.service".to_string()),
                opened: 9,
                failed: 2,
                resets: 1,
            }],
            programs: vec![ProgramCount {
                pid: 42,
                program: "nginx".to_string(),
                cgroup: Rc::from("/system.slice/nginx.service"),
                opened: 9,
                failed: 2,
            }],
            listeners: Some(vec![
                Listener {
                    netns: 1,
                    local: "127.0.0.1:7000".parse().unwrap(),
                    overflows: 12,
                    accept_queue: 2,
                    accept_queue_max: 1,
                },
                Listener {
                    netns: 1,
                    local: "[::]:22".parse().unwrap(),
                    overflows: 0,
                    accept_queue: 0,
                    accept_queue_max: 128,
                },
            ]),
        }
    }

    #[test]
    fn text_block() {
        let mut out = String::new();
        block(&mut out, &interval());
        assert_eq!(
            out,
            " (2.0 s)\n\
connections/s: 5.0 new active, 4.0 new passive, 8.0 closed\n\
failures: 2 refused, 0 timeout, 1 reset, 3 aborted, 0 unreachable, 0 no_port\n\
retransmits/s: 2.0 data, 0.0 SYN, 0.0 SYN-ACK; resets/s: 1.5 sent, 1.5 received\n\
TIME_WAIT: 8 (+8); SYN_SENT over 1 s: 0; listen overflows: 0, drops: 0\n\
handshake ms (p50/p90/p99/max, bucket bounds): connect 0.128/1.024/1.024/1.024; accept -\n\
transitions: CLOSE->SYN_SENT 10 FIN_WAIT2->TIME_WAIT 8\n\
resets sent by reason: no_socket 3\n\
TCP drops by reason: netfilter_drop 2\n\
top listeners (overflows, accept queue/limit):\n  127.0.0.1:7000                                  12, 2/1\n\
top remotes (failed connects/resets/retransmits/drops):\n  127.0.0.1:7001                                  2/2/0/1\n\
top cgroups (opened/failed/resets):\n  /system.slice/nginx.service                     9/2/1\n\
top programs (opened/failed, cgroup):\n  42/nginx                                        9/2  /system.slice/nginx.service"
        );
    }

    #[test]
    fn json_object() {
        let mut out = String::from("{\"time\":\"t\"");
        json(&mut out, &interval());
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(v["transitions"]["FIN_WAIT2->TIME_WAIT"], 8);
        assert_eq!(v["failures"]["refused"], 2);
        assert_eq!(v["failures"]["aborted"], 3);
        assert_eq!(v["failures"].as_object().map(|f| f.len()), Some(6));
        assert_eq!(v["top_remotes"][0]["remote"], "127.0.0.1:7001");
        assert_eq!(v["top_remotes"][0]["netns"], 1);
        assert_eq!(v["top_cgroups"][0]["name"], "nginx.service");
        assert_eq!(v["top_cgroups"][0]["opened"], 9);
        assert_eq!(
            v["top_programs"][0]["cgroup"],
            "/system.slice/nginx.service"
        );
        assert_eq!(v["top_programs"][0]["pid"], 42);
        assert_eq!(v["missed"], 0);
        assert_eq!(v["connect_latency_ms"]["p50"], 0.128);
        assert_eq!(v["connect_latency_ms"]["max"], 1.024);
        assert_eq!(v["accept_latency_ms"], serde_json::Value::Null);
        assert_eq!(v["resets_by_reason"]["no_socket"], 3);
        assert_eq!(v["drops"]["netfilter_drop"], 2);
        assert_eq!(v["listeners"][0]["local"], "127.0.0.1:7000");
        assert_eq!(v["listeners"][0]["overflows"], 12);
        assert_eq!(v["listeners"][0]["accept_queue"], 2);
        assert_eq!(v["listeners"][0]["accept_queue_max"], 1);
        assert_eq!(v["listeners"][1]["accept_queue_max"], 128);
    }

    #[test]
    fn the_self_cost_is_per_connection_opened_and_per_state_change() {
        let cost = Cost {
            programs: vec![crate::cost::ProgramCost {
                program: "inet_sock_set_state",
                id: 7,
                runs: 18,
                run_ns: 9_000,
            }],
            user_ns: 36_000,
        };
        let with_cost = Interval {
            cost: Some(cost),
            ..interval()
        };
        let mut out = String::from("{\"time\":\"t\"");
        json(&mut out, &with_cost);
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        // 10 + 8 opened, 18 changes.
        assert_eq!(v["self_cost"]["kernel_us_per_connection"], 0.5, "{v}");
        assert_eq!(v["self_cost"]["user_us_per_event"], 2.0, "{v}");
        assert_eq!(v["self_cost"]["programs"][0]["id"], 7);
        assert_eq!(v["self_cost"]["programs"][0]["runs"], 18);
        let mut text = String::new();
        block(&mut text, &with_cost);
        assert!(
            text.contains("\nself cost: kernel 0.50 us per connection opened (18 program runs, 0.0 ms), userspace 2.00 us per state change (0.0 ms)"),
            "{text}"
        );
        let mut none = String::from("{\"time\":\"t\"");
        json(&mut none, &interval());
        assert!(none.contains(",\"self_cost\":null,"), "{none}");
    }

    #[test]
    fn known_misses_are_said_in_the_text() {
        let mut out = String::new();
        block(
            &mut out,
            &Interval {
                missed: 3,
                ..interval()
            },
        );
        assert!(
            out.contains("\nmissed by the kernel side: 3 events (counts above are short; see README, Known limits)\n"),
            "{out}"
        );
    }
}
