//! The command line made into one typed, checked `Command` at the edge:
//! every value is validated here (one line, exit 2), and no mode sees the
//! raw flags.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use anyhow::Result;
use netstat_common::Filter;

use crate::{
    cgroups,
    cli::{Cli, METRICS_ADDR},
    combinations, fail,
    filter::{self, RowFilter},
    names::Numeric,
    netns::Selection,
    plan::{Plan, SocketPlan},
};

/// What enetstat was asked to do.
pub enum Command {
    /// The netstat listing (once, or re-read every second with `-c`).
    Listing(Listing),
    /// `-E`: the event log.
    Events(Events),
    /// `-S`: counts per interval.
    Summary(Summary),
    /// `-c` with TCP, on the kernel's events.
    Live(Live),
    /// `--metrics` alone.
    Metrics(Tracing),
    /// `--replay`: the TCP listing from a log.
    Replay(Replay),
}

/// `--replay FILE [--at TIME]` with the listing's flags.
pub struct Replay {
    /// A path, or `-` for standard input.
    pub file: String,
    pub at: At,
    /// TCP only (`combinations` refused the rest).
    pub plan: SocketPlan,
    pub filter: RowFilter,
    pub numeric: Numeric,
    /// `-S`: the log's intervals instead of a listing.
    pub summary: Option<ReplaySummary>,
    /// `-c`: the live view played from the log, from `at` on.
    pub live: Option<ReplayLive>,
}

/// `--replay FILE -c [--diff] [--interval MS] [--speed X]`.
pub struct ReplayLive {
    /// Of the log's time, between drawings.
    pub interval: Duration,
    pub diff: bool,
    /// Log seconds per real second; None: as fast as the log reads.
    pub speed: Option<f64>,
}

/// `--replay FILE -S [SECONDS]`.
pub struct ReplaySummary {
    /// Of the log's time.
    pub every: Duration,
    pub json: bool,
    pub close_wait_age: Duration,
}

/// The moment `--replay` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum At {
    /// The log's last record.
    End,
    /// Nanoseconds since the epoch.
    Exact(i128),
    /// `HH:MM:SS[.frac]`, local time on the log's first day (known once
    /// the log is opened).
    TimeOfDay(String),
}

/// Where `-E` writes: standard output, or a file it may rotate.
pub struct LogOutput {
    pub path: PathBuf,
    pub rotate: Option<Rotate>,
}

/// `--rotate-size` and `--rotate-keep`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotate {
    pub size: u64,
    pub keep: u32,
}

/// The netstat listing.
pub struct Listing {
    pub plan: Plan,
    pub filter: RowFilter,
    pub namespaces: Selection,
    pub numeric: Numeric,
    /// `-c`: re-list every second, until stopped or `stop_after`.
    pub continuous: bool,
    pub stop_after: Option<Duration>,
}

/// What every mode that loads the kernel programs shares.
#[derive(Debug, Clone)]
pub struct Tracing {
    pub namespaces: Selection,
    pub filter: Filter,
    pub stop_after: Option<Duration>,
    /// `--ring-size` (a power of two, at least a page).
    pub ring_bytes: Option<u32>,
    pub max_sockets: u32,
    pub self_cost: bool,
    /// `-E --drops`.
    pub drops: bool,
    /// `--metrics`: the addresses to try, in order (`:PORT`: IPv6 then IPv4).
    pub metrics: Option<Vec<SocketAddr>>,
    /// `--web-config`: the endpoint's TLS and users (read at start).
    pub web_config: Option<PathBuf>,
    /// `--json` or `--stop-json`: the ready record and the stop object as
    /// JSON.
    pub json_records: bool,
    /// `--cgroup`: the path asked for and its directory here.
    pub cgroup: Option<(String, PathBuf)>,
}

pub struct Events {
    pub tracing: Tracing,
    /// `--output`: None for standard output.
    pub output: Option<LogOutput>,
    pub json: bool,
    pub numeric: Numeric,
    pub count: Option<u64>,
}

pub struct Summary {
    pub tracing: Tracing,
    pub every: Duration,
    pub json: bool,
    pub count: Option<u64>,
    /// Longer in CLOSE_WAIT than this: a leak (`--close-wait-age`).
    pub close_wait_age: Duration,
}

pub struct Live {
    pub tracing: Tracing,
    pub sockets: SocketPlan,
    pub interval: Duration,
    pub diff: bool,
    /// What `-c` does where the kernel programs cannot run: re-read /proc.
    pub fallback: Listing,
}

/// `--max-sockets` bounds: the listener map is an eighth of the socket
/// map, and each socket entry costs about 120 bytes of locked kernel memory.
const MIN_SOCKETS: u32 = 512;
const MAX_SOCKETS: u32 = 1 << 24;
/// `--interval` at most a day: longer is a typo, not a plan.
const MAX_INTERVAL_MS: u64 = 86_400_000;
/// The kernel's largest pid (PID_MAX_LIMIT on 64-bit).
const MAX_PID: u32 = 1 << 22;

impl Command {
    /// The command `cli` asks for, every value checked, before anything is
    /// read or loaded.
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        combinations::check(cli)?;
        let plan = Plan::from_cli(cli)?;
        let tracing = Tracing::from_cli(cli)?;
        let namespaces = tracing.namespaces;
        let mut numeric = cli.numeric();
        if matches!(plan, Plan::Routes(_)) {
            // netstat passes -N into the route printer's "numeric" bits.
            numeric.hosts |= cli.symbolic;
        }
        if let Some(file) = &cli.replay {
            return Replay::new(cli, file, plan, &tracing, numeric).map(Command::Replay);
        }
        if cli.events {
            return Ok(Command::Events(Events {
                output: cli
                    .output
                    .as_ref()
                    .map(|path| log_output(cli, path))
                    .transpose()?,
                tracing,
                json: cli.json,
                numeric,
                count: cli.count,
            }));
        }
        if let Some(seconds) = cli.summary {
            return Ok(Command::Summary(Summary {
                tracing,
                every: fail::seconds("--summary interval", seconds, 0.1)?,
                json: cli.json,
                count: cli.count,
                close_wait_age: close_wait_age(cli)?,
            }));
        }
        let live_tcp = match &plan {
            Plan::Sockets(sockets) if cli.continuous && sockets.tcp => Some(sockets.clone()),
            _ => None,
        };
        if cli.metrics.is_some() && live_tcp.is_none() {
            if cli.continuous {
                return Err(fail::usage(
                    "--metrics beside -c needs the TCP live view: add -t, or leave -c out",
                ));
            }
            return Ok(Command::Metrics(tracing));
        }
        let listing = Listing {
            plan,
            filter: RowFilter::new(tracing.filter, cli.cgroup.clone()),
            namespaces,
            numeric,
            continuous: cli.continuous,
            stop_after: tracing.stop_after,
        };
        let Some(sockets) = live_tcp else {
            return Ok(Command::Listing(listing));
        };
        Live::from_cli(cli, tracing, sockets, listing).map(Command::Live)
    }
}

impl Tracing {
    /// What every event-driven mode shares, checked.
    fn from_cli(cli: &Cli) -> Result<Self> {
        if cli.drops && !cli.events {
            return Err(fail::usage("--drops goes with -E (the event log)"));
        }
        if cli.web_config.is_some() && cli.metrics.is_none() {
            return Err(fail::usage(
                "--web-config protects the metrics endpoint: use it with --metrics",
            ));
        }
        let event_mode =
            cli.events || cli.summary.is_some() || cli.metrics.is_some() || cli.continuous;
        if cli.self_cost && !event_mode {
            return Err(fail::usage(
                "--self-cost measures the kernel programs: use it with -E, -S, -c or --metrics",
            ));
        }
        if cli.pid.is_some_and(|pid| pid > MAX_PID) {
            return Err(fail::usage(format!(
                "invalid --pid {}: process ids go up to {MAX_PID}",
                cli.pid.unwrap_or_default()
            )));
        }
        // The kernel programs need the cgroups' ids; a listing compares
        // each owner's /proc/PID/cgroup line with the path.
        let cgroup = match &cli.cgroup {
            Some(path) if event_mode => {
                Some((path.clone(), cgroups::find(path).map_err(fail::usage)?))
            }
            Some(path) if !path.starts_with('/') => {
                return Err(fail::usage(format!(
                    "--cgroup {path}: paths start at the cgroup v2 root, as the 0:: line of /proc/PID/cgroup gives them (/system.slice/...)"
                )));
            }
            _ => None,
        };
        let mut filter = filter::from_cli(cli)?;
        filter.by_cgroup = u8::from(cgroup.is_some());
        Ok(Tracing {
            cgroup,
            namespaces: Selection::from_cli(cli.netns.as_deref())?,
            filter,
            stop_after: cli
                .duration
                .map(|s| fail::seconds("--duration", s, 0.001))
                .transpose()?,
            ring_bytes: cli.ring_size.map(ring_bytes).transpose()?,
            max_sockets: max_sockets(cli.max_sockets)?,
            self_cost: cli.self_cost,
            drops: cli.drops,
            metrics: cli.metrics.as_deref().map(metrics_addrs).transpose()?,
            web_config: cli.web_config.clone(),
            json_records: cli.json || cli.stop_json,
        })
    }
}

impl Replay {
    fn new(cli: &Cli, file: &str, plan: Plan, tracing: &Tracing, numeric: Numeric) -> Result<Self> {
        let Plan::Sockets(mut sockets) = plan else {
            return Err(fail::usage(
                "--replay lists sockets: leave out the other listing",
            ));
        };
        // A log holds TCP only; the flags that ask for more were refused.
        (
            sockets.udp,
            sockets.udplite,
            sockets.raw,
            sockets.unix,
            sockets.groups,
        ) = (false, false, false, false, false);
        sockets.tcp = true;
        let summary = match cli.summary {
            Some(seconds) => Some(ReplaySummary {
                every: fail::seconds("--summary interval", seconds, 0.001)?,
                json: cli.json,
                close_wait_age: close_wait_age(cli)?,
            }),
            None => None,
        };
        let live = match cli.continuous {
            true => Some(ReplayLive {
                interval: interval(cli)?,
                diff: cli.diff,
                speed: cli.speed.map(speed).transpose()?,
            }),
            false => None,
        };
        Ok(Replay {
            file: file.to_string(),
            at: at(cli.at.as_deref())?,
            plan: sockets,
            filter: RowFilter::new(tracing.filter, None),
            numeric,
            summary,
            live,
        })
    }
}

impl Live {
    fn from_cli(
        cli: &Cli,
        tracing: Tracing,
        sockets: SocketPlan,
        fallback: Listing,
    ) -> Result<Self> {
        if tracing.namespaces == Selection::All {
            return Err(fail::usage(
                "-c follows one network namespace: use --netns NAME (or none for ours), not all",
            ));
        }
        Ok(Live {
            tracing,
            sockets,
            interval: interval(cli)?,
            diff: cli.diff,
            fallback,
        })
    }
}

/// `--interval MS`, at most a day.
fn interval(cli: &Cli) -> Result<Duration> {
    if cli.interval > MAX_INTERVAL_MS {
        return Err(fail::usage(format!(
            "invalid --interval {}: use at most {MAX_INTERVAL_MS} ms (a day)",
            cli.interval
        )));
    }
    Ok(Duration::from_millis(cli.interval))
}

/// `--speed X`: a positive, finite factor.
fn speed(x: f64) -> Result<f64> {
    match x.is_finite() && x > 0.0 && x <= 1e6 {
        true => Ok(x),
        false => Err(fail::usage(format!(
            "invalid --speed {x}: use a factor above 0 and at most 1000000"
        ))),
    }
}

/// `--close-wait-age`, 10 s by default.
fn close_wait_age(cli: &Cli) -> Result<Duration> {
    fail::seconds(
        "--close-wait-age",
        cli.close_wait_age.unwrap_or(10.0),
        0.001,
    )
}

/// `--at`: RFC 3339, or a time of day.
fn at(text: Option<&str>) -> Result<At> {
    let Some(text) = text else {
        return Ok(At::End);
    };
    if let Some(ns) = crate::clock::parse_rfc3339(text) {
        return Ok(At::Exact(ns));
    }
    match crate::clock::parse_local_time_of_day(text, 0) {
        Some(_) => Ok(At::TimeOfDay(text.to_string())),
        None => Err(fail::usage(format!(
            "invalid --at {text}: use RFC 3339 (2026-12-07T03:12:45Z) or HH:MM:SS[.frac]"
        ))),
    }
}

/// The smallest `--rotate-size`: a file must hold more than its snapshot.
const MIN_ROTATE_SIZE: u64 = 4096;

/// `--output` and its rotation.
fn log_output(cli: &Cli, path: &std::path::Path) -> Result<LogOutput> {
    let rotate = match &cli.rotate_size {
        Some(text) => {
            let size = byte_size(text)
                .filter(|&n| n >= MIN_ROTATE_SIZE)
                .ok_or_else(|| {
                    fail::usage(format!(
                        "invalid --rotate-size {text}: use bytes (at least {MIN_ROTATE_SIZE}), optionally with K, M or G"
                    ))
                })?;
            let keep = cli.rotate_keep.unwrap_or(5);
            if keep == 0 {
                return Err(fail::usage(
                    "invalid --rotate-keep 0: keep at least 1 rotated file",
                ));
            }
            Some(Rotate { size, keep })
        }
        None => None,
    };
    Ok(LogOutput {
        path: path.to_path_buf(),
        rotate,
    })
}

/// `12345`, `64K`, `100M`, `1G` (powers of 1024) as bytes.
fn byte_size(text: &str) -> Option<u64> {
    let (digits, unit) = match text.char_indices().last()? {
        (at, 'K' | 'k') => (&text[..at], 1 << 10),
        (at, 'M' | 'm') => (&text[..at], 1 << 20),
        (at, 'G' | 'g') => (&text[..at], 1 << 30),
        _ => (text, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(unit)
}

fn ring_bytes(bytes: u32) -> Result<u32> {
    match bytes.is_power_of_two() && bytes >= 4096 {
        true => Ok(bytes),
        false => Err(fail::usage(format!(
            "invalid --ring-size {bytes}: use a power of two of at least 4096 bytes"
        ))),
    }
}

fn max_sockets(n: u32) -> Result<u32> {
    match (MIN_SOCKETS..=MAX_SOCKETS).contains(&n) {
        true => Ok(n),
        false => Err(fail::usage(format!(
            "invalid --max-sockets {n}: use {MIN_SOCKETS} to {MAX_SOCKETS}"
        ))),
    }
}

/// `--metrics ADDR`: `IP:PORT`, `[IPv6]:PORT`, or `:PORT` for every
/// interface ([::] takes IPv4 too where IPv6 is on; 0.0.0.0 where it is off).
fn metrics_addrs(addr: &str) -> Result<Vec<SocketAddr>> {
    let bad = || {
        fail::usage(format!(
            "invalid --metrics address '{addr}': use IP:PORT, [IPv6]:PORT or :PORT (default {METRICS_ADDR})"
        ))
    };
    match addr.strip_prefix(':') {
        Some(port) => {
            let port: u16 = port.parse().map_err(|_| bad())?;
            Ok(vec![
                SocketAddr::from(([0u16; 8], port)),
                SocketAddr::from(([0u8; 4], port)),
            ])
        }
        None => Ok(vec![addr.parse().map_err(|_| bad())?]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_and_moments_are_checked() {
        assert_eq!(super::byte_size("64K"), Some(65_536));
        assert_eq!(super::byte_size("1g"), Some(1 << 30));
        assert_eq!(super::byte_size("4096"), Some(4096));
        assert_eq!(super::byte_size("K"), None);
        assert_eq!(super::byte_size("99999999999G"), None);
        assert_eq!(super::at(None).unwrap(), super::At::End);
        assert_eq!(
            super::at(Some("03:12:45.5")).unwrap(),
            super::At::TimeOfDay("03:12:45.5".into())
        );
        assert!(matches!(
            super::at(Some("2026-12-07T03:12:45Z")).unwrap(),
            super::At::Exact(_)
        ));
        assert!(super::at(Some("yesterday")).is_err());
    }

    #[test]
    fn metrics_addresses_are_checked() {
        assert!(super::metrics_addrs("127.0.0.1:notaport").is_err());
        assert!(super::metrics_addrs("localhost").is_err());
        assert!(super::metrics_addrs(":99999").is_err());
        assert_eq!(
            super::metrics_addrs(":9977").unwrap(),
            [
                "[::]:9977".parse().unwrap(),
                "0.0.0.0:9977".parse().unwrap()
            ]
        );
        assert_eq!(
            super::metrics_addrs("[::1]:80").unwrap(),
            ["[::1]:80".parse().unwrap()]
        );
    }
}
