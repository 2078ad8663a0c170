//! Which decoded events the user asked to see.

use anyhow::Result;

use crate::{cli::Cli, decoder::NetEvent, fail, names};

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct EventFilter {
    pub ipv4: bool,
    pub ipv6: bool,
    pub port: Option<u16>,
    pub pid: Option<u32>,
}

impl EventFilter {
    pub fn from_cli(cli: &Cli) -> Result<Self> {
        let port = cli.port.as_deref().map(parse_port).transpose()?;
        // Neither or both of -4/-6 means both families.
        let both = cli.inet == cli.inet6;
        Ok(Self {
            ipv4: both || cli.inet,
            ipv6: both || cli.inet6,
            port,
            pid: cli.pid,
        })
    }

    pub fn matches(&self, ev: &NetEvent) -> bool {
        let family = if ev.ipv6 { self.ipv6 } else { self.ipv4 };
        let port = self
            .port
            .is_none_or(|p| ev.local.port() == p || ev.remote.port() == p);
        let pid = self
            .pid
            .is_none_or(|p| ev.owner.as_ref().is_some_and(|o| o.pid == p));
        family && port && pid
    }
}

/// A port given as a number (1-65535) or an /etc/services name.
pub fn parse_port(text: &str) -> Result<u16> {
    if let Ok(port) = text.parse::<u32>() {
        return match u16::try_from(port) {
            Ok(port) if port > 0 => Ok(port),
            _ => Err(fail::usage(format!(
                "invalid port '{text}': use a number from 1 to 65535 or a service name"
            ))),
        };
    }
    names::service_port(text).ok_or_else(|| {
        fail::usage(format!(
            "unknown port '{text}': not a number and not a tcp service in /etc/services"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert_eq!(parse_port("8080").unwrap(), 8080);
        assert!(parse_port("0").is_err());
        assert!(parse_port("70000").is_err());
        let err = parse_port("no-such-service-xyz").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown port 'no-such-service-xyz'")
        );
    }
}
