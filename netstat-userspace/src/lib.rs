//! enetstat: netstat on eBPF.
//!
//! Two pipelines share the renderers and the name resolver:
//! - the listing (`snapshot`): /proc files -> `procnet` parsers -> rows ->
//!   `render` (netstat's tables);
//! - the event log (`events`): kernel programs (netstat-ebpf) -> `kernel`
//!   (load, ring buffer) -> `decoder` -> `filter` -> `render`. The /proc side
//!   (`owners`) feeds the decoder the sockets that existed before start-up.

mod cli;
mod clock;
mod combinations;
mod cost;
mod decoder;
mod events;
mod fail;
mod filter;
mod generate;
mod kernel;
mod live;
mod metrics;
mod metrics_server;
mod names;
mod netns;
mod output;
mod owners;
mod plan;
mod procnet;
mod render;
mod session;
mod snapshot;
mod sock_diag;
mod socket_list;
mod stop;
mod summary;
mod tcp_state;
mod textfmt;
mod traffic;

pub mod fuzzing;

use clap::Parser as _;

use crate::{cli::Cli, fail::Fatal};

/// The `enetstat` command: parses the command line, runs the mode it asks
/// for and exits with its status.
pub fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    // For packaging only (`cargo xtask dist`): outside the flags, so that
    // neither help nor completions offer it.
    let args: Vec<String> = std::env::args().skip(1).take(3).collect();
    if let [flag, what] = args.as_slice()
        && flag == "--generate"
    {
        if let Err(e) = generate::run(what) {
            eprintln!("enetstat: {e:#}");
            std::process::exit(fail::EXIT_USAGE);
        }
        return;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => exit_on_usage_error(e),
    };
    if let Err(e) = run(&cli) {
        match e.downcast_ref::<Fatal>() {
            Some(fatal) => {
                eprintln!("enetstat: {fatal}");
                std::process::exit(fatal.code);
            }
            None => {
                eprintln!("enetstat: {e:#}");
                std::process::exit(1);
            }
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    combinations::check(cli)?;
    if cli.drops && !cli.events {
        return Err(fail::usage("--drops goes with -E (the event log)"));
    }
    // Checked before anything is loaded (seconds under load); the stop
    // request takes it from there.
    if let Some(seconds) = cli.duration {
        fail::seconds("--duration", seconds, 0.0)?;
    }
    let event_mode = cli.events || cli.summary.is_some() || cli.metrics.is_some() || cli.continuous;
    if cli.self_cost && !event_mode {
        return Err(fail::usage(
            "--self-cost measures the kernel programs: use it with -E, -S, -c or --metrics",
        ));
    }
    let namespaces = netns::Selection::from_cli(cli.netns.as_deref())?;
    if cli.events {
        return events::run(cli, namespaces);
    }
    if let Some(interval) = cli.summary {
        return summary::run(cli, namespaces, interval);
    }
    // Beside -E and -S the endpoint is theirs; beside -c, the live view's.
    let live_tcp = snapshot::live_tcp(cli)?;
    if cli.metrics.is_some() && live_tcp.is_none() {
        if cli.continuous {
            return Err(fail::usage(
                "--metrics beside -c needs the TCP live view: add -t, or leave -c out",
            ));
        }
        return metrics::run(cli, namespaces);
    }
    if let Some(sockets) = live_tcp {
        if namespaces == netns::Selection::All {
            return Err(fail::usage(
                "-c follows one network namespace: use --netns NAME (or none for ours), not all",
            ));
        }
        let filter = filter::from_cli(cli)?;
        match live::run(cli, &sockets, &filter) {
            // Without eBPF (not root, old kernel) -c re-reads /proc, like
            // netstat; a bad flag is an error as in every mode.
            Err(e)
                if cli.metrics.is_none()
                    && e.downcast_ref::<Fatal>().is_some_and(|f| f.no_ebpf) =>
            {
                eprintln!("enetstat: no live TCP view ({e}); re-reading /proc every second");
            }
            other => return other,
        }
    }
    snapshot::run(cli, namespaces)
}

/// Help and version go to stdout as usual; a bad flag is one line on stderr
/// and exit code 2.
fn exit_on_usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        e.exit();
    }
    let text = e.to_string();
    let first = text
        .lines()
        .next()
        .unwrap_or("invalid arguments")
        .trim_start_matches("error: ");
    eprintln!("enetstat: {first} (see enetstat --help)");
    std::process::exit(fail::EXIT_USAGE);
}
