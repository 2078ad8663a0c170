//! The netstat listing: /proc snapshot -> rows -> netstat's text. One
//! listing per run, or one per second with -c.

mod interfaces;
mod masquerade;
mod routes;
mod statistics;

use anyhow::Result;

use crate::{command::Listing, names::Names, output::Output, plan::Plan, socket_list};

/// Prints the listing, once or (`-c`) every second until stopped or its
/// `stop_after`.
pub fn run(listing: &Listing) -> Result<()> {
    let plan = &listing.plan;
    let filter = &listing.filter;
    let members = listing.namespaces.members();
    let names = Names::new(listing.numeric);
    let mut stdout = Output::stdout();
    let until = listing
        .stop_after
        .map(|after| std::time::Instant::now() + after);
    loop {
        let mut out = String::new();
        let result = match plan {
            Plan::Sockets(s) => socket_list::list(s, filter, &members, &names, &mut out, None),
            Plan::Routes(r) => routes::list(r, &names, &mut out),
            Plan::Interfaces { all, long } => interfaces::list(*all, *long, &mut out),
            Plan::Statistics(s) => statistics::list(s, &mut out),
            Plan::Masquerade => masquerade::list(&names, &mut out),
        };
        // What was gathered before a failure is still printed, as netstat does.
        write_stdout(&mut stdout, &out)?;
        result?;
        if !listing.continuous || matches!(plan, Plan::Statistics(_)) {
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
    if out.write_whole(text, "the listing")?.is_gone() {
        std::process::exit(0);
    }
    Ok(())
}
