//! The netstat listing: /proc snapshot -> rows -> netstat's text. One
//! listing per run, or one per second with -c.

mod interfaces;
mod masquerade;
mod routes;
mod statistics;

use anyhow::Result;

use crate::{
    cli::Cli,
    filter,
    names::Names,
    netns::Selection,
    output::Output,
    plan::{Plan, Sockets},
    socket_list,
};

/// The TCP sockets the live view (`-c`) keeps, if the flags ask for it:
/// main dispatches those to `live`.
pub fn live_tcp(cli: &Cli) -> Result<Option<Sockets>> {
    match Plan::from_cli(cli)? {
        Plan::Sockets(sockets) if cli.continuous && sockets.tcp => Ok(Some(sockets)),
        _ => Ok(None),
    }
}

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
    let mut stdout = Output::stdout();
    // -c re-lists until stopped, or for --duration (checked at start-up).
    let until = cli
        .duration
        .map(|s| std::time::Instant::now() + std::time::Duration::from_secs_f64(s));
    loop {
        let mut out = String::new();
        let result = match &plan {
            Plan::Sockets(s) => socket_list::list(s, &filter, &members, &names, &mut out, None),
            Plan::Routes(r) => routes::list(r, &names, &mut out),
            Plan::Interfaces { all, long } => interfaces::list(*all, *long, &mut out),
            Plan::Statistics(s) => statistics::list(s, &mut out),
            Plan::Masquerade => masquerade::list(&names, &mut out),
        };
        // What was gathered before a failure is still printed, as netstat does.
        write_stdout(&mut stdout, &out)?;
        result?;
        if !cli.continuous || matches!(plan, Plan::Statistics(_)) {
            return Ok(());
        }
        let mut pause = std::time::Duration::from_secs(1);
        if let Some(until) = until {
            match until.checked_duration_since(std::time::Instant::now()) {
                Some(left) if !left.is_zero() => pause = pause.min(left),
                _ => return Ok(()),
            }
        }
        std::thread::sleep(pause);
    }
}

/// Writes one listing; a closed pipe (`| head`) ends the program quietly.
fn write_stdout(out: &mut Output, text: &str) -> Result<()> {
    if !out.write_whole(text, "the listing")? {
        std::process::exit(0);
    }
    Ok(())
}
