//! The closing summary of `-E` and `-S`, on stderr: one English line, or
//! with `--json` one JSON object as the last line, for scripts (README,
//! "The stop object").

use std::fmt::Write as _;

use crate::cost::Cost;

/// What a run of `-E` or `-S` saw and lost, as it stops.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StopSummary {
    /// "events" for `-E`, "summary" for `-S`.
    pub mode: &'static str,
    /// Events read from the ring buffer (`-E`; `-S` reads none).
    pub events_seen: Option<u64>,
    /// Of those, state changes (`-E`).
    pub state_changes: Option<u64>,
    /// Events that never reached userspace: the three below added up.
    pub lost: u64,
    /// Of those: the ring buffer was full.
    pub lost_ring_full: u64,
    /// Of those: runs the kernel skipped that no second program made up for
    /// (None: this kernel does not count skipped runs, before Linux 5.12).
    pub lost_skipped: Option<u64>,
    /// Of those: gaps found in sockets' histories.
    pub gaps: u64,
    /// Events of sockets whose owner the tool could not name (`-E`).
    pub owners_unknown: Option<u64>,
    /// Events of no socket (resets sent for no socket, packets dropped
    /// before one was found), which have no owner to name (`-E`).
    pub no_socket: Option<u64>,
    /// Events the filter dropped in the kernel, when a filter is set.
    pub filtered: Option<u64>,
    /// Sockets not tracked because the kernel refused a socket map entry.
    pub sockets_untracked: u64,
    /// Sockets and listeners the kernel side's full maps evicted, their
    /// owners forgotten (None: not known).
    pub sockets_evicted: Option<u64>,
    pub listeners_evicted: Option<u64>,
    /// The running kernel names no reasons for the resets it sends (before
    /// Linux 6.10), so every `reset_reason` was null.
    pub no_reset_reasons: bool,
    /// What the tracer cost in all, with `--self-cost`.
    pub self_cost: Option<Cost>,
}

impl StopSummary {
    /// The line enetstat has always printed (without the trailing newline).
    pub fn text(&self) -> String {
        let mut s = String::from("enetstat: ");
        match (self.events_seen, self.owners_unknown) {
            (Some(seen), Some(unknown)) => {
                let _ = write!(
                    s,
                    "{seen} events seen, {} lost in the kernel, {unknown} owners unknown",
                    self.lost
                );
                if let Some(n) = self.no_socket.filter(|&n| n > 0) {
                    let _ = write!(
                        s,
                        " (besides {n} resets sent for no socket, which have none)"
                    );
                }
                if let Some(filtered) = self.filtered {
                    let _ = write!(s, ", {filtered} filtered out in the kernel");
                }
            }
            _ => {
                let _ = write!(
                    s,
                    "{} events filtered out in the kernel",
                    self.filtered.unwrap_or(0)
                );
            }
        }
        if let (Some(sockets), Some(listeners)) = (self.sockets_evicted, self.listeners_evicted)
            && sockets + listeners > 0
        {
            let _ = write!(
                s,
                ", {sockets} sockets and {listeners} listeners evicted from the kernel side's full maps, their owners forgotten (see --max-sockets)"
            );
        }
        if self.sockets_untracked > 0 {
            let _ = write!(
                s,
                ", {} sockets not tracked (socket map full)",
                self.sockets_untracked
            );
        }
        if self.no_reset_reasons {
            s.push_str("; this kernel gives no reset reasons (Linux 6.10 and later do)");
        }
        if self.lost > 0 && self.events_seen.is_some() {
            let _ = write!(
                s,
                "; lost: {} with the ring buffer full (try a larger --ring-size), {} skipped by the kernel, \
                 {} gaps in sockets' histories (see README, Known limits)",
                self.lost_ring_full,
                self.lost_skipped.map_or("?".to_string(), |n| n.to_string()),
                self.gaps
            );
        }
        s
    }

    /// One JSON object, fields in this order; absent figures are `null`.
    pub fn json(&self) -> String {
        let opt = |v: Option<u64>| v.map_or("null".to_string(), |n| n.to_string());
        format!(
            "{{\"stop\":\"{}\",\"events_seen\":{},\"state_changes\":{},\"lost\":{},\"lost_ring_full\":{},\"lost_skipped\":{},\"gaps\":{},\"owners_unknown\":{},\"no_socket\":{},\"filtered\":{},\"sockets_untracked\":{},\"sockets_evicted\":{},\"listeners_evicted\":{},\"reset_reasons\":{},\"self_cost\":{}}}",
            self.mode,
            opt(self.events_seen),
            opt(self.state_changes),
            self.lost,
            self.lost_ring_full,
            opt(self.lost_skipped),
            self.gaps,
            opt(self.owners_unknown),
            opt(self.no_socket),
            opt(self.filtered),
            self.sockets_untracked,
            opt(self.sockets_evicted),
            opt(self.listeners_evicted),
            !self.no_reset_reasons,
            self.self_cost
                .as_ref()
                .map_or("null".to_string(), |c| format!("{{{}}}", cost_fields(c)))
        )
    }

    /// The form `--json` asks for.
    pub fn render(&self, json: bool) -> String {
        if json { self.json() } else { self.text() }
    }
}

/// `"kernel_ns":…,"user_ns":…,"programs":[{"program":…,"id":…,"runs":…,"run_ns":…}]`
pub fn cost_fields(cost: &Cost) -> String {
    let mut s = format!(
        "\"kernel_ns\":{},\"user_ns\":{},\"programs\":[",
        cost.kernel_ns(),
        cost.user_ns
    );
    for (i, p) in cost.programs.iter().enumerate() {
        let comma = if i > 0 { "," } else { "" };
        let _ = write!(
            s,
            "{comma}{{\"program\":\"{}\",\"id\":{},\"runs\":{},\"run_ns\":{}}}",
            p.program, p.id, p.runs, p.run_ns
        );
    }
    s.push(']');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events() -> StopSummary {
        StopSummary {
            mode: "events",
            events_seen: Some(12),
            lost_skipped: Some(0),
            owners_unknown: Some(1),
            no_socket: Some(0),
            ..StopSummary::default()
        }
    }

    #[test]
    fn text_is_the_line_of_old() {
        assert_eq!(
            events().text(),
            "enetstat: 12 events seen, 0 lost in the kernel, 1 owners unknown"
        );
        let lossy = StopSummary {
            lost: 3,
            lost_ring_full: 1,
            lost_skipped: Some(1),
            gaps: 1,
            filtered: Some(5),
            no_socket: Some(4),
            ..events()
        };
        assert_eq!(
            lossy.text(),
            "enetstat: 12 events seen, 3 lost in the kernel, 1 owners unknown (besides 4 resets sent for no socket, which have none), 5 filtered out in the kernel; \
             lost: 1 with the ring buffer full (try a larger --ring-size), 1 skipped by the kernel, \
             1 gaps in sockets' histories (see README, Known limits)"
        );
        let summary = StopSummary {
            mode: "summary",
            filtered: Some(7),
            ..StopSummary::default()
        };
        assert_eq!(
            summary.text(),
            "enetstat: 7 events filtered out in the kernel"
        );
        let old_kernel = StopSummary {
            no_reset_reasons: true,
            ..summary
        };
        assert_eq!(
            old_kernel.text(),
            "enetstat: 7 events filtered out in the kernel; this kernel gives no reset reasons (Linux 6.10 and later do)"
        );
    }

    #[test]
    fn json_has_every_field() {
        assert_eq!(
            events().json(),
            r#"{"stop":"events","events_seen":12,"state_changes":null,"lost":0,"lost_ring_full":0,"lost_skipped":0,"gaps":0,"owners_unknown":1,"no_socket":0,"filtered":null,"sockets_untracked":0,"sockets_evicted":null,"listeners_evicted":null,"reset_reasons":true,"self_cost":null}"#
        );
        let without_skip_counts = StopSummary {
            lost_skipped: None,
            ..events()
        };
        assert!(
            without_skip_counts
                .json()
                .contains(r#""lost_skipped":null,"#)
        );
    }
}
