//! From netstat's flags to what to read and print, with netstat's rules for
//! combining them (`-t` implies both IP families, `-A inet` implies every IP
//! protocol, a mode flag excludes the others ...).

use anyhow::Result;

use crate::{cli::Cli, fail};

/// One run of the listing (repeated every second with `-c`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Sockets(SocketPlan),
    Routes(Routes),
    Interfaces { all: bool, long: bool },
    Statistics(StatisticsPlan),
    Masquerade,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Inet,
    Inet6,
    Unix,
}

impl Family {
    fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Inet6 => "inet6",
            Family::Unix => "unix",
        }
    }
}

/// Which sockets and columns the socket listing shows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SocketPlan {
    pub tcp: bool,
    pub udp: bool,
    pub udplite: bool,
    pub raw: bool,
    pub unix: bool,
    pub groups: bool,
    pub ipv4: bool,
    pub ipv6: bool,
    pub all: bool,
    pub listening: bool,
    /// "User" and "Inode" columns (-e).
    pub extend: bool,
    pub programs: bool,
    pub timers: bool,
    pub wide: bool,
    /// At least one protocol or family was named: a missing /proc file is
    /// then worth a message (netstat's flag_arg).
    pub explicit: bool,
    /// The protocols were implied by a family flag (netstat's flag_noprot):
    /// missing files stay silent.
    pub implied: bool,
    pub verbose: bool,
}

impl SocketPlan {
    /// Whether sockets without tracepoints (UDP, UDP-Lite, raw, unix) are
    /// listed: the live view must re-read those from /proc.
    pub fn untracked(&self) -> bool {
        self.udp || self.udplite || self.raw || self.unix
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Routes {
    pub families: Vec<Family>,
    /// 1: Metric/Ref/Use, 2: MSS/Window/irtt (the default), 3: both,
    /// 0: headline only.
    pub columns: u8,
    pub fib: bool,
    pub cache: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatisticsPlan {
    pub ipv6: bool,
    /// Sections: Ip and Icmp (raw), Tcp and TcpExt, Udp.
    pub raw: bool,
    pub tcp: bool,
    pub udp: bool,
}

impl Plan {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        // combinations::check refused more than one of -r -i -g -M -s.
        let families = families(cli)?;
        let has = |f| families.contains(&f);
        let mut inet = has(Family::Inet);
        let mut inet6 = has(Family::Inet6);
        let unix = has(Family::Unix);
        let (mut tcp, mut udp, mut udplite, mut raw) = (cli.tcp, cli.udp, cli.udplite, cli.raw);
        let mut implied = false;
        if (inet || inet6 || cli.statistics) && !(tcp || udp || udplite || raw) {
            (tcp, udp, udplite, raw, implied) = (true, true, true, true, true);
        }
        if (tcp || udp || udplite || raw || cli.groups) && !(inet || inet6) {
            (inet, inet6) = (true, true);
        }
        let explicit = tcp || udp || udplite || raw || unix || cli.groups;

        if cli.masquerade {
            return Ok(Plan::Masquerade);
        }
        if cli.statistics {
            return Ok(Plan::Statistics(StatisticsPlan::new(
                &families, raw, tcp, udp,
            )?));
        }
        if cli.route {
            return Ok(Plan::Routes(Routes::new(cli, families)?));
        }
        if cli.interfaces {
            return Ok(Plan::Interfaces {
                all: cli.all,
                long: cli.extend > 0,
            });
        }
        let everything = !explicit;
        Ok(Plan::Sockets(SocketPlan {
            tcp: everything || tcp,
            udp: everything || udp,
            udplite: everything || udplite,
            raw: everything || raw,
            unix: everything || unix,
            groups: cli.groups,
            ipv4: everything || inet,
            ipv6: everything || inet6,
            all: cli.all,
            listening: cli.listening,
            extend: cli.extend > 0,
            programs: cli.programs,
            timers: cli.timers,
            wide: cli.wide,
            explicit,
            implied,
            verbose: cli.verbose,
        }))
    }
}

impl StatisticsPlan {
    /// -s: one family's tables (IPv4 unless -6 alone), of the protocols named.
    fn new(families: &[Family], raw: bool, tcp: bool, udp: bool) -> Result<Self> {
        let ipv6 = match families {
            [] | [Family::Inet] => false,
            [Family::Inet6] => true,
            _ => {
                let names: Vec<_> = families.iter().map(|f| f.name()).collect();
                return Err(fail::usage(format!(
                    "no statistics support for address family {}; use -s alone, -s -4 or -s -6",
                    names.join(",")
                )));
            }
        };
        Ok(Self {
            ipv6,
            raw,
            tcp,
            udp,
        })
    }
}

impl Routes {
    /// -r: IPv4 unless families are named; the column set from -e.
    fn new(cli: &Cli, families: Vec<Family>) -> Result<Self> {
        let families = if families.is_empty() {
            vec![Family::Inet]
        } else {
            families
        };
        if families.contains(&Family::Unix) {
            return Err(fail::usage(
                "no routing for address family unix; use -r with -4 and/or -6",
            ));
        }
        // netstat counts -e from 1, swaps 1 and 2 for routes, and masks
        // with 3 (so -eee selects no column set at all).
        let columns = match cli.extend {
            0 => 2,
            1 => 1,
            n => (n + 1) & 3,
        };
        Ok(Self {
            families,
            columns,
            fib: cli.fib || !cli.cache,
            cache: cli.cache,
        })
    }
}

/// The families named by -4, -6, -x and -A, in that order, each once.
fn families(cli: &Cli) -> Result<Vec<Family>> {
    let mut out = Vec::new();
    let mut add = |f: Family| {
        if !out.contains(&f) {
            out.push(f);
        }
    };
    if cli.inet {
        add(Family::Inet);
    }
    if cli.inet6 {
        add(Family::Inet6);
    }
    if cli.unix {
        add(Family::Unix);
    }
    for name in cli.families.iter().flat_map(|list| list.split(',')) {
        match name {
            "inet" | "ip" | "tcpip" => add(Family::Inet),
            "inet6" | "ip6" => add(Family::Inet6),
            "unix" => add(Family::Unix),
            "ax25" | "ipx" | "netrom" | "rose" | "ddp" | "appletalk" | "x25" | "econet" | "ash"
            | "bluetooth" => {
                return Err(fail::usage(format!(
                    "address family `{name}' is not supported; use inet, inet6 or unix"
                )));
            }
            _ => {
                return Err(fail::usage(format!(
                    "unknown address family `{name}'; use inet, inet6 or unix"
                )));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    /// The plan of `args`, after the combination checks that come first.
    fn plan(args: &str) -> Result<Plan> {
        let cli = Cli::try_parse_from(std::iter::once("enetstat").chain(args.split_whitespace()))
            .unwrap();
        crate::combinations::check(&cli)?;
        Plan::from_cli(&cli)
    }

    fn sockets(args: &str) -> SocketPlan {
        match plan(args).unwrap() {
            Plan::Sockets(s) => s,
            other => panic!("{args}: {other:?}"),
        }
    }

    #[test]
    fn protocol_flags_imply_both_ip_families_and_hide_unix() {
        let s = sockets("-tan");
        assert!(s.tcp && s.ipv4 && s.ipv6 && s.all && !s.udp && !s.unix && !s.raw);
        let s = sockets("-t -4");
        assert!(s.ipv4 && !s.ipv6);
    }

    #[test]
    fn no_flags_show_everything_and_a_family_implies_its_protocols() {
        let s = sockets("");
        assert!(s.tcp && s.udp && s.udplite && s.raw && s.unix && !s.explicit);
        let s = sockets("-A inet6");
        assert!(s.tcp && s.udp && s.raw && s.ipv6 && !s.ipv4 && !s.unix && s.implied);
        let s = sockets("-x");
        assert!(s.unix && !s.tcp);
    }

    #[test]
    fn modes_and_families() {
        assert_eq!(
            plan("-s -t").unwrap(),
            Plan::Statistics(StatisticsPlan {
                ipv6: false,
                raw: false,
                tcp: true,
                udp: false
            })
        );
        assert_eq!(
            plan("-s -6").unwrap(),
            Plan::Statistics(StatisticsPlan {
                ipv6: true,
                raw: true,
                tcp: true,
                udp: true
            })
        );
        match plan("-rn -A inet6").unwrap() {
            Plan::Routes(r) => assert_eq!((r.families, r.columns), (vec![Family::Inet6], 2)),
            other => panic!("{other:?}"),
        }
        match plan("-ree").unwrap() {
            Plan::Routes(r) => assert_eq!(r.columns, 3),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn bad_combinations_exit_2_as_every_bad_flag_does() {
        let code = |args| {
            plan(args)
                .unwrap_err()
                .downcast::<fail::Fatal>()
                .unwrap()
                .code
        };
        // net-tools exits 3 or 1 for these; enetstat's usage errors are 2.
        for args in ["-r -i", "-A foo", "-A ipx", "-s -x", "-r -x"] {
            assert_eq!(code(args), fail::EXIT_USAGE, "{args}");
        }
    }
}
