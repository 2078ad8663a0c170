//! /proc/net/dev: per-interface packet counters.

use super::{ParseError, Source};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCounters {
    pub name: String,
    pub rx_bytes: u64,
    pub rx_packets: u64,
    pub rx_errors: u64,
    pub rx_dropped: u64,
    pub rx_fifo: u64,
    pub rx_frame: u64,
    pub tx_bytes: u64,
    pub tx_packets: u64,
    pub tx_errors: u64,
    pub tx_dropped: u64,
    pub tx_fifo: u64,
    pub collisions: u64,
    pub tx_carrier: u64,
}

/// Two header lines, then `name: 16 counters` (bytes, packets, errs, drop,
/// fifo, frame, compressed, multicast; the same eight for transmit).
pub fn parse(text: &str, file: &str) -> Result<Vec<DevCounters>, ParseError> {
    let src = Source { file };
    let mut lines = text.lines().enumerate();
    for i in 0..2 {
        if lines.next().is_none() {
            return Err(src.error(i, "file ends inside the two-line header"));
        }
    }
    lines
        .map(|(i, line)| {
            let (name, counters) = line
                .trim_start()
                .split_once(':')
                .ok_or_else(|| src.error(i, "expected `name:` before the counters"))?;
            let values: Vec<u64> = counters
                .split_ascii_whitespace()
                .map(|v| {
                    v.parse()
                        .map_err(|_| src.error(i, format!("bad counter {v:?}")))
                })
                .collect::<Result<_, _>>()?;
            if values.len() < 16 {
                return Err(src.error(i, format!("expected 16 counters, found {}", values.len())));
            }
            Ok(DevCounters {
                name: name.to_string(),
                rx_bytes: values[0],
                rx_packets: values[1],
                rx_errors: values[2],
                rx_dropped: values[3],
                rx_fifo: values[4],
                rx_frame: values[5],
                tx_bytes: values[8],
                tx_packets: values[9],
                tx_errors: values[10],
                tx_dropped: values[11],
                tx_fifo: values[12],
                collisions: values[13],
                tx_carrier: values[14],
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &str = "Inter-|   Receive\n face |bytes    packets\n";

    #[test]
    fn reads_counters() {
        let text = format!(
            "{HEAD}    lo:    5832      42    1    2    3     0          0         0     5832      43    4    5    6     0       0          0\n"
        );
        let d = parse(&text, "/proc/net/dev").unwrap();
        assert_eq!(d[0].name, "lo");
        assert_eq!(
            (
                d[0].rx_packets,
                d[0].rx_errors,
                d[0].rx_dropped,
                d[0].rx_fifo
            ),
            (42, 1, 2, 3)
        );
        assert_eq!(
            (
                d[0].tx_packets,
                d[0].tx_errors,
                d[0].tx_dropped,
                d[0].tx_fifo
            ),
            (43, 4, 5, 6)
        );
    }

    #[test]
    fn broken_lines_are_errors() {
        let cut = format!("{HEAD}    lo:    5832      42    1\n");
        assert_eq!(
            parse(&cut, "/proc/net/dev").unwrap_err().to_string(),
            "/proc/net/dev line 3: expected 16 counters, found 3"
        );
        assert_eq!(
            parse(&format!("{HEAD}lo 1 2\n"), "/proc/net/dev")
                .unwrap_err()
                .line,
            3
        );
        assert_eq!(parse("Inter-|\n", "/proc/net/dev").unwrap_err().line, 2);
    }
}
