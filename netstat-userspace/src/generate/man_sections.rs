//! The man page's sections written for people, in roff, after the options
//! clap_mangen generates: the modes, exit status, the JSON records, the
//! metric names, files and examples. A unit test checks that every JSON
//! field and metric enetstat writes is named here.

pub const SECTIONS: &str = r#".SH MODES
.TP
\fBenetstat\fR [\fB\-tuwxlanpeoW46\fR] [\fB\-A\fR \fIFAMILIES\fR] [\fIfilters\fR]
The netstat listing of sockets, from /proc and sock_diag, as net\-tools netstat 2.10 prints it.
.TP
\fBenetstat \-r\fR | \fB\-i\fR | \fB\-s\fR | \fB\-g\fR | \fB\-M\fR
Routes, interfaces, statistics, multicast groups, masqueraded connections.
.TP
\fBenetstat \-c\fR [\fB\-tanp\fR] [\fB\-\-diff\fR] [\fB\-\-interval\fR \fIMS\fR]
The live view: as root, TCP rows follow kernel events; \fB\-\-diff\fR prints only rows that appeared, changed state or vanished.
.TP
\fBenetstat \-E\fR [\fB\-n\fR] [\fB\-\-json\fR] [\fB\-\-count\fR \fIN\fR] [\fB\-\-duration\fR \fIS\fR]
The event log: every TCP state change, retransmit and reset, with its owner and time in the previous state.
.TP
\fBenetstat \-S\fR [\fISECONDS\fR] [\fB\-\-json\fR] [\fB\-\-count\fR \fIN\fR]
Storm counts per interval, counted in the kernel.
.TP
\fBenetstat \-\-metrics\fR [\fIADDR\fR]
A Prometheus endpoint, alone or beside \fB\-E\fR, \fB\-S\fR or \fB\-c\fR.
.PP
Only one of \fB\-E\fR, \fB\-S\fR and \fB\-c\fR at a time; a flag that has no meaning in the mode asked for is refused.
.SH EXIT STATUS
.TP
\fB0\fR
Done, stopped (SIGINT, SIGTERM, \fB\-\-count\fR, \fB\-\-duration\fR) or the reader of standard output went away.
.TP
\fB1\fR
A failure while running: output could not be written, a /proc file could not be parsed, a protocol asked for by name is missing.
.TP
\fB2\fR
Bad flags, values or combinations; missing privileges; a kernel without BTF or a facility the programs need. One line on standard error names the cause and the fix.
.SH EVENT LOG JSON
With \fB\-E \-\-json\fR, one object per line, every field present, null where it does not apply:
\fBtime\fR (RFC 3339, UTC),
\fBevent\fR (state, retransmit, retransmit_synack, send_reset, receive_reset, drop),
\fBpid\fR, \fBprogram\fR, \fBcgroup\fR (the owner's cgroup v2 path), \fBproto\fR, \fBlocal\fR, \fBremote\fR,
\fBold_state\fR, \fBnew_state\fR, \fBstate\fR,
\fBprev_state_ms\fR, \fBprev_state_ms_at_least\fR,
\fBafter_gap\fR, \fBpeer_fin_pending\fR (FIN_WAIT2 \-> FIN_WAIT2: an orphan handed to a timewait socket before the peer's FIN),
\fBinbound\fR (the peer connected: the socket was accepted, or the event is a listener's),
\fBretransmits\fR, \fBnetns\fR, \fBsocket\fR,
\fBfailure\fR (refused, timeout, reset, aborted, unreachable, no_port), \fBreset_reason\fR, \fBdrop_reason\fR,
\fBlifetime_ms\fR, \fBbytes_acked\fR, \fBbytes_received\fR, \fBsrtt_ms\fR, \fBtotal_retransmits\fR.
.PP
Where events were lost (the ring buffer was full), a record
{"time":...,"event":"lost","\fBlost\fR":N} stands at that point.
.PP
A JSON log is self\-contained: its first record is {"time":...,"event":"log","\fBformat\fR":1,"\fBversion\fR":...}, then a snapshot record per TCP socket present (the fields above, \fBtime_wait_left_ms\fR for a timewait socket), ended by {"time":...,"event":"snapshot_end","\fBrows\fR":N}; after a loss, resync records and resync_end; a rotated file ends with a rotated record. \fB\-\-replay\fR FILE \fB\-\-at\fR TIME prints the TCP listing of that moment from such a log; with \fB\-c\fR it plays the log as the live view, with \fB\-S\fR it prints the summaries its events determine.
On stop, \fB\-E\fR, \fB\-S\fR and \fB\-\-metrics\fR write one line to standard error, a JSON object with \fB\-\-json\fR or \fB\-\-stop\-json\fR (fields in the README).
.SH METRICS
\fBenetstat_connections_opened_total\fR{direction},
\fBenetstat_connections_closed_total\fR,
\fBenetstat_cgroup_connections_opened_total\fR{cgroup} (the 20 cgroups that began most, and other),
\fBenetstat_close_wait_sockets\fR{program} (10 s or more in CLOSE_WAIT; the top 10 and other),
\fBenetstat_ephemeral_ports_in_use\fR{remote} (the top 10 and other),
\fBenetstat_tcp_transitions_total\fR{old,new},
\fBenetstat_connect_failures_total\fR{reason},
\fBenetstat_retransmits_total\fR{kind="data"|"syn"|"synack"},
\fBenetstat_resets_total\fR{direction,reason},
\fBenetstat_time_wait_sockets\fR,
\fBenetstat_listen_overflows_total\fR,
\fBenetstat_listen_drops_total\fR,
\fBenetstat_listener_queue_drops_total\fR{listener},
\fBenetstat_connect_duration_seconds\fR,
\fBenetstat_connection_lifetime_seconds\fR (histograms),
\fBenetstat_events_lost_total\fR{cause};
with \fB\-\-self\-cost\fR, \fBenetstat_bpf_program_runs_total\fR{program} and \fBenetstat_bpf_program_run_seconds_total\fR{program}.
With \fB\-\-netns all\fR, every per\-namespace metric has a \fBnetns\fR label.
.SH FILES
.TP
\fI/etc/default/enetstat\fR
ENETSTAT_METRICS_ARGS for \fBenetstat\-metrics.service\fR (default: \-\-metrics 127.0.0.1:9977).
.TP
\fI/usr/share/doc/enetstat/README.md\fR
The user's guide: every mode with an example, the JSON schema, filters, supported kernels and known limits.
.SH EXAMPLES
.TP
\fBenetstat \-tanp\fR
TCP sockets, numeric, with their owners.
.TP
\fBenetstat \-E \-n \-\-port 443\fR
Every state change of connections to or from port 443.
.TP
\fBenetstat \-S 1 \-\-json | jq .top_remotes\fR
Who fails or resets, per second.
.TP
\fBenetstat \-c \-tan \-\-diff\fR
Only what changes, as it changes.
.SH SEE ALSO
\fBnetstat\fR(8), \fBss\fR(8), \fBbpftool\fR(8)
"#;
