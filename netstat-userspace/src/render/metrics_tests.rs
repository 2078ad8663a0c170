use super::*;

/// The name of every metric a scrape can hold (with `--self-cost`), as
/// its `# TYPE` line gives it (counters with `_total`).
/// However many cgroups open connections, 21 series: the top 20 and
/// `other`, whose sum is every connect counted.
#[test]
fn cgroup_series_are_bounded_and_add_up() {
    let reading = Reading {
        opened_by_cgroup: (0..30).map(|i| (format!("/cg{i:02}"), i + 1)).collect(),
        ..Reading::default()
    };
    let text = prometheus_text(&render(reading));
    let samples: Vec<(&str, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("enetstat_cgroup_connections_opened_total{cgroup=\""))
        .map(|l| {
            let (cgroup, n) = l.split_once("\"} ").unwrap();
            (cgroup, n.parse().unwrap())
        })
        .collect();
    assert_eq!(samples.len(), 21, "{text}");
    assert!(samples.contains(&("/cg29", 30)), "{text}");
    assert!(samples.contains(&("other", (1..=10u64).sum())), "{text}");
    assert!(!samples.iter().any(|s| s.0 == "/cg09"), "{text}");
    assert_eq!(
        samples.iter().map(|s| s.1).sum::<u64>(),
        (1..=30u64).sum::<u64>()
    );
}

pub(crate) fn every_metric_name() -> Vec<String> {
    let reading = Reading {
        namespaces: vec![NetnsReading::default()],
        programs: Some(vec![crate::cost::ProgramCost {
            program: "inet_sock_set_state",
            id: 1,
            runs: 1,
            run_ns: 1,
        }]),
        lost_skipped: Some(0),
        ..Reading::default()
    };
    prometheus_text(&render(reading))
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let (name, kind) = l.split_once(' ').unwrap_or((l, ""));
            match kind {
                "counter" if !name.ends_with("_total") => format!("{name}_total"),
                _ => name.to_string(),
            }
        })
        .collect()
}

/// Under `--netns all` (two namespaces here), each metric name keeps
/// one label set across its samples, so that `sum()` counts once.
#[test]
fn each_metric_name_has_one_label_set() {
    let mut stats = vec![0; netstat_common::stat::COUNT as usize];
    stats[netstat_common::stat::SYN_RETRANSMITS as usize] = 3;
    let namespace = |netns| NetnsReading {
        netns: Some(netns),
        traffic: Traffic::from_stats(&stats),
        pressure: Some(TcpPressure::default()),
        listeners: vec![("127.0.0.1:7600".into(), 1)],
    };
    let reading = Reading {
        namespaces: vec![namespace(1), namespace(2)],
        lost_skipped: Some(0),
        ..Reading::default()
    };
    let text = prometheus_text(&render(reading));
    let mut keys: std::collections::HashMap<&str, Vec<String>> = Default::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, _) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let name = name
            .trim_end_matches("_bucket")
            .trim_end_matches("_sum")
            .trim_end_matches("_count");
        let mut set: Vec<String> = labels
            .trim_end_matches('}')
            .split(',')
            .filter_map(|kv| kv.split_once('=').map(|(k, _)| k.to_string()))
            .filter(|k| k != "le")
            .collect();
        set.sort();
        let seen = keys.entry(name).or_insert_with(|| set.clone());
        assert_eq!(*seen, set, "{name}: {line}");
    }
    assert!(
        text.contains("enetstat_retransmits_total{netns=\"2\",kind=\"syn\"} 3"),
        "{text}"
    );
}

#[test]
fn every_metric_has_help_type_and_its_exact_name() {
    let mut stats = vec![0; netstat_common::stat::COUNT as usize];
    stats[netstat_common::stat::transition(7, 2) as usize] = 2000;
    let reading = Reading {
        namespaces: vec![NetnsReading {
            netns: None,
            traffic: Traffic::from_stats(&stats),
            pressure: Some(TcpPressure::default()),
            listeners: vec![("127.0.0.1:7600".into(), 396)],
        }],
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
    assert!(text.contains("enetstat_tcp_transitions_total{old=\"CLOSE\",new=\"SYN_SENT\"} 2000\n"));
    assert!(text.contains("enetstat_connect_duration_seconds_bucket{le=\"+Inf\"} 0\n"));
    assert!(text.contains("\nenetstat_time_wait_sockets 0\n"), "{text}");
    assert!(
        text.contains("\nenetstat_connections_closed_total 0\n"),
        "{text}"
    );
    assert!(
        text.contains("\nenetstat_listen_overflows_total 0\n"),
        "{text}"
    );
    assert!(
        text.contains("\nenetstat_listener_queue_drops_total{listener=\"127.0.0.1:7600\"} 396\n"),
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
