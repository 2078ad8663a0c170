//! `enetstat --metrics` alone: the programs count in the kernel and send no
//! events (as for -S); the endpoint (`metrics_server`, started by the
//! session) answers scrapes until the run is stopped.

use anyhow::Result;

use crate::{
    command::Tracing,
    kernel::Probe,
    render::stop::StopSummary,
    session::{self, Attached, Sink},
};

/// Waits beside the endpoint (started by the dispatcher) on programs
/// attached for it (`Needs::Counts`).
pub fn run(tracing: &Tracing, mut attached: Attached) -> Result<()> {
    session::block_on(async {
        let english = format!(
            "tracing TCP in {} for the metrics endpoint",
            attached.namespaces.describe()
        );
        let stop = attached.announce("metrics", &english, tracing.stop_after)?;
        let mut sink = Serving {
            stop_json: attached.json_records,
            filtered: attached.filter != netstat_common::Filter::default(),
        };
        session::run(&mut attached.probe, stop, &mut sink).await
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
