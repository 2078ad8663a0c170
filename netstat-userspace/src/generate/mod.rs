//! `enetstat --generate WHAT`: the man page and the shell completions, made
//! from the clap definition so that they never drift from the flags
//! (`cargo xtask dist` packages them); the man page's sections for people
//! are written in `man_sections`.

mod man_sections;

use std::io::Write as _;

use anyhow::{Context as _, Result};
use clap::CommandFactory as _;
use clap_complete::Shell;

use crate::{cli::Cli, tcp_state::TcpState};

pub fn run(what: &str) -> Result<()> {
    let command = Cli::command();
    let mut out = Vec::new();
    match what {
        // Section 8: a tool for the system's administrator (it needs root).
        "man" => man(command, &mut out).context("rendering the man page")?,
        shell => {
            let shell: Shell = shell.parse().map_err(|e| {
                anyhow::anyhow!("--generate {shell}: {e}; use man, bash, zsh or fish")
            })?;
            let mut command = offering_values(command);
            clap_complete::generate(shell, &mut command, "enetstat", &mut out);
            if shell == Shell::Bash {
                out = bash_namespace_names(&out);
            }
        }
    }
    std::io::stdout()
        .write_all(&out)
        .context("writing to standard output")
}

/// The command as completions see it: the values an option takes where
/// there is a list of them, and no file names where a value is no path.
fn offering_values(command: clap::Command) -> clap::Command {
    use clap::{ValueHint, builder::PossibleValuesParser};
    let states: Vec<&'static str> = (1..=11).map(|k| TcpState(k).name()).collect();
    let free = [
        "port",
        "sport",
        "dport",
        "addr",
        "pid",
        "count",
        "duration",
        "ring_size",
        "max_sockets",
        "interval",
        "metrics",
        "summary",
    ];
    let mut command = command
        .mut_arg("state", |a| {
            a.value_parser(PossibleValuesParser::new(states))
        })
        .mut_arg("families", |a| {
            a.value_parser(PossibleValuesParser::new(["inet", "inet6", "unix"]))
        })
        .mut_arg("netns", |a| {
            a.value_parser(PossibleValuesParser::new(["all"]))
        });
    for id in free {
        command = command.mut_arg(id, |a| a.value_hint(ValueHint::Other));
    }
    command
}

/// Bash's `--netns` offers `all` and the names in /var/run/netns, read when
/// the user presses tab.
fn bash_namespace_names(script: &[u8]) -> Vec<u8> {
    let script = String::from_utf8_lossy(script);
    let offer = r#"compgen -W "all" -- "${cur}""#;
    let live = r#"compgen -W "all $(ls /var/run/netns 2>/dev/null)" -- "${cur}""#;
    script.replace(offer, live).into_bytes()
}

/// clap_mangen's sections, then ours before the version.
fn man(command: clap::Command, out: &mut Vec<u8>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(command).section("8");
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_extra_section(out)?;
    out.extend_from_slice(man_sections::SECTIONS.as_bytes());
    man.render_version_section(out)
}

#[cfg(test)]
mod tests {
    use super::man_sections::SECTIONS;

    /// What a reader of the JSON log meets is named on the man page.
    #[test]
    fn the_man_page_names_every_json_field() {
        for field in crate::render::event_json::tests::every_field() {
            assert!(SECTIONS.contains(&format!("\\fB{field}\\fR")), "{field}");
        }
    }

    /// Every metric a scrape can hold is named on the man page.
    #[test]
    fn the_man_page_names_every_metric() {
        let names = crate::render::metrics::tests::every_metric_name();
        assert!(names.len() > 10, "{names:?}");
        for name in names {
            assert!(SECTIONS.contains(&format!("\\fB{name}\\fR")), "{name}");
        }
    }
}
