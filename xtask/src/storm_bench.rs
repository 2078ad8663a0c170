//! The connection-storm scenario: storms with and without a tracer
//! attached. The storm generator is the project's own `tcpload storm`; the
//! tracers are `enetstat -E` (text and JSON) and libbpf-tools `tcpstates`,
//! each writing to a file.

use std::{fmt::Write as _, process::Command, time::Duration};

use anyhow::{Context as _, Result};
use tests::{Tracer as Running, TracerOutput};

use crate::{
    bench_kit::{
        FILTERED_OUT, Netns, WORKERS, cpu_seconds, enetstat_stop_figure, median, mount_tracefs,
        spread, storm_command, storm_rate,
    },
    release_bin,
};

/// Attached/detached cycles per run in the reset-close storm's filtered-out
/// check (alternating.rs).
const CYCLES_PER_RUN: usize = 5;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Tracer {
    None,
    EnetstatText,
    EnetstatJson,
    /// `enetstat -E` with a filter that excludes the storm: the kernel
    /// programs run but send nothing.
    EnetstatFiltered,
    /// `enetstat --metrics`, scraped every second: counts only, no events.
    Metrics,
    /// `enetstat -S`: counts, per remote endpoint, and drops by reason on
    /// skb:kfree_skb (which runs for every packet freed as dropped).
    Summary,
    Tcpstates,
    /// bpftrace with empty programs on the classic form of the tracepoints
    /// enetstat uses: what a classic tracepoint costs before any program
    /// does work (enetstat's own programs sit on the BTF form).
    EmptyPrograms,
}

impl Tracer {
    fn label(self) -> &'static str {
        match self {
            Tracer::None => "nothing attached",
            Tracer::EnetstatText => "enetstat -E > file",
            Tracer::EnetstatJson => "enetstat -E --json > file",
            Tracer::EnetstatFiltered => "enetstat -E --port 9 > file (storm filtered out)",
            Tracer::Metrics => "enetstat --metrics, scraped every 1 s",
            Tracer::Summary => "enetstat -S > file (drops counted too)",
            Tracer::Tcpstates => "tcpstates > file",
            Tracer::EmptyPrograms => {
                "empty classic-tracepoint programs, same tracepoints (bpftrace)"
            }
        }
    }
}

/// The storm table's rows, in order.
const TRACERS: [Tracer; 8] = [
    Tracer::None,
    Tracer::EnetstatText,
    Tracer::EnetstatJson,
    Tracer::EnetstatFiltered,
    Tracer::Metrics,
    Tracer::Summary,
    Tracer::Tcpstates,
    Tracer::EmptyPrograms,
];

/// One storm's measurements.
struct Sample {
    rate: f64,
    written: u64,
    /// Of `written`, the state changes.
    state_events: u64,
    lost: u64,
    /// Events the kernel programs dropped for the user's filter.
    filtered: u64,
    cpu_us_per_event: f64,
    /// enetstat's closing line, when it lost events (it says where).
    loss_report: Option<String>,
}

/// The storm tables of bench/RESULTS.md: for normal and then reset close,
/// measure every tracer, aggregate each one's runs into a row, judge the
/// targets, and format the whole.
pub fn table(connections: u64, runs: usize) -> Result<String> {
    let mut rows = Vec::new();
    let mut verdicts = String::new();
    let mut losses = Vec::new();
    let mut in_turn = None;
    for rst in [false, true] {
        let measured = measure(connections, runs, rst, &mut losses)?;
        let aggregated = aggregate(connections, rst, measured);
        // Within 5%: for reset close, where separate storms cannot tell
        // (they vary by 6%), from the in-turn check within one storm.
        let check = if rst {
            let cycles = CYCLES_PER_RUN * runs;
            Some((
                cycles,
                crate::alternating::filtered_vs_nothing(true, cycles)?,
            ))
        } else {
            None
        };
        verdicts.push_str(&judge(rst, &aggregated, check.as_ref().map(|c| &c.1)));
        in_turn = check.or(in_turn);
        rows.push((rst, aggregated));
    }
    Ok(format(
        connections,
        runs,
        &rows,
        &verdicts,
        &losses,
        in_turn,
    ))
}

fn close_name(rst: bool) -> &'static str {
    if rst { "reset" } else { "normal" }
}

/// Every tracer's samples, in `TRACERS` order, for one way of closing.
/// Round after round of every tracer, so that the machine's drift (its
/// speed varies by a third over minutes) spreads over all rows. Loss
/// reports go to `losses`.
fn measure(
    connections: u64,
    runs: usize,
    rst: bool,
    losses: &mut Vec<String>,
) -> Result<Vec<Vec<Sample>>> {
    let close = close_name(rst);
    let mut all: Vec<Vec<Sample>> = TRACERS.iter().map(|_| Vec::new()).collect();
    for run in 0..runs {
        for (tracer, samples) in TRACERS.iter().zip(&mut all) {
            println!(
                "bench: {} close, {}, run {}/{}",
                close,
                tracer.label(),
                run + 1,
                runs
            );
            let sample = storm(*tracer, connections, rst)?;
            if let Some(report) = &sample.loss_report {
                losses.push(format!(
                    "- {} close, {}, run {}: `{report}`",
                    close,
                    tracer.label(),
                    run + 1
                ));
            }
            samples.push(sample);
        }
    }
    Ok(all)
}

/// One tracer's runs, aggregated.
struct Row {
    tracer: Tracer,
    rates: Vec<f64>,
    /// Median rate.
    rate: f64,
    /// The table's cells: events written, state events / expected, lost, CPU.
    written: String,
    state_events: String,
    lost: String,
    cpu: String,
    /// Median CPU µs per event.
    cpu_us_per_event: f64,
    /// The most state changes missing in any run (counted or not).
    worst_missing: u64,
}

fn aggregate(connections: u64, rst: bool, all: Vec<Vec<Sample>>) -> Vec<Row> {
    // Per connection: 5 client + 5 server transitions on a normal close,
    // 3 + 3 with a reset; plus the listener's two.
    let expected = connections * if rst { 6 } else { 10 } + 2;
    TRACERS
        .into_iter()
        .zip(all)
        .map(|(tracer, samples)| {
            let rates: Vec<f64> = samples.iter().map(|s| s.rate).collect();
            let med =
                |f: &dyn Fn(&Sample) -> f64| median(&samples.iter().map(f).collect::<Vec<_>>());
            let cell = |f: &dyn Fn(&Sample) -> f64, digits: usize| format!("{:.digits$}", med(f));
            let (written, lost, cpu) = match tracer {
                Tracer::None | Tracer::EmptyPrograms => ("-".into(), "-".into(), "-".into()),
                Tracer::Metrics | Tracer::Summary => {
                    ("-".into(), cell(&|s| s.lost as f64, 0), "-".into())
                }
                Tracer::EnetstatFiltered => (
                    format!(
                        "{} ({} filtered in the kernel)",
                        cell(&|s| s.written as f64, 0),
                        cell(&|s| s.filtered as f64, 0)
                    ),
                    cell(&|s| s.lost as f64, 0),
                    "-".into(),
                ),
                _ => (
                    cell(&|s| s.written as f64, 0),
                    cell(&|s| s.lost as f64, 0),
                    cell(&|s| s.cpu_us_per_event, 2),
                ),
            };
            let state_events = match tracer {
                Tracer::None | Tracer::EmptyPrograms | Tracer::Metrics | Tracer::Summary => {
                    "-".to_string()
                }
                Tracer::EnetstatFiltered => format!("{} / 0", cell(&|s| s.state_events as f64, 0)),
                _ => format!("{} / {expected}", cell(&|s| s.state_events as f64, 0)),
            };
            // Lost: counted by the tracer, or missing from its output; zero
            // lost means in every run, not in the median one.
            let worst_missing = samples
                .iter()
                .map(|s| s.lost.max(expected.saturating_sub(s.state_events)))
                .max()
                .unwrap_or(0);
            Row {
                tracer,
                rate: median(&rates),
                rates,
                written,
                state_events,
                lost,
                cpu,
                cpu_us_per_event: med(&|s| s.cpu_us_per_event),
                worst_missing,
            }
        })
        .collect()
}

/// The rate of `tracer`'s row.
fn rate_of(rows: &[Row], tracer: Tracer) -> f64 {
    rows.iter()
        .find(|r| r.tracer == tracer)
        .map_or(0.0, |r| r.rate)
}

/// The targets' verdicts for one way of closing (`in_turn`: the reset
/// storm's filtered-out check within one storm).
fn judge(rst: bool, rows: &[Row], in_turn: Option<&crate::alternating::Ratio>) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "**missed**" };
    let bare = rate_of(rows, Tracer::None);
    let filtered_rate = rate_of(rows, Tracer::EnetstatFiltered);
    let row = |tracer| rows.iter().find(|r| r.tracer == tracer);
    let (ours, theirs) = (row(Tracer::EnetstatText), row(Tracer::Tcpstates));
    let (ours, theirs) = match (ours, theirs) {
        (Some(o), Some(t)) => (o, t),
        _ => return String::new(),
    };
    let filtered = match in_turn {
        Some(r) => format!(
            "{:.3}x ± {:.3} in turn within one storm (target 0.95x: {}); {:.2}x between the separate storms above",
            r.mean,
            r.standard_error,
            verdict(r.mean >= 0.95),
            filtered_rate / bare
        ),
        None => format!(
            "{:.2}x (target 0.95x: {})",
            filtered_rate / bare,
            verdict(filtered_rate >= 0.95 * bare)
        ),
    };
    format!(
        "- {} close: zero lost {}; rate vs tcpstates {:.2}x (target 2.0x: {}); vs nothing attached {:.2}x (target 0.80x: {}); CPU per event vs tcpstates {:.2}x (target 0.5x: {}); with the storm filtered out, vs nothing attached {}\n",
        close_name(rst),
        verdict(ours.worst_missing == 0),
        ours.rate / theirs.rate,
        verdict(ours.rate >= 2.0 * theirs.rate),
        ours.rate / bare,
        verdict(ours.rate >= 0.8 * bare),
        ours.cpu_us_per_event / theirs.cpu_us_per_event,
        verdict(ours.cpu_us_per_event <= 0.5 * theirs.cpu_us_per_event),
        filtered,
    )
}

/// The markdown of the storm section.
fn format(
    connections: u64,
    runs: usize,
    rows: &[(bool, Vec<Row>)],
    verdicts: &str,
    losses: &[String],
    in_turn: Option<(usize, crate::alternating::Ratio)>,
) -> String {
    let mut table = String::new();
    let _ = writeln!(
        table,
        "## Connection storm: {connections} connections, {WORKERS} client + {WORKERS} server threads, loopback in a fresh namespace\n\n{runs} runs per row; median (min-max).\n",
    );
    let _ = writeln!(
        table,
        "| close | tracer | conn/s | vs nothing | events written | state events written / expected | lost | tracer CPU µs/event |"
    );
    let _ = writeln!(table, "|---|---|---|---|---|---|---|---|");
    for (rst, rows) in rows {
        let bare = rate_of(rows, Tracer::None);
        for r in rows {
            let _ = writeln!(
                table,
                "| {} | {} | {} | {:.2}x | {} | {} | {} | {} |",
                close_name(*rst),
                r.tracer.label(),
                spread(&r.rates, 1.0),
                r.rate / bare,
                r.written,
                r.state_events,
                r.lost,
                r.cpu
            );
        }
    }
    let _ = writeln!(
        table,
        "\n\"events written\" counts every line (state changes, retransmits, resets); the next column the state changes among them. \"zero lost\" below needs, in every run, both a zero loss count and every expected state change in the output.\n\nTargets (enetstat -E > file):\n{verdicts}"
    );
    if !losses.is_empty() {
        let _ = writeln!(
            table,
            "Runs in which enetstat lost events:\n{}\n",
            losses.join("\n")
        );
    }
    table.push_str(
        "\n### Filtered out, in turn within one storm\n\nOne long reset storm; `enetstat -E --port 9` attached and detached in turn, each phase measured from 1 s after the change (the namespace's `ActiveOpens`); attached over the detached phase after it, mean ± standard error.\n\n| close | phases | attached conn/s | detached conn/s | attached / detached |\n|---|---|---|---|---|\n",
    );
    if let Some((cycles, r)) = in_turn {
        let _ = writeln!(
            table,
            "| reset | {cycles} × {} s each | {:.0} | {:.0} | {:.3}x ± {:.3} ({} pairs) |",
            crate::alternating::PHASE.as_secs(),
            r.attached_rate,
            r.detached_rate,
            r.mean,
            r.standard_error,
            r.pairs
        );
    }
    table
}

fn storm(tracer: Tracer, connections: u64, rst: bool) -> Result<Sample> {
    let ns = Netns::new("bench");
    let mut traced = start(tracer, &ns)?;
    let cpu_at_start = traced.as_ref().map_or(0.0, |t| cpu_seconds(t.pid()));
    let mut scraper = match tracer {
        Tracer::Metrics => Some(
            ns.command("sh")
                .args(["-c", &format!("while :; do curl -s -o /dev/null http://{METRICS_ADDR}/metrics; sleep 1; done")])
                .spawn()
                .context("starting the scraper (curl)")?,
        ),
        _ => None,
    };

    let rate = storm_rate(
        &storm_command(&ns, connections, rst)
            .output()
            .context("running tcpload storm")?,
    )?;
    if let Some(scraper) = &mut scraper {
        let _ = scraper.kill();
        let _ = scraper.wait();
    }

    let Some(tracer_run) = traced.take() else {
        return Ok(Sample {
            rate,
            written: 0,
            state_events: 0,
            lost: 0,
            filtered: 0,
            cpu_us_per_event: 0.0,
            loss_report: None,
        });
    };
    // -S writes a block every second: its output never goes quiet.
    if tracer != Tracer::Summary {
        tracer_run.wait_quiet();
    }
    let cpu = cpu_seconds(tracer_run.pid()) - cpu_at_start;
    let output = tracer_run.stop();
    let (written, state_events, lost, filtered) = counts(tracer, &output)?;
    Ok(Sample {
        rate,
        written,
        state_events,
        lost,
        filtered,
        cpu_us_per_event: cpu * 1e6 / written.max(1) as f64,
        loss_report: (lost > 0 && tracer != Tracer::Tcpstates)
            .then(|| output.stderr.last().cloned())
            .flatten(),
    })
}

/// `tracer` started and attached in `ns`, writing to a file; None for the
/// row with nothing attached.
fn start(tracer: Tracer, ns: &Netns) -> Result<Option<Running>> {
    Ok(match tracer {
        Tracer::None => None,
        Tracer::EnetstatText
        | Tracer::EnetstatJson
        | Tracer::EnetstatFiltered
        | Tracer::Metrics
        | Tracer::Summary => Some(Running::start_program(
            ns,
            &release_bin("enetstat"),
            enetstat_args(tracer),
        )),
        // tcpstates traces every namespace (the storm is the only traffic)
        // and needs the host's tracefs, which `ip netns exec` would hide.
        Tracer::Tcpstates => {
            mount_tracefs()?;
            Some(Running::start_other(
                Command::new("tcpstates"),
                "tcpstates",
                SETTLE,
            ))
        }
        Tracer::EmptyPrograms => {
            mount_tracefs()?;
            let mut cmd = Command::new("bpftrace");
            cmd.arg("-e").arg(EMPTY_PROGRAMS);
            Some(Running::start_other(cmd, "bpftrace", SETTLE))
        }
    })
}

/// Time given a tracer that does not say when it is attached.
const SETTLE: Duration = Duration::from_secs(2);

/// (lines written, state changes among them, lost, filtered) as `tracer`
/// reported them.
fn counts(tracer: Tracer, output: &TracerOutput) -> Result<(u64, u64, u64, u64)> {
    let stderr = &output.stderr;
    let (written, state_events) = match tracer {
        // tcpstates prints one line per state change after its header.
        Tracer::Tcpstates => {
            let lines = output.stdout.lines().count() as u64;
            (lines.saturating_sub(1), lines.saturating_sub(1))
        }
        // enetstat's own count, from its stop object.
        Tracer::EnetstatText | Tracer::EnetstatJson | Tracer::EnetstatFiltered => (
            enetstat_stop_figure(stderr, "events_seen")?,
            enetstat_stop_figure(stderr, "state_changes")?,
        ),
        Tracer::None | Tracer::EmptyPrograms | Tracer::Metrics | Tracer::Summary => (0, 0),
    };
    let lost = match tracer {
        // "lost N events on CPU #k", once per loss report.
        Tracer::Tcpstates => stderr
            .iter()
            .filter_map(|l| l.strip_prefix("lost "))
            .filter_map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
            .sum(),
        Tracer::EmptyPrograms => 0,
        _ => enetstat_stop_figure(stderr, "lost")?,
    };
    let filtered = match tracer {
        Tracer::EnetstatFiltered => enetstat_stop_figure(stderr, "filtered")?,
        _ => 0,
    };
    Ok((written, state_events, lost, filtered))
}

/// The flags of the enetstat rows (each ends stderr with the stop object).
fn enetstat_args(tracer: Tracer) -> &'static [&'static str] {
    match tracer {
        Tracer::EnetstatText => &["-E", "-n", "--stop-json"],
        Tracer::EnetstatJson => &["-E", "-n", "--json"],
        Tracer::EnetstatFiltered => &FILTERED_OUT,
        Tracer::Metrics => &["--metrics", METRICS_ADDR, "--stop-json"],
        Tracer::Summary => &["-S", "1", "--stop-json"],
        Tracer::None | Tracer::Tcpstates | Tracer::EmptyPrograms => &[],
    }
}

/// Where the metrics row's endpoint listens, in the storm's namespace.
const METRICS_ADDR: &str = "127.0.0.1:9977";

/// One empty program on the classic form of each tracepoint enetstat uses.
const EMPTY_PROGRAMS: &str = "tracepoint:sock:inet_sock_set_state {} \
    tracepoint:tcp:tcp_retransmit_skb {} tracepoint:tcp:tcp_retransmit_synack {} \
    tracepoint:tcp:tcp_send_reset {} tracepoint:tcp:tcp_receive_reset {} \
    tracepoint:tcp:tcp_destroy_sock {}";
