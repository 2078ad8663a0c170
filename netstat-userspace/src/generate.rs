//! `enetstat --generate WHAT`: the man page and the shell completions, made
//! from the clap definition so that they never drift from the flags
//! (`cargo xtask dist` packages them).

use std::io::Write as _;

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::cli::Cli;

pub fn run(what: &str) -> Result<()> {
    let mut command = Cli::command();
    let mut out = Vec::new();
    match what {
        // Section 8: a tool for the system's administrator (it needs root).
        "man" => clap_mangen::Man::new(command)
            .section("8")
            .render(&mut out)
            .context("rendering the man page")?,
        shell => {
            let shell: Shell = shell.parse().map_err(anyhow::Error::msg)?;
            clap_complete::generate(shell, &mut command, "enetstat", &mut out);
        }
    }
    std::io::stdout()
        .write_all(&out)
        .context("writing to standard output")
}
