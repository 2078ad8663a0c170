//! Each way `enetstat -E` can be refused prints one line naming the cause
//! and the fix, and exits 2. Kernel features are hidden from the tool inside
//! a private mount namespace (`unshare -m`), so the host is never touched.

use std::process::{Command, Output};

use tests::enetstat_bin;

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

/// Runs `script` with `$ENETSTAT` set, in a private mount namespace.
fn in_private_mounts(script: &str) -> Output {
    Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", script])
        .env("ENETSTAT", enetstat_bin())
        .output()
        .expect("unshare")
}

/// Asserts exit code 2 and a single stderr line containing `needle`.
fn assert_refused(out: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "want one line, got: {stderr}");
    assert!(lines[0].starts_with("enetstat: "), "{stderr}");
    assert!(lines[0].contains(needle), "want {needle:?} in: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("backtrace"));
}

#[test]
fn without_privileges() {
    let bin = enetstat_bin();
    let out = run(
        "setpriv",
        &[
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            bin.to_str().unwrap(),
            "-E",
        ],
    );
    assert_refused(&out, "needs CAP_BPF and CAP_PERFMON: run enetstat as root");
}

#[test]
fn bad_flag() {
    let out = run(enetstat_bin().to_str().unwrap(), &["--no-such-flag"]);
    assert_refused(&out, "unexpected argument '--no-such-flag'");
}

#[test]
fn unknown_port() {
    let out = run(
        enetstat_bin().to_str().unwrap(),
        &["-E", "--port", "no-such-service"],
    );
    assert_refused(&out, "unknown port 'no-such-service'");
    let out = run(enetstat_bin().to_str().unwrap(), &["-E", "--port", "70000"]);
    assert_refused(&out, "invalid port '70000'");
}

/// Durations that are no number of seconds a run could last: one line,
/// exit 2, no panic, before anything is loaded.
#[test]
fn bad_durations() {
    let bin = enetstat_bin();
    for args in [
        &["-S", "1", "--duration", "1e30"][..],
        &["-c", "-tn", "--duration", "nan"],
        &["-E", "--duration", "inf"],
        &["-E", "--duration", "0"],
        &["-E", "--duration=-2"],
    ] {
        let out = run(bin.to_str().unwrap(), args);
        assert_refused(&out, "invalid --duration");
    }
    for interval in ["1e30", "nan", "0.01", "-1"] {
        let out = run(bin.to_str().unwrap(), &["-S", interval]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        // A negative number is taken for a flag by the parser.
        let want = match interval {
            "-1" => "unexpected argument",
            _ => "invalid --summary interval",
        };
        assert!(stderr.contains(want), "{interval}: {stderr}");
        assert_refused(&out, "");
    }
}

#[test]
fn bad_ring_size() {
    let out = run(
        enetstat_bin().to_str().unwrap(),
        &["-E", "--ring-size", "5000"],
    );
    assert_refused(&out, "invalid --ring-size 5000");
    // The live view refuses it alike, rather than falling back to polling.
    let live = run(
        enetstat_bin().to_str().unwrap(),
        &["-c", "-tn", "--ring-size", "5000"],
    );
    assert_refused(&live, "invalid --ring-size 5000");
    assert_eq!(live.stderr, out.stderr);
}

/// The programs sit on BTF tracepoints (tp_btf), which need no tracefs: a
/// fresh machine has it unmounted, and the tool must neither fail nor mount
/// it.
#[test]
fn runs_without_tracefs() {
    let out = in_private_mounts(
        "umount /sys/kernel/tracing 2>/dev/null; \
         test -d /sys/kernel/tracing/events && exit 3; \
         $ENETSTAT -E --duration 0.2 >/dev/null || exit $?; \
         test ! -d /sys/kernel/tracing/events",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}: {stderr}", out.status);
    assert!(stderr.contains("events seen"), "{stderr}");
}

/// A kernel without the tracepoint has no `btf_trace_inet_sock_set_state`
/// in its BTF: shown here by a copy of this kernel's BTF with that name
/// misspelt (same length, so the file stays valid), mounted over the real
/// one.
#[test]
fn missing_tracepoint() {
    let out = in_private_mounts(
        "dir=$(mktemp -d) && mount -t tmpfs btf \"$dir\" || exit 3; \
         sed 's/btf_trace_inet_sock_set_state/btf_trace_inet_sock_set_stat_/' \
             /sys/kernel/btf/vmlinux > \"$dir/vmlinux\" || exit 3; \
         mount --bind \"$dir/vmlinux\" /sys/kernel/btf/vmlinux || exit 3; \
         exec $ENETSTAT -E --duration 5",
    );
    assert_refused(
        &out,
        "this kernel has no tracepoint sock/inet_sock_set_state",
    );
}

#[test]
fn missing_btf() {
    let out = in_private_mounts("mount -t tmpfs hide /sys/kernel/btf || exit 3; exec $ENETSTAT -E");
    assert_refused(&out, "CONFIG_DEBUG_INFO_BTF=y");
}

/// `enetstat -E` on this kernel's BTF with each `(name, same-length
/// misspelling)` applied, mounted over the real BTF in a private mount
/// namespace.
fn with_btf_renamed(renames: &[(&str, &str)], args: &str) -> Output {
    let seds: Vec<String> = renames
        .iter()
        .map(|(from, to)| {
            assert_eq!(from.len(), to.len(), "a rename must keep the BTF's layout");
            format!("-e 's/{from}/{to}/g'")
        })
        .collect();
    in_private_mounts(&format!(
        "dir=$(mktemp -d) && mount -t tmpfs btf \"$dir\" || exit 3; \
         sed {} /sys/kernel/btf/vmlinux > \"$dir/vmlinux\" || exit 3; \
         mount --bind \"$dir/vmlinux\" /sys/kernel/btf/vmlinux || exit 3; \
         exec $ENETSTAT {args}",
        seds.join(" ")
    ))
}

/// A kernel older than one of the BPF facilities enetstat needs lacks its
/// name in BTF: each is refused in one line naming it.
#[test]
fn missing_kernel_facilities() {
    for (name, misspelt, what) in [
        (
            "BPF_TRACE_RAW_TP",
            "BPF_TRACE_RAW_T_",
            "BTF tracepoints (tp_btf) (Linux 5.5",
        ),
        (
            "BPF_MAP_TYPE_RINGBUF",
            "BPF_MAP_TYPE_RINGBU_",
            "the BPF ring buffer (Linux 5.8",
        ),
        (
            "BPF_FUNC_skc_to_tcp_sock",
            "BPF_FUNC_skc_to_tcp_soc_",
            "bpf_skc_to_tcp_sock helper (Linux 5.9",
        ),
    ] {
        let out = with_btf_renamed(&[(name, misspelt)], "-E --duration 5");
        assert_refused(&out, what);
        assert_refused(&out, "enetstat needs Linux 5.10 or later");
    }
}

/// The note of a kernel that does not count the program runs it skipped.
const SKIPS_UNCOUNTED: &str = "enetstat: note: this kernel lacks counts of skipped BPF program runs (bpf_prog_info.recursion_misses) (Linux 5.12 and later): lost_skipped is unknown (null)";

/// A kernel before 5.12 does not count skipped runs, which only feed a
/// loss count: enetstat runs, says so once, and reports that count as
/// unknown, never as 0.
#[test]
fn without_skipped_run_counts_it_runs_and_says_so() {
    let out = with_btf_renamed(
        &[("recursion_misses", "recursion_misse_")],
        "-E --json --duration 0.5",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}: {stderr}", out.status);
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with(SKIPS_UNCOUNTED))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    let stop: serde_json::Value =
        serde_json::from_str(stderr.lines().last().unwrap_or_default()).expect("a stop object");
    assert_eq!(stop["lost_skipped"], serde_json::Value::Null, "{stop}");
    assert_eq!(stop["lost"], 0, "{stop}");
}

/// Before Linux 6.10 tcp_send_reset misses resets sent for no socket, and
/// fentry programs make up for it. A kernel that has neither is shown by
/// hiding both names: enetstat still runs, and says once what it cannot
/// report.
#[test]
fn resets_for_no_socket_unreportable() {
    let out = with_btf_renamed(
        &[
            (
                "trace_event_raw_tcp_send_reset",
                "trace_event_raw_tcp_send_rese_",
            ),
            ("tcp_v4_send_reset", "tcp_v4_send_rese_"),
        ],
        "-E --duration 0.5",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "status {:?}: {stderr}", out.status);
    // The one note of a kernel that counts skipped runs; the other kind says
    // that too (`without_skipped_run_counts_it_runs_and_says_so`).
    let notes: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("note:") && !l.starts_with(SKIPS_UNCOUNTED))
        .collect();
    assert_eq!(notes.len(), 1, "{stderr}");
    assert!(
        notes[0].starts_with(
            "enetstat: note: this kernel's tcp_send_reset tracepoint misses resets sent for no socket"
        ) && notes[0].ends_with("those resets are not reported"),
        "{stderr}"
    );
    assert!(stderr.contains("events seen"), "{stderr}");
}

/// A write that fails (here a full disk) ends `-E` and `-S` with exit 1:
/// the stop summary first, then one line naming what failed.
#[test]
fn a_full_disk_is_named_after_the_stop_summary() {
    for (args, failed, stop) in [
        (
            &["-E", "--duration", "2"][..],
            "enetstat: writing the event log: No space left on device",
            "events seen",
        ),
        (
            &["-S", "0.2", "--duration", "2"][..],
            "enetstat: writing the summary: No space left on device",
            "filtered out in the kernel",
        ),
    ] {
        let full = std::fs::File::create("/dev/full").expect("/dev/full");
        let out = Command::new(enetstat_bin())
            .args(args)
            .stdout(full)
            .output()
            .expect("enetstat");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        let last = lines.last().copied().unwrap_or_default();
        assert!(last.starts_with(failed), "{args:?}: {stderr}");
        assert!(lines[lines.len() - 2].contains(stop), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// `enetstat -E | head`: once the reader has gone, the next event ends the
/// log quietly, exit 0, as head users expect.
#[test]
fn a_closed_pipe_ends_the_log_quietly() {
    let ns = tests::Netns::new("pipe");
    let script = format!(
        "'{}' -E -n --duration 60 | head -c 10 > /dev/null; echo \"exit ${{PIPESTATUS[0]}}\" >&2",
        enetstat_bin().display()
    );
    let mut cmd = ns.command("bash");
    cmd.args(["-c", &script])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let log = cmd.spawn().expect("bash");
    // Events after head has read its 10 bytes of the header and gone.
    std::thread::sleep(tests::slowed(std::time::Duration::from_secs(3)));
    for _ in 0..5 {
        let mut refused = tests::connect(&ns, "127.0.0.1:9", &[]);
        refused.expect("failed");
    }
    let out = log.wait_with_output().expect("bash");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.last(), Some(&"exit 0"), "{stderr}");
    assert!(
        lines.iter().all(|l| l.starts_with("enetstat: tracing")
            || l.starts_with("enetstat: note: ")
            || *l == "exit 0"),
        "{stderr}"
    );
}

/// The log's flags: each misuse refused in one line (exit 2); a log that
/// cannot be read is one line naming it (exit 1).
#[test]
fn log_and_replay_misuse() {
    let bin = enetstat_bin();
    let bin = bin.to_str().unwrap();
    let cases: [(&[&str], &str); 7] = [
        (&["--at", "03:00:00"], "--at picks the moment of a --replay"),
        (&["--replay", "x", "--at", "noon"], "invalid --at noon"),
        (&["--replay", "x", "-E"], "-E of a log is not supported"),
        (
            &["--replay", "x", "-u"],
            "a log holds TCP only: leave out -u",
        ),
        (
            &["--replay", "x", "-S", "--at", "03:00:00"],
            "leave out --at",
        ),
        (
            &["-E", "--output", "/tmp/x", "--rotate-size", "1"],
            "invalid --rotate-size 1",
        ),
        (
            &["-tan", "--output", "/tmp/x"],
            "--output writes the event log",
        ),
    ];
    for (args, needle) in cases {
        assert_refused(&run(bin, args), needle);
    }
    let missing = run(bin, &["--replay", "/nonexistent/log", "-tan"]);
    assert_eq!(missing.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&missing.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("enetstat: cannot read log /nonexistent/log"),
        "{stderr}"
    );
}
