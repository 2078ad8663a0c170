//! The netstat listing: /proc snapshot -> rows -> netstat's text. One
//! listing per run, or one per second with -c.

mod interfaces;
mod masquerade;
pub mod plan;
mod routes;
pub mod sockets;
mod statistics;

use std::io::Write as _;

use anyhow::{Context as _, Result};

use crate::{cli::Cli, filter, names::Names, netns::Selection};
use plan::Plan;

pub fn run(cli: &Cli, namespaces: Selection) -> Result<()> {
    let plan = Plan::from_cli(cli)?;
    let filter = filter::from_cli(cli)?;
    let members = namespaces.members();
    let mut numeric = cli.numeric();
    if matches!(plan, Plan::Routes(_)) {
        // netstat passes -N into the route printer's "numeric" bits.
        numeric.hosts |= cli.symbolic;
    }
    let names = Names::new(numeric);
    if cli.continuous
        && let Plan::Sockets(sockets) = &plan
        && sockets.tcp
    {
        if namespaces == Selection::All {
            return Err(crate::fail::usage(
                "-c follows one network namespace: use --netns NAME (or none for ours), not all",
            ));
        }
        match crate::live::run(cli, sockets, &filter) {
            // Without eBPF (not root, old kernel) -c re-reads /proc, like
            // netstat; a bad flag is an error as in every mode.
            Err(e)
                if e.downcast_ref::<crate::fail::Fatal>()
                    .is_some_and(|f| f.no_ebpf) =>
            {
                eprintln!("enetstat: no live TCP view ({e}); re-reading /proc every second");
            }
            other => return other,
        }
    }
    loop {
        let mut out = String::new();
        let result = match &plan {
            Plan::Sockets(s) => sockets::list(s, &filter, &members, &names, &mut out, None),
            Plan::Routes(r) => routes::list(r, &names, &mut out),
            Plan::Interfaces { all, long } => interfaces::list(*all, *long, &mut out),
            Plan::Statistics(s) => statistics::list(s, &mut out),
            Plan::Masquerade => masquerade::list(&names, &mut out),
        };
        // What was gathered before a failure is still printed, as netstat does.
        write_stdout(&out)?;
        result?;
        if !cli.continuous || matches!(plan, Plan::Statistics(_)) {
            return Ok(());
        }
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

/// Writes one listing; a closed pipe (`| head`) ends the program quietly.
fn write_stdout(text: &str) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::exit(0),
        other => other.context("writing to standard output"),
    }
}
