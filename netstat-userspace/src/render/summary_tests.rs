use super::*;

/// Two seconds of a storm's counts.
fn traffic() -> Traffic {
    Traffic {
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
    }
}

/// A remote in netns 1 with (failed connects, resets, retransmits, drops).
fn remote(endpoint: &str, [failed_connects, resets, retransmits, drops]: [u64; 4]) -> Remote {
    Remote {
        netns: 1,
        endpoint: endpoint.parse().unwrap(),
        failed_connects,
        drops,
        resets,
        retransmits,
    }
}

fn interval() -> Interval {
    Interval {
        seconds: 2.0,
        traffic: traffic(),
        time_wait: 8,
        time_wait_growth: 8,
        syn_sent_over_1s: 0,
        listen_overflows: Some(0),
        listen_drops: Some(0),
        missed: 0,
        cost: None,
        resets_by_reason: Some(vec![("no_socket", 3)]),
        drops: Some(vec![("netfilter_drop", 2)]),
        // The second an inbound peer: its port is not counted.
        remotes: vec![
            remote("127.0.0.1:7001", [2, 2, 0, 1]),
            remote("[fd00::7]:0", [0, 1, 0, 0]),
        ],
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
        close_wait: vec![CloseWait {
            pid: Some(42),
            program: Some("nginx".to_string()),
            cgroup: Some(Rc::from("/system.slice/nginx.service")),
            count: 5,
            oldest_s: 12.5,
        }],
        close_wait_age_s: 10.0,
        ephemeral_ports: Some(vec![EphemeralPorts {
            netns: 1,
            local: "10.0.0.1".parse().unwrap(),
            remote: "10.0.0.5:443".parse().unwrap(),
            in_use: 22_900,
            time_wait: 20_000,
            range: 28_232,
            exhausted_in_s: Some(40.2),
        }]),
        listeners: Some(vec![
            Listener {
                netns: 1,
                local: "127.0.0.1:7000".parse().unwrap(),
                overflows: 12,
                accept_queue: 2,
                accept_queue_max: 1,
                closed: false,
            },
            Listener {
                netns: 1,
                local: "[::]:22".parse().unwrap(),
                overflows: 0,
                accept_queue: 0,
                accept_queue_max: 128,
                closed: false,
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
top remotes (failed connects/resets/retransmits/drops):\n  127.0.0.1:7001                                  2/2/0/1\n  [fd00::7]:*                                     0/1/0/0\n\
top cgroups (opened/failed/resets):\n  /system.slice/nginx.service                     9/2/1\n\
top programs (opened/failed, cgroup):\n  42/nginx                                        9/2  /system.slice/nginx.service\n\
CLOSE_WAIT over 10 s (sockets, oldest, cgroup):\n  42/nginx                                        5, 12.5 s  /system.slice/nginx.service\n\
ephemeral ports to 10.0.0.5:443 from 10.0.0.1: 22,900 of 28,232 (81%), 20,000 in TIME_WAIT, exhausted in ~40 s"
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
    assert_eq!(v["top_remotes"][1]["remote"], "[fd00::7]:*");
    assert_eq!(v["top_cgroups"][0]["name"], "nginx.service");
    assert_eq!(v["top_cgroups"][0]["opened"], 9);
    assert_eq!(
        v["top_programs"][0]["cgroup"],
        "/system.slice/nginx.service"
    );
    assert_eq!(v["top_programs"][0]["pid"], 42);
    assert_eq!(v["close_wait"][0]["count"], 5);
    assert_eq!(v["close_wait"][0]["oldest_s"], 12.5);
    assert_eq!(v["close_wait_age_s"], 10.0);
    assert_eq!(v["ephemeral_ports"][0]["remote"], "10.0.0.5:443");
    assert_eq!(v["ephemeral_ports"][0]["in_use"], 22_900);
    assert_eq!(v["ephemeral_ports"][0]["exhausted_in_s"], 40.2);
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
