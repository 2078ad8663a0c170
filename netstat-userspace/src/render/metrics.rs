//! `--metrics`: one scrape's figures in the OpenMetrics text format, with
//! the official `prometheus-client` encoder. Remote endpoints are never
//! labels (unbounded cardinality); a netns label appears only when several
//! namespaces are watched.

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
    registry::Registry,
};

use crate::{
    cost::ProgramCost,
    procnet::sockstat::TcpPressure,
    tcp_state::TcpState,
    traffic::{Histogram, Traffic},
};

/// What one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub namespaces: Vec<NetnsReading>,
    /// Events the kernel side lost, by cause (all namespaces).
    pub lost_ring_full: u64,
    /// None where the kernel does not count skipped runs: the `skipped`
    /// series is then absent (unknown), not 0.
    pub lost_skipped: Option<u64>,
    pub lost_gaps: u64,
    /// The kernel's reset reasons by value; None where it gives none.
    pub reset_reasons: Option<&'static [String]>,
    /// Our programs' runs and time (`--self-cost`; None without).
    pub programs: Option<Vec<ProgramCost>>,
    /// Connects begun so far by owners' cgroup path, all namespaces.
    pub opened_by_cgroup: Vec<(String, u64)>,
    /// Sockets in CLOSE_WAIT for 10 s or more, by owner's program (`-`:
    /// owner never seen act).
    pub close_wait_by_program: Vec<(String, u64)>,
    /// Ephemeral ports held now, by remote endpoint (all local addresses
    /// and namespaces).
    pub ephemeral_by_remote: Vec<(String, u64)>,
}

/// Cgroups given a series of their own; the rest add up to `other`.
pub const CGROUP_SERIES: usize = 20;
/// Programs and remote endpoints given a series of their own.
pub const TOP_SERIES: usize = 10;

/// The `top` largest of `counts` by name, and `other`: the sum of the rest.
fn top_and_other(counts: &[(String, u64)], top: usize) -> Vec<(String, u64)> {
    let mut sorted = counts.to_vec();
    sorted.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let other: u64 = sorted.iter().skip(top).map(|c| c.1).sum();
    sorted.truncate(top);
    sorted.push(("other".to_string(), other));
    sorted
}

/// One watched namespace's figures.
#[derive(Debug, Clone, Default)]
pub struct NetnsReading {
    /// Its inode, when several are watched (the `netns` label).
    pub netns: Option<u32>,
    pub traffic: Traffic,
    /// None for a namespace gone since its counts were read.
    pub pressure: Option<TcpPressure>,
    /// Each listener's drop counter by local address (`listener` labels:
    /// listeners are few, unlike remote endpoints).
    pub listeners: Vec<(String, u64)>,
}

/// The OpenMetrics text of `reading`, ending in `# EOF`.
pub fn render(reading: Reading) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(reading)));
    let mut out = String::with_capacity(8192);
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
    out
}

/// The content type of `render`'s text.
pub const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The content type of `prometheus_text`'s.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// OpenMetrics text in the older Prometheus text format (0.0.4), for
/// clients that do not ask for OpenMetrics (curl, promtool): a counter's
/// HELP and TYPE name its `_total` samples, and there is no `# EOF`.
pub fn prometheus_text(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    let lines: Vec<&str> = openmetrics.lines().collect();
    for (k, line) in lines.iter().enumerate() {
        if *line == "# EOF" {
            continue;
        }
        let family = line
            .strip_prefix("# HELP ")
            .or_else(|| line.strip_prefix("# TYPE "))
            .and_then(|rest| rest.split(' ').next());
        let counter = family.is_some_and(|name| {
            // The TYPE line follows the HELP line.
            lines[k..]
                .iter()
                .take(2)
                .any(|l| *l == format!("# TYPE {name} counter"))
        });
        match family {
            Some(name) if counter => {
                let at = "# HELP ".len() + name.len();
                out.push_str(&line[..at]);
                out.push_str("_total");
                out.push_str(&line[at..]);
            }
            _ => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

#[derive(Debug)]
struct Scrape(Reading);

type Labels = Vec<(&'static str, String)>;

/// A gauge family of labelled samples.
fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, n) in values {
        ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
            .encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    // A sample without labels uses up the family's encoder: it goes last.
    let (bare, labelled): (Vec<_>, Vec<_>) = values
        .into_iter()
        .partition(|(labels, _)| labels.is_empty());
    for (labels, value) in labelled {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    match bare.first() {
        Some((_, value)) => ConstCounter::new(*value).encode(family),
        None => Ok(()),
    }
}

fn histograms<'a>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, &'a Histogram)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    for (labels, h) in values {
        let buckets: Vec<(f64, u64)> = h
            .buckets
            .iter()
            .enumerate()
            .map(|(b, n)| {
                let bound = Histogram::upper_bound_seconds(b);
                (if bound.is_finite() { bound } else { f64::MAX }, *n)
            })
            .collect();
        let sum = h.sum_ns as f64 / 1e9;
        if labels.is_empty() {
            return family.encode_histogram::<NoLabelSet>(sum, h.count(), &buckets, None);
        }
        family
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(sum, h.count(), &buckets, None)?;
    }
    Ok(())
}

fn label(key: &'static str, value: &str) -> Labels {
    vec![(key, value.to_string())]
}

/// `labels` after the namespace's label, if it has one.
fn with_netns(netns: Option<u32>, labels: &[(&'static str, &str)]) -> Labels {
    let mut all: Labels = netns.map_or_else(Vec::new, |i| vec![("netns", i.to_string())]);
    all.extend(labels.iter().map(|(k, v)| (*k, v.to_string())));
    all
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.0;
        r.traffic(&mut e)?;
        r.resets(&mut e)?;
        r.pressure_metrics(&mut e)?;
        r.durations(&mut e)?;
        r.owners(&mut e)?;
        r.losses_and_cost(&mut e)
    }
}

impl Reading {
    /// Each namespace's samples of one traffic count, `labels` apart.
    fn each(
        &self,
        f: &dyn Fn(&Traffic) -> u64,
        labels: &[(&'static str, &str)],
    ) -> Vec<(Labels, u64)> {
        self.namespaces
            .iter()
            .map(|n| (with_netns(n.netns, labels), f(&n.traffic)))
            .collect()
    }

    /// Each namespace's sample of one /proc pressure figure.
    fn pressure(&self, f: &dyn Fn(&TcpPressure) -> u64) -> Vec<(Labels, u64)> {
        self.namespaces
            .iter()
            .filter_map(|n| Some((with_netns(n.netns, &[]), f(n.pressure.as_ref()?))))
            .collect()
    }

    /// Connections opened and closed, transitions, failures, retransmits.
    fn traffic(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let each =
            |f: &dyn Fn(&Traffic) -> u64, labels: &[(&'static str, &str)]| self.each(f, labels);
        let ns = &self.namespaces;
        let mut opened = each(&|t| t.opened_active, &[("direction", "active")]);
        opened.extend(each(&|t| t.opened_passive, &[("direction", "passive")]));
        counters(
            e,
            "enetstat_connections_opened",
            "TCP connections opened: connects begun (active), handshakes completed on a listener (passive).",
            opened,
        )?;
        counters(
            e,
            "enetstat_connections_closed",
            "TCP connections whose socket ended: closed, entered TIME_WAIT, or was handed to a timewait socket in FIN_WAIT2 (listeners excepted).",
            each(&|t| t.closed, &[]),
        )?;
        let transitions = ns.iter().flat_map(|n| {
            n.traffic.transitions.iter().map(|&(old, new, count)| {
                let states = [("old", TcpState(old).name()), ("new", TcpState(new).name())];
                (with_netns(n.netns, &states), count)
            })
        });
        counters(
            e,
            "enetstat_tcp_transitions",
            "TCP state changes, by netstat's state names (TIME_WAIT entries as such).",
            transitions,
        )?;
        let failures = ns.iter().flat_map(|n| {
            n.traffic
                .failures()
                .map(|(reason, count)| (with_netns(n.netns, &[("reason", reason)]), count))
        });
        counters(
            e,
            "enetstat_connect_failures",
            "Connections that failed, by the kernel's record at their end: refused, timeout (the kernel gave up retrying), reset (by the peer), aborted (closed by the application before established), unreachable (an ICMP error), no_port (no local port free).",
            failures,
        )?;
        let mut retransmits = each(&|t| t.retransmits, &[("kind", "data")]);
        retransmits.extend(each(&|t| t.syn_retransmits, &[("kind", "syn")]));
        retransmits.extend(each(&|t| t.synack_retransmits, &[("kind", "synack")]));
        counters(
            e,
            "enetstat_retransmits",
            "TCP retransmissions: of data segments, of a connect's SYNs, and of SYN-ACKs.",
            retransmits,
        )?;
        Ok(())
    }

    /// Connects begun by the `CGROUP_SERIES` cgroups that began most, and
    /// by all others together (`cgroup="other"`): bounded cardinality.
    fn owners(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let samples = top_and_other(&self.opened_by_cgroup, CGROUP_SERIES)
            .into_iter()
            .map(|(cgroup, n)| (vec![("cgroup", cgroup)], n));
        counters(
            e,
            "enetstat_cgroup_connections_opened",
            "Connects begun, by the cgroup v2 path of the socket's owner (the 20 that began most since start; the rest as other).",
            samples,
        )?;
        gauges(
            e,
            "enetstat_close_wait_sockets",
            "Sockets 10 s or more in CLOSE_WAIT (the peer closed, the application has not), by owner's program (the 10 with most; the rest as other).",
            top_and_other(&self.close_wait_by_program, TOP_SERIES)
                .into_iter()
                .map(|(program, n)| (vec![("program", program)], n)),
        )?;
        gauges(
            e,
            "enetstat_ephemeral_ports_in_use",
            "Local ports of ip_local_port_range held toward a remote endpoint, connected or in TIME_WAIT (the 10 with most; the rest as other).",
            top_and_other(&self.ephemeral_by_remote, TOP_SERIES)
                .into_iter()
                .map(|(remote, n)| (vec![("remote", remote)], n)),
        )
    }

    /// Resets sent (by reason) and received.
    fn resets(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ns = &self.namespaces;
        let mut resets = Vec::new();
        for n in ns {
            let t = &n.traffic;
            match self.reset_reasons {
                // Sent resets by the kernel's reason; any counted without one
                // (beyond the reasons kept) as `unknown`.
                Some(names) => {
                    let mut named = 0;
                    for &(reason, count) in &t.reset_reasons {
                        let name = names
                            .get(usize::from(reason))
                            .map_or("unknown", String::as_str);
                        let labels = [("direction", "sent"), ("reason", name)];
                        resets.push((with_netns(n.netns, &labels), count));
                        named += count;
                    }
                    let rest = t.resets_sent.saturating_sub(named);
                    if rest > 0 {
                        let labels = [("direction", "sent"), ("reason", "unknown")];
                        resets.push((with_netns(n.netns, &labels), rest));
                    }
                }
                None => resets.push((with_netns(n.netns, &[("direction", "sent")]), t.resets_sent)),
            }
            let received = with_netns(n.netns, &[("direction", "received")]);
            resets.push((received, t.resets_received));
        }
        counters(
            e,
            "enetstat_resets",
            "TCP resets sent (by the kernel's reason, on Linux 6.10 and later) and received.",
            resets,
        )?;
        Ok(())
    }

    /// TIME_WAIT, listen overflows and drops, per listener drops.
    fn pressure_metrics(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let pressure = |f: &dyn Fn(&TcpPressure) -> u64| self.pressure(f);
        let ns = &self.namespaces;
        let mut gauge = e.encode_descriptor(
            "enetstat_time_wait_sockets",
            "TCP sockets in TIME_WAIT now.",
            None,
            MetricType::Gauge,
        )?;
        for (labels, n) in pressure(&|p| p.time_wait) {
            let value = ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX));
            if labels.is_empty() {
                value.encode(gauge)?;
                break;
            }
            value.encode(gauge.encode_family(&labels)?)?;
        }
        counters(
            e,
            "enetstat_listen_overflows",
            "Connections the namespace's listeners could not queue because an accept queue was full (TcpExt ListenOverflows, since boot).",
            pressure(&|p| p.listen_overflows),
        )?;
        let per_listener = ns.iter().flat_map(|n| {
            n.listeners
                .iter()
                .map(|(listener, drops)| (with_netns(n.netns, &[("listener", listener)]), *drops))
        });
        counters(
            e,
            "enetstat_listener_queue_drops",
            "SYNs and handshakes one listener dropped because its accept or SYN queue was full (its drop counter, since it was created).",
            per_listener,
        )?;
        counters(
            e,
            "enetstat_listen_drops",
            "SYNs and handshakes a listener dropped for any reason (TcpExt ListenDrops, since boot).",
            pressure(&|p| p.listen_drops),
        )?;
        Ok(())
    }

    /// The in-kernel duration histograms.
    fn durations(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let ns = &self.namespaces;
        histograms(
            e,
            "enetstat_connect_duration_seconds",
            "Time from connect (SYN_SENT) to ESTABLISHED, from an in-kernel histogram.",
            ns.iter()
                .map(|n| (with_netns(n.netns, &[]), &n.traffic.connect_duration)),
        )?;
        histograms(
            e,
            "enetstat_connection_lifetime_seconds",
            "Time from connect or accept to the connection's close or TIME_WAIT, from an in-kernel histogram.",
            ns.iter()
                .map(|n| (with_netns(n.netns, &[]), &n.traffic.lifetime)),
        )?;
        Ok(())
    }

    /// What the kernel side lost, and (--self-cost) what its programs cost.
    fn losses_and_cost(&self, e: &mut DescriptorEncoder) -> Result<(), std::fmt::Error> {
        counters(
            e,
            "enetstat_events_lost",
            "State changes the kernel side could not report: the ring buffer was full (ring_full), the kernel skipped our program (skipped), or a socket's history showed a change no program saw (gap).",
            [
                Some((label("cause", "ring_full"), self.lost_ring_full)),
                self.lost_skipped.map(|n| (label("cause", "skipped"), n)),
                Some((label("cause", "gap"), self.lost_gaps)),
            ]
            .into_iter()
            .flatten(),
        )?;
        let Some(programs) = &self.programs else {
            return Ok(());
        };
        counters(
            e,
            "enetstat_bpf_program_runs",
            "Runs of each of enetstat's kernel programs (--self-cost: the kernel's program statistics, on while enetstat runs).",
            programs
                .iter()
                .map(|p| (label("program", p.program), p.runs)),
        )?;
        let mut family = e.encode_descriptor(
            "enetstat_bpf_program_run_seconds",
            "Time on CPU of each of enetstat's kernel programs (--self-cost).",
            None,
            MetricType::Counter,
        )?;
        for p in programs {
            let labels = label("program", p.program);
            ConstCounter::new(p.run_ns as f64 / 1e9).encode(family.encode_family(&labels)?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
pub(crate) mod tests;
