//! What the tracer costs: its kernel programs' runs and time, and its own
//! CPU time (`--self-cost`; read by `kernel::Probe::cost`).

/// One program's runs and time on CPU since it was loaded (counted while
/// statistics were on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramCost {
    pub program: &'static str,
    /// The kernel's id of the loaded program (`bpftool prog show id N`).
    pub id: u32,
    pub runs: u64,
    pub run_ns: u64,
}

/// A reading of the whole tracer's cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cost {
    pub programs: Vec<ProgramCost>,
    /// enetstat's own CPU time, all threads.
    pub user_ns: u64,
}

impl Cost {
    pub fn kernel_ns(&self) -> u64 {
        self.programs.iter().map(|p| p.run_ns).sum()
    }

    /// What was spent between `before` and this reading.
    pub fn since(&self, before: &Cost) -> Cost {
        let was = |p: &ProgramCost| before.programs.iter().find(|b| b.id == p.id);
        Cost {
            programs: self
                .programs
                .iter()
                .map(|p| ProgramCost {
                    runs: p.runs - was(p).map_or(0, |b| b.runs.min(p.runs)),
                    run_ns: p.run_ns - was(p).map_or(0, |b| b.run_ns.min(p.run_ns)),
                    ..*p
                })
                .collect(),
            user_ns: self.user_ns.saturating_sub(before.user_ns),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cost_since_an_earlier_reading_is_the_difference() {
        let p = |id, runs, run_ns| ProgramCost {
            program: "p",
            id,
            runs,
            run_ns,
        };
        let before = Cost {
            programs: vec![p(1, 10, 1000)],
            user_ns: 500,
        };
        let now = Cost {
            programs: vec![p(1, 30, 4000), p(2, 5, 50)],
            user_ns: 800,
        };
        let spent = now.since(&before);
        assert_eq!(spent.programs, vec![p(1, 20, 3000), p(2, 5, 50)]);
        assert_eq!((spent.kernel_ns(), spent.user_ns), (3050, 300));
    }
}
