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
        if cli.events {
            return Ok(Command::Events(Events {
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
                close_wait_age: fail::seconds(
                    "--close-wait-age",
                    cli.close_wait_age.unwrap_or(10.0),
                    0.001,
                )?,
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
        if cli.interval > MAX_INTERVAL_MS {
            return Err(fail::usage(format!(
                "invalid --interval {}: use at most {MAX_INTERVAL_MS} ms (a day)",
                cli.interval
            )));
        }
        Ok(Live {
            tracing,
            sockets,
            interval: Duration::from_millis(cli.interval),
            diff: cli.diff,
            fallback,
        })
    }
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
