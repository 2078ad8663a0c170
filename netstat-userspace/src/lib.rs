//! enetstat: netstat on eBPF.
//!
//! Two pipelines share the renderers and the name resolver:
//! - the listing (`snapshot`): /proc files -> `procnet` parsers -> rows ->
//!   `render` (netstat's tables);
//! - the event log (`events`): kernel programs (netstat-ebpf) -> `kernel`
//!   (load, ring buffer) -> `decoder` -> `filter` -> `render`. The /proc side
//!   (`owners`) feeds the decoder the sockets that existed before start-up.

mod capabilities;
mod cgroups;
mod cli;
mod clock;
mod combinations;
mod command;
mod conn_table;
mod cost;
mod decoder;
mod events;
mod fail;
mod filter;
mod generate;
mod kernel;
mod live;
mod log_file;
mod metrics;
mod metrics_guard;
mod metrics_server;
mod names;
mod netns;
mod output;
mod owners;
mod plan;
mod ports;
mod procnet;
mod render;
mod replay;
mod session;
mod snapshot;
mod sock_diag;
mod socket_list;
mod stop_request;
mod summary;
mod tcp_state;
mod textfmt;
mod traffic;
mod web_config;

pub mod fuzzing;

use clap::Parser as _;

use crate::{cli::Cli, command::Command, fail::Fatal, session::Needs};

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

/// The dispatcher: the typed command, the kernel programs attached for its
/// mode and, with `--metrics`, the endpoint served beside it.
fn run(cli: &Cli) -> anyhow::Result<()> {
    let command = Command::from_cli(cli)?;
    let tracing = match &command {
        Command::Listing(_) | Command::Replay(_) => None,
        Command::Events(e) => Some(&e.tracing),
        Command::Summary(s) => Some(&s.tracing),
        Command::Live(l) => Some(&l.tracing),
        Command::Metrics(t) => Some(t),
    };
    // Bound and read now, so a bad or busy address, or a bad web
    // configuration, is said before anything is loaded.
    let endpoint = tracing
        .and_then(|t| t.metrics.as_deref())
        .map(metrics_server::bind)
        .transpose()?;
    let web = tracing
        .and_then(|t| t.web_config.as_deref())
        .map(web_config::load)
        .transpose()?;
    let needs = match &command {
        Command::Listing(listing) => return snapshot::run(listing),
        Command::Replay(replay) => return replay::run(replay),
        Command::Events(_) | Command::Live(_) => Needs::Events,
        Command::Summary(_) => Needs::CountsByRemote,
        Command::Metrics(_) => Needs::Counts,
    };
    let attached = match (
        session::attach(tracing.expect("a tracing mode"), needs),
        &command,
    ) {
        // Without eBPF (not root, old kernel) -c re-reads /proc, like
        // netstat; a bad flag is an error as in every mode.
        (Err(e), Command::Live(live))
            if endpoint.is_none() && e.downcast_ref::<Fatal>().is_some_and(|f| f.no_ebpf) =>
        {
            eprintln!("enetstat: no live TCP view ({e}); re-reading /proc every second");
            return snapshot::run(&live.fallback);
        }
        (attached, _) => attached?,
    };
    if let Some(listener) = endpoint {
        let probe = &attached.probe;
        let namespaces = attached.namespaces;
        metrics_server::start(
            listener,
            web,
            probe.shared_counts(),
            namespaces,
            probe.reset_reasons,
        )?;
    }
    match &command {
        Command::Events(events) => events::run(events, attached),
        Command::Summary(summary) => summary::run(summary, attached),
        Command::Live(live) => live::run(live, attached),
        Command::Metrics(tracing) => metrics::run(tracing, attached),
        Command::Listing(_) | Command::Replay(_) => unreachable!("run above"),
    }
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
