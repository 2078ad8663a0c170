//! The verifier's work on the kernel programs, in the configurations that
//! keep the most of their code alive: far under the kernel's limit of
//! 1,000,000 instructions. A program near that limit loads in seconds on a
//! fast machine and not at all on an older verifier (6.1 went over it
//! where 6.18 counted 260,005; docs/INVESTIGATIONS.md).

use aya::programs::loaded_programs;
use netstat_common::TRACEPOINTS;
use tests::{Netns, Tracer};

/// A fifth of the kernel's limit, for the largest program.
const BUDGET: u32 = 200_000;

/// Each mode with the counting and filtering it can switch on at once.
const MODES: &[&[&str]] = &[
    &["--netns", "all", "--metrics", "127.0.0.1:9103"],
    &["-S", "1", "--netns", "all"],
    &[
        "-E",
        "--json",
        "--port",
        "80",
        "--state",
        "ESTABLISHED",
        "--pid",
        "1",
    ],
    &["-E", "-n", "-6", "--addr", "fd00::/8", "--sport", "22"],
];

/// (program name as the kernel keeps it, instructions verified) of every
/// program of ours loaded after program id `after`; None where the kernel
/// does not say (before 5.16).
fn verified_since(after: u32) -> Vec<(String, Option<u32>)> {
    // The kernel keeps 15 characters of a program's name.
    let ours: Vec<&str> = TRACEPOINTS
        .iter()
        .flat_map(|t| [t.name, t.second])
        .map(|name| &name[..name.len().min(15)])
        .collect();
    loaded_programs()
        .filter_map(Result::ok)
        .filter(|p| p.id() > after)
        .filter_map(|p| {
            let name = p.name_as_str()?.to_string();
            ours.contains(&name.as_str())
                .then(|| (name, p.verified_instruction_count()))
        })
        .collect()
}

fn newest_program_id() -> u32 {
    loaded_programs()
        .filter_map(Result::ok)
        .map(|p| p.id())
        .max()
        .unwrap_or(0)
}

#[test]
fn every_mode_leaves_the_verifier_four_fifths_of_its_limit() {
    let ns = Netns::new("verifier");
    for args in MODES {
        let before = newest_program_id();
        let tracer = Tracer::start(&ns, args);
        let verified = verified_since(before);
        let out = tracer.stop();
        assert!(out.status.success(), "{args:?}: {:?}", out.stderr);
        assert_eq!(
            verified.len(),
            2 * TRACEPOINTS.len(),
            "{args:?}: {verified:?}"
        );
        for (name, count) in verified {
            // Kernels before 5.16 do not count: the load within the
            // tracer's wait is all there is to check there.
            if let Some(count) = count {
                assert!(
                    count <= BUDGET,
                    "{args:?}: {name} took {count} instructions"
                );
            }
        }
    }
}
