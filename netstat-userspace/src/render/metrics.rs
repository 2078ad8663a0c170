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
    procnet::sockstat::TcpPressure,
    tcp_state::TcpState,
    traffic::{Histogram, Traffic},
};

/// What one scrape reports.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    pub traffic: Traffic,
    /// Events the kernel side lost, by cause.
    pub lost_ring_full: u64,
    pub lost_skipped: u64,
    pub lost_gaps: u64,
    /// Per namespace (its inode when several are watched).
    pub pressure: Vec<(Option<u32>, TcpPressure)>,
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

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    let mut values: Vec<(Labels, u64)> = values.into_iter().collect();
    if let [(labels, value)] = values.as_slice()
        && labels.is_empty()
    {
        return ConstCounter::new(*value).encode(family);
    }
    for (labels, value) in values.drain(..) {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    ConstCounter::new(value).encode(metric)
}

fn histogram(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    h: &Histogram,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, MetricType::Histogram)?;
    let buckets: Vec<(f64, u64)> = h
        .buckets
        .iter()
        .enumerate()
        .map(|(b, n)| {
            let bound = Histogram::upper_bound_seconds(b);
            (if bound.is_finite() { bound } else { f64::MAX }, *n)
        })
        .collect();
    metric.encode_histogram::<NoLabelSet>(h.sum_ns as f64 / 1e9, h.count(), &buckets, None)
}

fn label(key: &'static str, value: &str) -> Labels {
    vec![(key, value.to_string())]
}

impl Collector for Scrape {
    fn encode(&self, mut e: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let r = &self.0;
        let t = &r.traffic;
        counters(
            &mut e,
            "enetstat_connections_opened",
            "TCP connections opened: connects begun (active), handshakes completed on a listener (passive).",
            [
                (label("direction", "active"), t.opened_active),
                (label("direction", "passive"), t.opened_passive),
            ],
        )?;
        counter(
            &mut e,
            "enetstat_connections_closed",
            "TCP connections that closed or entered TIME_WAIT (listeners excepted).",
            t.closed,
        )?;
        counters(
            &mut e,
            "enetstat_tcp_transitions",
            "TCP state changes, by netstat's state names (TIME_WAIT entries as such).",
            t.transitions.iter().map(|&(old, new, n)| {
                let labels = vec![
                    ("old", TcpState(old).name().to_string()),
                    ("new", TcpState(new).name().to_string()),
                ];
                (labels, n)
            }),
        )?;
        counters(
            &mut e,
            "enetstat_connect_failures",
            "Connections that failed: refused (reset answering the SYN), timeout (SYNs unanswered), reset (by the peer later).",
            [
                (label("reason", "refused"), t.refused),
                (label("reason", "timeout"), t.timeout),
                (label("reason", "reset"), t.reset),
            ],
        )?;
        counters(
            &mut e,
            "enetstat_retransmits",
            "TCP retransmissions: of data segments, and of SYN-ACKs.",
            [
                (label("kind", "data"), t.retransmits),
                (label("kind", "synack"), t.synack_retransmits),
            ],
        )?;
        counters(
            &mut e,
            "enetstat_resets",
            "TCP resets sent and received.",
            [
                (label("direction", "sent"), t.resets_sent),
                (label("direction", "received"), t.resets_received),
            ],
        )?;
        let netns = |inode: Option<u32>| -> Labels {
            inode.map_or_else(Vec::new, |i| label("netns", &i.to_string()))
        };
        let mut gauge = e.encode_descriptor(
            "enetstat_time_wait_sockets",
            "TCP sockets in TIME_WAIT now.",
            None,
            MetricType::Gauge,
        )?;
        let time_wait =
            |p: &TcpPressure| ConstGauge::new(i64::try_from(p.time_wait).unwrap_or(i64::MAX));
        match r.pressure.as_slice() {
            [(None, p)] => time_wait(p).encode(gauge)?,
            several => {
                for (inode, p) in several {
                    time_wait(p).encode(gauge.encode_family(&netns(*inode))?)?;
                }
            }
        }
        counters(
            &mut e,
            "enetstat_listen_overflows",
            "Connections a listener could not queue because its accept queue was full (TcpExt ListenOverflows, since boot).",
            r.pressure
                .iter()
                .map(|(i, p)| (netns(*i), p.listen_overflows)),
        )?;
        counters(
            &mut e,
            "enetstat_listen_drops",
            "SYNs and handshakes a listener dropped for any reason (TcpExt ListenDrops, since boot).",
            r.pressure.iter().map(|(i, p)| (netns(*i), p.listen_drops)),
        )?;
        histogram(
            &mut e,
            "enetstat_connect_duration_seconds",
            "Time from connect (SYN_SENT) to ESTABLISHED, from an in-kernel histogram.",
            &t.connect_duration,
        )?;
        histogram(
            &mut e,
            "enetstat_connection_lifetime_seconds",
            "Time from connect or accept to the connection's close or TIME_WAIT, from an in-kernel histogram.",
            &t.lifetime,
        )?;
        counters(
            &mut e,
            "enetstat_events_lost",
            "State changes the kernel side could not report: the ring buffer was full (ring_full), the kernel skipped our program (skipped), or a socket's history showed a change no program saw (gap).",
            [
                (label("cause", "ring_full"), r.lost_ring_full),
                (label("cause", "skipped"), r.lost_skipped),
                (label("cause", "gap"), r.lost_gaps),
            ],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_metric_has_help_type_and_its_exact_name() {
        let mut stats = vec![0; netstat_common::stat::COUNT as usize];
        stats[netstat_common::stat::transition(7, 2) as usize] = 2000;
        let reading = Reading {
            traffic: Traffic::from_stats(&stats),
            pressure: vec![(None, TcpPressure::default())],
            ..Reading::default()
        };
        let text = render(reading);
        for name in [
            "enetstat_connections_opened",
            "enetstat_connections_closed",
            "enetstat_tcp_transitions",
            "enetstat_connect_failures",
            "enetstat_retransmits",
            "enetstat_resets",
            "enetstat_time_wait_sockets",
            "enetstat_listen_overflows",
            "enetstat_listen_drops",
            "enetstat_connect_duration_seconds",
            "enetstat_connection_lifetime_seconds",
            "enetstat_events_lost",
        ] {
            assert!(text.contains(&format!("# HELP {name} ")), "{name}\n{text}");
            assert!(text.contains(&format!("# TYPE {name} ")), "{name}\n{text}");
        }
        assert!(
            text.contains("enetstat_connections_opened_total{direction=\"active\"} 2000\n"),
            "{text}"
        );
        assert!(
            text.contains("enetstat_tcp_transitions_total{old=\"CLOSE\",new=\"SYN_SENT\"} 2000\n")
        );
        assert!(text.contains("enetstat_connect_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
        assert!(text.contains("\nenetstat_time_wait_sockets 0\n"), "{text}");
        assert!(
            text.contains("\nenetstat_connections_closed_total 0\n"),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");

        let old = prometheus_text(&text);
        assert!(old.contains("# HELP enetstat_connections_opened_total TCP connections opened"));
        assert!(old.contains("# TYPE enetstat_connections_opened_total counter\n"));
        assert!(old.contains("# TYPE enetstat_connect_duration_seconds histogram\n"));
        assert!(old.contains("# TYPE enetstat_time_wait_sockets gauge\n"));
        assert!(!old.contains("# EOF"));
    }
}
