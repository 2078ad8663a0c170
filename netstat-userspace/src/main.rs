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
mod decoder;
mod events;
mod fail;
mod filter;
mod kernel;
mod live;
mod names;
mod netns;
mod owners;
mod procnet;
mod render;
mod snapshot;
mod sock_diag;
mod stop;
mod summary;
mod tcp_state;
mod textfmt;

use clap::Parser as _;

use crate::{cli::Cli, fail::Fatal};

fn main() {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
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
    let namespaces = netns::Selection::from_cli(cli.netns.as_deref())?;
    if cli.events {
        return events::run(cli, namespaces);
    }
    if let Some(interval) = cli.summary {
        return summary::run(cli, namespaces, interval);
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
