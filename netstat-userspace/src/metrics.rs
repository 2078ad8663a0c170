//! `enetstat --metrics` alone: the programs count in the kernel and send no
//! events (as for -S); the endpoint (`metrics_server`, started by the
//! session) answers scrapes until the run is stopped.

use anyhow::Result;

use crate::{
    cli::Cli,
    kernel::Probe,
    netns::Selection,
    render::stop::StopSummary,
    session::{self, Needs, Sink},
};

pub fn run(cli: &Cli, namespaces: Selection) -> Result<()> {
    session::block_on(async {
        let mut attached = session::attach(cli, namespaces, Needs::Counts)?;
        let english = format!(
            "tracing TCP in {} for the metrics endpoint",
            namespaces.describe()
        );
        attached.announce(cli, "metrics", namespaces, &english);
        let mut sink = Serving {
            stop_json: cli.json || cli.stop_json,
            filtered: attached.filter != netstat_common::Filter::default(),
        };
        session::run(&mut attached.probe, cli.duration, &mut sink).await
    })
}

/// Nothing to do between scrapes but wait for the stop.
struct Serving {
    stop_json: bool,
    /// A filter was given: the stop summary says what it left out.
    filtered: bool,
}

impl Sink for Serving {
    fn reads_events(&self) -> bool {
        false
    }

    fn finish(&mut self, probe: &Probe, _stopped: bool) -> Result<()> {
        let counters = probe.counters()?;
        let stop = StopSummary {
            filtered: self.filtered.then_some(counters.filtered),
            ..session::stop_summary("metrics", probe, &counters)
        };
        eprintln!("{}", stop.render(self.stop_json));
        Ok(())
    }
}
