//! -r: read the routing tables the plan names and print them.

use anyhow::Result;

use crate::plan::{Family, Routes};
use crate::{fail, names::Names, procnet, render::routes};

pub fn list(plan: &Routes, names: &Names, out: &mut String) -> Result<()> {
    for family in &plan.families {
        match family {
            Family::Inet => {
                if plan.fib {
                    let text = required("/proc/net/route", "INET (IPv4)")?;
                    routes::v4_header(out, plan.columns);
                    for r in procnet::routes::parse_v4(&text, "/proc/net/route")? {
                        routes::v4_row(out, names, plan.columns, &r);
                    }
                }
                if plan.cache {
                    // Only a header since Linux 3.6 (the cache is gone); read
                    // it anyway so a kernel without it is reported.
                    required("/proc/net/rt_cache", "INET (IPv4) routing cache")?;
                    routes::v4_cache_header(out, plan.columns);
                }
            }
            Family::Inet6 => {
                let text = required("/proc/net/ipv6_route", "INET6 (IPv6)")?;
                let table = procnet::routes::parse_v6(&text, "/proc/net/ipv6_route")?;
                // -C lists the cached (RTF_CACHE) entries under their own header.
                for (on, cache) in [(plan.fib, false), (plan.cache, true)] {
                    if !on {
                        continue;
                    }
                    routes::v6_header(out, cache);
                    for r in table.iter().filter(|r| routes::v6_is_cache(r) == cache) {
                        routes::v6_row(out, names, r);
                    }
                }
            }
            Family::Unix => unreachable!("the plan rejects unix routes"),
        }
    }
    Ok(())
}

fn required(path: &str, what: &str) -> Result<String> {
    procnet::read_optional(path)?.ok_or_else(|| {
        fail::with_code(
            1,
            format!("{path} is missing: {what} is not configured in this kernel"),
        )
    })
}
