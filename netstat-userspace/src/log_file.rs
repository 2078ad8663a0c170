//! enetstat's own event log (`-E --json`) read back for `--replay`: each
//! line one typed record, and every error naming the file and the line.
//!
//! A log is self-contained: a `log` record (its format), a `snapshot`
//! group (the sockets present at start, closed by `snapshot_end`), then
//! events, loss marks and, after a loss, a `resync` group (closed by
//! `resync_end`) from which a reader is right again.

use std::{
    borrow::Cow,
    fs::File,
    io::{BufRead, BufReader, Read},
    net::SocketAddr,
    rc::Rc,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, Result, anyhow};
use serde::Deserialize;

use netstat_common::failure;

use crate::{
    clock,
    decoder::{CloseTotals, EventKind, Failure, NetEvent, StateAge},
    owners::Owner,
    procnet::sockets::InetSocket,
    tcp_state::TcpState,
};

/// The log's format, in its first record; a reader refuses any other.
pub const FORMAT: u32 = 1;

/// The first record's `event`.
pub const HEADER: &str = "log";

/// The `event` of a rotated file's last record: the file covers the time
/// up to it.
pub const ROTATED: &str = "rotated";

/// The two kinds of socket groups: what was there at start, and what a
/// resynchronisation after a loss found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    Snapshot,
    Resync,
}

impl Group {
    /// The `event` of each socket record of the group.
    pub fn name(self) -> &'static str {
        match self {
            Group::Snapshot => "snapshot",
            Group::Resync => "resync",
        }
    }

    /// The `event` of the record that closes the group.
    pub fn end_name(self) -> &'static str {
        match self {
            Group::Snapshot => "snapshot_end",
            Group::Resync => "resync_end",
        }
    }
}

/// One socket of a group, as the table starts from it.
#[derive(Debug, Clone)]
pub struct GroupRow {
    /// Endpoints, state; a timewait socket's timer (3) and time left in
    /// clock ticks of 10 ms. Queues are not in the log.
    pub socket: InetSocket,
    pub owner: Option<Owner>,
}

pub enum Record {
    Header,
    /// The header of a log this version cannot read (the reader refuses it).
    OtherFormat(Option<u32>),
    /// A socket of a snapshot or resync group.
    Row(GroupRow),
    /// The end of a group of `rows` sockets.
    GroupEnd {
        rows: u64,
    },
    Event(Box<NetEvent>),
    /// Events missing from the log at this point.
    Lost(u64),
    /// The file was rotated here: the next file goes on from this time.
    Rotated,
}

/// A record and when it was written (ns since the epoch).
pub struct Timed {
    pub wall_ns: i128,
    pub record: Record,
}

/// The fields a record may have; the rest are ignored.
#[derive(Deserialize)]
struct Raw<'a> {
    time: &'a str,
    event: &'a str,
    format: Option<u32>,
    rows: Option<u64>,
    pid: Option<u32>,
    #[serde(borrow)]
    program: Option<Cow<'a, str>>,
    proto: Option<&'a str>,
    local: Option<&'a str>,
    remote: Option<&'a str>,
    old_state: Option<&'a str>,
    new_state: Option<&'a str>,
    state: Option<&'a str>,
    #[serde(default)]
    peer_fin_pending: bool,
    #[serde(default)]
    inbound: bool,
    #[serde(default)]
    retransmits: u32,
    #[serde(default)]
    netns: u32,
    socket: Option<&'a str>,
    time_wait_left_ms: Option<f64>,
    lost: Option<u64>,
    #[serde(borrow)]
    cgroup: Option<Cow<'a, str>>,
    prev_state_ms: Option<f64>,
    failure: Option<&'a str>,
    lifetime_ms: Option<f64>,
    bytes_acked: Option<u64>,
    bytes_received: Option<u64>,
    srtt_ms: Option<f64>,
    total_retransmits: Option<u32>,
}

/// Reads a log record by record.
pub struct LogReader {
    name: String,
    input: Box<dyn BufRead>,
    /// Whether the input may still be growing: standard input, or a file
    /// written to in the last minute. Its unfinished last line is skipped.
    growing: bool,
    line_no: u64,
    line: String,
}

impl LogReader {
    /// Opens `path`, or standard input for `-`.
    pub fn open(path: &str) -> Result<Self> {
        let (input, growing): (Box<dyn Read>, bool) = if path == "-" {
            (Box::new(std::io::stdin()), true)
        } else {
            let file = File::open(path).with_context(|| format!("cannot read log {path}"))?;
            let recent = file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|at| SystemTime::now().duration_since(at).ok())
                .is_some_and(|age| age < Duration::from_secs(60));
            (Box::new(file), recent)
        };
        Ok(Self {
            name: if path == "-" {
                "<stdin>".into()
            } else {
                path.into()
            },
            input: Box::new(BufReader::with_capacity(1 << 20, input)),
            growing,
            line_no: 0,
            line: String::new(),
        })
    }

    /// The name errors give the input.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The line of the last record read.
    pub fn line_no(&self) -> u64 {
        self.line_no
    }

    /// The next record; None at the end.
    pub fn next(&mut self) -> Result<Option<Timed>> {
        loop {
            self.line.clear();
            let read = self
                .input
                .read_line(&mut self.line)
                .with_context(|| format!("{}:{}: cannot read", self.name, self.line_no + 1))?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let text = self.line.trim_end_matches('\n');
            if text.is_empty() {
                continue;
            }
            let finished = self.line.ends_with('\n');
            return match parse(text) {
                Ok(Timed {
                    record: Record::OtherFormat(format),
                    ..
                }) => Err(anyhow!(
                    "{}:{}: a log of format {} (this enetstat reads format {FORMAT}: replay it with the version that wrote it)",
                    self.name,
                    self.line_no,
                    format.map_or("unknown".into(), |f| f.to_string())
                )),
                Ok(record) => {
                    if self.line_no == 1 && !matches!(record.record, Record::Header) {
                        return Err(self.not_a_log());
                    }
                    Ok(Some(record))
                }
                Err(_) if !finished && self.growing => {
                    eprintln!(
                        "enetstat: note: {}:{}: the last line is unfinished (the log is still being written); skipped",
                        self.name, self.line_no
                    );
                    Ok(None)
                }
                Err(_) if !finished => Err(anyhow!(
                    "{}:{}: the last line is cut off: the log is truncated",
                    self.name,
                    self.line_no
                )),
                Err(_) if self.line_no == 1 => Err(self.not_a_log()),
                Err(e) => Err(anyhow!("{}:{}: {e}", self.name, self.line_no)),
            };
        }
    }

    fn not_a_log(&self) -> anyhow::Error {
        anyhow!(
            "{}:1: not an enetstat log of format {FORMAT} (write one with enetstat -E --json)",
            self.name
        )
    }
}

/// One line as a record.
pub fn parse(text: &str) -> Result<Timed> {
    let raw: Raw = serde_json::from_str(text).map_err(|e| anyhow!("not a log record ({e})"))?;
    let wall_ns =
        clock::parse_rfc3339(raw.time).ok_or_else(|| anyhow!("bad time {:?}", raw.time))?;
    let group = |name: &str| {
        [Group::Snapshot, Group::Resync]
            .into_iter()
            .find(|g| g.name() == name)
    };
    let group_end = |name: &str| {
        [Group::Snapshot, Group::Resync]
            .into_iter()
            .find(|g| g.end_name() == name)
    };
    let record = match raw.event {
        HEADER => match raw.format {
            Some(FORMAT) => Record::Header,
            other => Record::OtherFormat(other),
        },
        "lost" => Record::Lost(raw.lost.unwrap_or(0)),
        ROTATED => Record::Rotated,
        "state" => {
            let (old, new) = (
                state(raw.old_state, "old_state")?,
                state(raw.new_state, "new_state")?,
            );
            Record::Event(Box::new(event(
                &raw,
                wall_ns,
                EventKind::State { old, new },
                new,
            )?))
        }
        name @ ("send_reset" | "receive_reset" | "retransmit" | "retransmit_synack" | "drop") => {
            let kind = match name {
                "send_reset" => EventKind::ResetSent,
                "receive_reset" => EventKind::ResetReceived,
                "retransmit" => EventKind::Retransmit,
                "retransmit_synack" => EventKind::RetransmitSynack,
                _ => EventKind::Drop,
            };
            let now = raw
                .state
                .map_or(Ok(TcpState(0)), |_| state(raw.state, "state"))?;
            Record::Event(Box::new(event(&raw, wall_ns, kind, now)?))
        }
        name => {
            if group(name).is_some() {
                Record::Row(group_row(&raw)?)
            } else if group_end(name).is_some() {
                let rows = raw.rows.ok_or_else(|| anyhow!("{name} without rows"))?;
                Record::GroupEnd { rows }
            } else {
                return Err(anyhow!("unknown event {name:?}"));
            }
        }
    };
    Ok(Timed { wall_ns, record })
}

fn endpoint(value: Option<&str>, key: &str) -> Result<SocketAddr> {
    let text = value.ok_or_else(|| anyhow!("no {key}"))?;
    text.parse().map_err(|_| anyhow!("bad {key} {text:?}"))
}

fn state(value: Option<&str>, key: &str) -> Result<TcpState> {
    let text = value.ok_or_else(|| anyhow!("no {key}"))?;
    // What the log says of an event of no socket (a reset sent for none).
    if text == TcpState(0).name() {
        return Ok(TcpState(0));
    }
    TcpState::from_name(text).ok_or_else(|| anyhow!("bad {key} {text:?}"))
}

fn owner(raw: &Raw) -> Option<Owner> {
    Some(Owner {
        pid: raw.pid?,
        program: Rc::from(raw.program.as_deref().unwrap_or("")),
    })
}

fn group_row(raw: &Raw) -> Result<GroupRow> {
    let (local, remote) = (
        endpoint(raw.local, "local")?,
        endpoint(raw.remote, "remote")?,
    );
    let mut socket = InetSocket::from_endpoints(local, remote, state(raw.state, "state")?.0);
    socket.retransmits = u64::from(raw.retransmits);
    if let Some(ms) = raw.time_wait_left_ms {
        // The kernel's timewait timer, in /proc's 10 ms ticks.
        (socket.timer, socket.timer_ticks) = (3, (ms.max(0.0) / 10.0).round() as u64);
    }
    Ok(GroupRow {
        socket,
        owner: owner(raw),
    })
}

/// What the table reads of an event; the log's other fields (ages,
/// What the table and the summary read of an event (reasons are left out).
fn event(raw: &Raw, wall_ns: i128, kind: EventKind, now: TcpState) -> Result<NetEvent> {
    let ns = |ms: f64| (ms.max(0.0) * 1e6).round() as u64;
    let failure = match raw.failure {
        Some(name) => Some(
            failure::NAMES
                .iter()
                .position(|n| *n == name)
                .and_then(|v| Failure::of(v as u8))
                .ok_or_else(|| anyhow!("bad failure {name:?}"))?,
        ),
        None => None,
    };
    let totals = raw.bytes_acked.map(|bytes_acked| CloseTotals {
        lifetime_ns: raw.lifetime_ms.map(ns),
        bytes_acked,
        bytes_received: raw.bytes_received.unwrap_or(0),
        srtt_ns: raw.srtt_ms.map(ns),
        total_retransmits: raw.total_retransmits.unwrap_or(0),
    });
    let socket = raw.socket.unwrap_or("0");
    Ok(NetEvent {
        wall_ns,
        kind,
        state: now,
        ipv6: raw.proto == Some("tcp6"),
        local: endpoint(raw.local, "local")?,
        remote: endpoint(raw.remote, "remote")?,
        owner: owner(raw),
        cgroup: raw.cgroup.as_deref().map(Rc::from),
        age: raw.prev_state_ms.map(|ms| StateAge::Exact(ns(ms))),
        after_gap: false,
        peer_fin_pending: raw.peer_fin_pending,
        inbound: raw.inbound,
        retransmits: raw.retransmits,
        failure,
        reset_reason: None,
        drop_reason: None,
        totals,
        netns: raw.netns,
        socket: u64::from_str_radix(socket, 16).map_err(|_| anyhow!("bad socket {socket:?}"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER_LINE: &str =
        r#"{"time":"2026-12-07T03:00:00.000000000Z","event":"log","format":1,"version":"0.1.0"}"#;
    const ROW: &str = r#"{"time":"2026-12-07T03:00:00.000000001Z","event":"snapshot","pid":7,"program":"a\"b","proto":"tcp","local":"127.0.0.1:80","remote":"0.0.0.0:0","state":"LISTEN","socket":null,"time_wait_left_ms":null}"#;

    /// Every record of `text` (as a file written long ago), or the error.
    fn read(text: &str) -> Result<Vec<Timed>> {
        let path = std::env::temp_dir().join(format!(
            "enetstat-log-file-{}-{}",
            std::process::id(),
            text.len()
        ));
        std::fs::write(&path, text).unwrap();
        let mut reader = LogReader::open(path.to_str().unwrap())?;
        reader.growing = false;
        let mut all = Vec::new();
        let result = loop {
            match reader.next() {
                Ok(Some(r)) => all.push(r),
                Ok(None) => break Ok(all),
                Err(e) => break Err(e),
            }
        };
        std::fs::remove_file(&path).unwrap();
        result
    }

    #[test]
    fn reads_the_records_it_writes() {
        let end = r#"{"time":"2026-12-07T03:00:00.000000001Z","event":"snapshot_end","rows":1}"#;
        let records = read(&format!("{HEADER_LINE}\n{ROW}\n{end}\n")).unwrap();
        assert!(matches!(records[0].record, Record::Header));
        let Record::Row(row) = &records[1].record else {
            panic!("a row")
        };
        assert_eq!(row.socket.state, netstat_common::tcp_state::LISTEN);
        assert_eq!(row.owner.as_ref().unwrap().program.as_ref(), "a\"b");
        assert!(matches!(records[2].record, Record::GroupEnd { rows: 1 }));
        assert_eq!(records[2].wall_ns, 1_796_612_400_000_000_001);
    }

    #[test]
    fn bad_input_is_named_by_file_and_line() {
        let error = |text: &str| read(text).err().map(|e| e.to_string()).unwrap();
        assert!(
            error(&format!("{HEADER_LINE}\ngarbage\n{ROW}\n")).contains(":2: not a log record")
        );
        assert!(error(&format!("{ROW}\n")).contains(":1: not an enetstat log of format 1"));
        let other = HEADER_LINE.replace("\"format\":1", "\"format\":2");
        assert!(error(&format!("{other}\n")).contains(":1: a log of format 2"));
        let cut = &ROW[..40];
        assert!(error(&format!("{HEADER_LINE}\n{cut}")).contains(":2: the last line is cut off"));
        let unknown = ROW.replace("snapshot", "teleport");
        assert!(error(&format!("{HEADER_LINE}\n{unknown}\n")).contains("unknown event"));
    }
}
