//! `enetstat -S`: one block (text) or one object (JSON) per interval. Counts
//! are for the interval; the text also gives them per second.

use std::{fmt::Write as _, net::SocketAddr};

use crate::{clock::TimeFormat, tcp_state::TcpState, traffic::Traffic};

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
    /// The 5 remote endpoints with most failed connects + resets + retransmits.
    pub remotes: Vec<Remote>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub endpoint: SocketAddr,
    pub failed_connects: u64,
    pub resets: u64,
    pub retransmits: u64,
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

fn transition_name(old: u8, new: u8) -> String {
    format!("{}->{}", TcpState(old).name(), TcpState(new).name())
}

fn block(out: &mut String, i: &Interval) {
    let rate = |n: u64| n as f64 / i.seconds.max(1e-9);
    let _ = write!(
        out,
        " ({:.1} s)\nconnections/s: {:.1} new active, {:.1} new passive, {:.1} closed\n\
failed connects: {} refused, {} timeout; resets on established: {}\n\
retransmits/s: {:.1} ({:.1} SYN-ACK); resets/s: {:.1} sent, {:.1} received\n\
TIME_WAIT: {} ({:+}); SYN_SENT over 1 s: {}; listen overflows: {}, drops: {}\n\
transitions:",
        i.seconds,
        rate(i.traffic.opened_active),
        rate(i.traffic.opened_passive),
        rate(i.traffic.closed),
        i.traffic.refused,
        i.traffic.timeout,
        i.traffic.reset,
        rate(i.traffic.retransmits),
        rate(i.traffic.synack_retransmits),
        rate(i.traffic.resets_sent),
        rate(i.traffic.resets_received),
        i.time_wait,
        i.time_wait_growth,
        i.syn_sent_over_1s,
        i.listen_overflows,
        i.listen_drops,
    );
    if i.traffic.transitions.is_empty() {
        out.push_str(" none");
    }
    for (old, new, n) in &i.traffic.transitions {
        let _ = write!(out, " {} {n}", transition_name(*old, *new));
    }
    if i.missed > 0 {
        let _ = write!(
            out,
            "\nmissed by the kernel side: {} events (counts above are short; see README, Known limits)",
            i.missed
        );
    }
    out.push_str("\ntop remotes (failed connects/resets/retransmits):");
    if i.remotes.is_empty() {
        out.push_str(" none");
    }
    for r in &i.remotes {
        let _ = write!(
            out,
            "\n  {:<47} {}/{}/{}",
            r.endpoint.to_string(),
            r.failed_connects,
            r.resets,
            r.retransmits
        );
    }
}

fn json(out: &mut String, i: &Interval) {
    let _ = write!(
        out,
        ",\"interval_s\":{:.3},\"new_active\":{},\"new_passive\":{},\"closed\":{},\
\"failures\":{{\"refused\":{},\"timeout\":{},\"reset\":{}}},\
\"retransmits\":{},\"synack_retransmits\":{},\"resets_sent\":{},\"resets_received\":{},\
\"time_wait\":{},\"time_wait_growth\":{},\"syn_sent_over_1s\":{},\
\"listen_overflows\":{},\"listen_drops\":{},\"missed\":{},\"transitions\":{{",
        i.seconds,
        i.traffic.opened_active,
        i.traffic.opened_passive,
        i.traffic.closed,
        i.traffic.refused,
        i.traffic.timeout,
        i.traffic.reset,
        i.traffic.retransmits,
        i.traffic.synack_retransmits,
        i.traffic.resets_sent,
        i.traffic.resets_received,
        i.time_wait,
        i.time_wait_growth,
        i.syn_sent_over_1s,
        i.listen_overflows,
        i.listen_drops,
        i.missed,
    );
    for (k, (old, new, n)) in i.traffic.transitions.iter().enumerate() {
        let comma = if k > 0 { "," } else { "" };
        let _ = write!(out, "{comma}\"{}\":{n}", transition_name(*old, *new));
    }
    out.push_str("},\"top_remotes\":[");
    for (k, r) in i.remotes.iter().enumerate() {
        let comma = if k > 0 { "," } else { "" };
        let _ = write!(
            out,
            "{comma}{{\"remote\":\"{}\",\"failed_connects\":{},\"resets\":{},\"retransmits\":{}}}",
            r.endpoint, r.failed_connects, r.resets, r.retransmits
        );
    }
    out.push_str("]}");
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
                refused: 2,
                timeout: 0,
                reset: 1,
                retransmits: 4,
                synack_retransmits: 0,
                resets_sent: 3,
                resets_received: 3,
                transitions: vec![(7, 2, 10), (5, 6, 8)],
                ..Traffic::default()
            },
            time_wait: 8,
            time_wait_growth: 8,
            syn_sent_over_1s: 0,
            listen_overflows: 0,
            listen_drops: 0,
            missed: 0,
            remotes: vec![Remote {
                endpoint: "127.0.0.1:7001".parse().unwrap(),
                failed_connects: 2,
                resets: 2,
                retransmits: 0,
            }],
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
failed connects: 2 refused, 0 timeout; resets on established: 1\n\
retransmits/s: 2.0 (0.0 SYN-ACK); resets/s: 1.5 sent, 1.5 received\n\
TIME_WAIT: 8 (+8); SYN_SENT over 1 s: 0; listen overflows: 0, drops: 0\n\
transitions: CLOSE->SYN_SENT 10 FIN_WAIT2->TIME_WAIT 8\n\
top remotes (failed connects/resets/retransmits):\n  127.0.0.1:7001                                  2/2/0"
        );
    }

    #[test]
    fn json_object() {
        let mut out = String::from("{\"time\":\"t\"");
        json(&mut out, &interval());
        let v: serde_json::Value = serde_json::from_str(&out).expect(&out);
        assert_eq!(v["transitions"]["FIN_WAIT2->TIME_WAIT"], 8);
        assert_eq!(v["failures"]["refused"], 2);
        assert_eq!(v["top_remotes"][0]["remote"], "127.0.0.1:7001");
        assert_eq!(v["missed"], 0);
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
