//! Which flags go together: a flag is honoured or refused (one line, exit
//! 2), never silently ignored. Each rule looks at what was given and names
//! the conflict; the first that objects wins.

use anyhow::Result;

use crate::{cli::Cli, fail};

/// Refuses the command line's first conflict, before anything is read or
/// loaded.
pub fn check(cli: &Cli) -> Result<()> {
    let given = Given::new(cli);
    let rules: [fn(&Given) -> Option<String>; 11] = [
        replay_reads_a_log,
        log_file_options,
        one_mode,
        tracing_follows_tcp,
        one_listing,
        listing_without_sockets,
        continuous_statistics,
        output_options,
        stop_options,
        one_namespace,
        unix_filters,
    ];
    match rules.iter().find_map(|rule| rule(&given)) {
        Some(conflict) => Err(fail::usage(conflict)),
        None => Ok(()),
    }
}

type Flags = [(&'static str, bool)];

/// The command line, as the rules ask about it.
struct Given<'a> {
    cli: &'a Cli,
    /// The event modes given, of -E, -S and -c.
    modes: Vec<&'static str>,
    /// The mode that traces without a listing: -E, -S, or --metrics alone.
    tracing: Option<&'static str>,
    listings: [(&'static str, bool); 5],
    unix: [(&'static str, bool); 2],
    udp_raw: [(&'static str, bool); 3],
}

impl<'a> Given<'a> {
    fn new(cli: &'a Cli) -> Self {
        let modes: Vec<&'static str> = [
            ("-E", cli.events),
            ("-S", cli.summary.is_some()),
            ("-c", cli.continuous),
        ]
        .into_iter()
        .filter_map(|(flag, on)| on.then_some(flag))
        .collect();
        let tracing = match (modes.first().copied(), cli.metrics.is_some()) {
            (Some(flag @ ("-E" | "-S")), _) => Some(flag),
            (None, true) => Some("--metrics"),
            _ => None,
        };
        let unix_family = cli
            .families
            .iter()
            .flat_map(|list| list.split(','))
            .any(|f| f == "unix");
        Self {
            cli,
            modes,
            tracing,
            listings: [
                ("-r", cli.route),
                ("-i", cli.interfaces),
                ("-g", cli.groups),
                ("-s", cli.statistics),
                ("-M", cli.masquerade),
            ],
            unix: [("-x", cli.unix), ("-A unix", unix_family)],
            udp_raw: [("-u", cli.udp), ("-U", cli.udplite), ("-w", cli.raw)],
        }
    }
}

/// The first flag given of these groups, if any.
fn first_of(groups: &[&Flags]) -> Option<&'static str> {
    groups
        .iter()
        .flat_map(|g| g.iter())
        .find_map(|(flag, on)| on.then_some(*flag))
}

fn one_mode(g: &Given) -> Option<String> {
    (g.modes.len() > 1).then(|| {
        format!(
            "{} each run a mode of their own: give one (--metrics may go beside any)",
            g.modes.join(" and ")
        )
    })
}

/// -E, -S and --metrics trace TCP and have no listing's columns.
fn tracing_follows_tcp(g: &Given) -> Option<String> {
    let mode = g.tracing?;
    if let Some(flag) = first_of(&[&g.listings, &g.udp_raw, &g.unix]) {
        return Some(format!(
            "{mode} follows TCP only: leave out {flag} (or list it without {mode})"
        ));
    }
    let c = g.cli;
    let columns = [
        ("-a", c.all),
        ("-l", c.listening),
        ("-p", c.programs),
        ("-e", c.extend > 0),
        ("-o", c.timers),
        ("-W", c.wide),
    ];
    let flag = first_of(&[&columns])?;
    Some(format!(
        "{flag} shapes the listing; {mode} has no such column: leave it out"
    ))
}

fn one_listing(g: &Given) -> Option<String> {
    let chosen: Vec<&str> = g
        .listings
        .iter()
        .filter_map(|(flag, on)| on.then_some(*flag))
        .collect();
    (chosen.len() > 1).then(|| {
        format!(
            "{} each select a listing: give one of them",
            chosen.join(" and ")
        )
    })
}

fn listing_without_sockets(g: &Given) -> Option<String> {
    // -r -i -g -M (-s has per-protocol counters: -s -t is netstat's).
    let listing = first_of(&[&g.listings[..3], &g.listings[4..]])?;
    let c = g.cli;
    let sockets = [("-t", c.tcp), ("-U", c.udplite), ("-x", c.unix)];
    let flag = first_of(&[&sockets, &g.udp_raw])?;
    Some(format!(
        "{listing} lists no sockets: leave out {flag}, or {listing}"
    ))
}

fn continuous_statistics(g: &Given) -> Option<String> {
    (g.cli.continuous && g.cli.statistics)
        .then(|| "-s prints its counters once: leave out -c".to_string())
}

/// --json, --diff and --count belong to the modes that can honour them.
fn output_options(g: &Given) -> Option<String> {
    let c = g.cli;
    let log_or_summary = matches!(g.tracing, Some("-E" | "-S"));
    if c.json && !log_or_summary {
        return Some("--json goes with -E or -S; the listing is netstat's text".into());
    }
    if c.diff && !c.continuous {
        return Some("--diff goes with -c (it prints the live view's changes)".into());
    }
    match c.count {
        Some(0) => Some("invalid --count 0: use at least 1".into()),
        Some(_) if !log_or_summary => Some(
            "--count goes with -E (events) or -S (intervals); use --duration to bound the rest"
                .into(),
        ),
        _ => None,
    }
}

/// What ends or sizes a tracing run has no meaning for a listing.
fn stop_options(g: &Given) -> Option<String> {
    let c = g.cli;
    if c.stop_json && g.tracing.is_none() {
        return Some("--stop-json goes with -E, -S or --metrics".into());
    }
    if c.duration.is_some() && g.tracing.is_none() && !c.continuous {
        return Some("--duration goes with -E, -S, -c or --metrics".into());
    }
    if c.cgroup.is_some()
        && let Some(listing) = first_of(&[&g.listings])
    {
        return Some(format!("--cgroup selects sockets: {listing} lists none"));
    }
    if c.close_wait_age.is_some() && g.tracing != Some("-S") {
        return Some(
            "--close-wait-age goes with -S (it lists CLOSE_WAIT leaks per interval)".into(),
        );
    }
    let reads_events = matches!(g.modes.first(), Some(&"-E" | &"-c"));
    (c.ring_size.is_some() && !reads_events)
        .then(|| "--ring-size goes with -E or -c, the modes that read events".into())
}

/// `--replay` lists TCP sockets from a log: nothing of the kernel's, and
/// no column a log does not hold.
fn replay_reads_a_log(g: &Given) -> Option<String> {
    let c = g.cli;
    if c.replay.is_none() {
        if c.speed.is_some() {
            return Some("--speed paces --replay -c: add --replay FILE -c".into());
        }
        return c
            .at
            .is_some()
            .then(|| "--at picks the moment of a --replay: add --replay FILE".into());
    }
    if c.speed.is_some() && !c.continuous {
        return Some("--speed paces the replayed live view: add -c".into());
    }
    let tracing = [("-E", c.events), ("--metrics", c.metrics.is_some())];
    if let Some(flag) = first_of(&[&tracing]) {
        return Some(format!(
            "--replay plays a log as the listing, -c or -S; {flag} of a log is not supported: leave out {flag}"
        ));
    }
    if c.summary.is_some() && c.at.is_some() {
        return Some("-S of a log covers all of it: leave out --at".into());
    }
    if let Some(flag) = first_of(&[&g.listings, &g.udp_raw, &g.unix]) {
        return Some(format!("a log holds TCP only: leave out {flag}"));
    }
    let kernel = [
        ("--netns", c.netns.is_some()),
        ("--duration", c.duration.is_some()),
        ("--ring-size", c.ring_size.is_some()),
        ("--self-cost", c.self_cost),
        ("--cgroup", c.cgroup.is_some()),
        ("--count", c.count.is_some()),
        ("-e", c.extend > 0),
    ];
    first_of(&[&kernel])
        .map(|flag| format!("--replay reads a log, which has no {flag}: leave out {flag}"))
}

/// --output and rotation belong to the event log.
fn log_file_options(g: &Given) -> Option<String> {
    let c = g.cli;
    if c.output.is_some() && !c.events {
        return Some("--output writes the event log: use it with -E".into());
    }
    if c.rotate_size.is_some() && c.output.is_none() {
        return Some("--rotate-size rotates the file of --output: add --output FILE".into());
    }
    (c.rotate_keep.is_some() && c.rotate_size.is_none())
        .then(|| "--rotate-keep goes with --rotate-size".into())
}

fn one_namespace(g: &Given) -> Option<String> {
    if g.cli.netns.as_deref() != Some("all") {
        return None;
    }
    let flag = first_of(&[&g.listings, &g.unix])?;
    Some(format!(
        "{flag} shows one network namespace: use --netns NAME, not all"
    ))
}

fn unix_filters(g: &Given) -> Option<String> {
    first_of(&[&g.unix])?;
    let c = g.cli;
    let endpoints = [
        ("--port", c.port.is_some()),
        ("--sport", c.sport.is_some()),
        ("--dport", c.dport.is_some()),
        ("--addr", c.addr.is_some()),
    ];
    let flag = first_of(&[&endpoints])?;
    Some(format!(
        "{flag} has no meaning for unix sockets: leave out -x, or {flag}"
    ))
}
