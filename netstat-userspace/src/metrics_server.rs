//! The `--metrics` endpoint: `GET /metrics` answered from the kernel maps on
//! a thread of its own, so that a scrape never waits for the event loop and
//! the event loop never waits for a scrape. HTTP/1.1 by hand, one request
//! per connection: a scrape needs nothing more, and every limit is in view.
//!
//! Safe to expose: loopback unless told otherwise; only GET /metrics (404
//! for other paths, 405 for other methods); a request head of at most
//! `MAX_REQUEST` bytes that must arrive within `REQUEST_TIME`; at most
//! `MAX_CLIENTS` connections at once: a new one takes the place of the
//! oldest still sending its request (idle connections cannot shut a
//! scraper out), or is closed when all are being answered. With
//! `--web-config`, HTTPS only (a TLS handshake within `REQUEST_TIME`) and
//! basic authentication (401 otherwise).

use std::{
    collections::BTreeMap,
    net::{SocketAddr, TcpListener as StdListener},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use anyhow::{Context as _, Result};
use tokio::{
    io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _},
    net::TcpListener,
};

use crate::{
    cgroups::CgroupNames,
    fail,
    kernel::KernelCounts,
    metrics_guard::Guard,
    netns::{self, Selection},
    ports,
    procnet::sockstat::TcpPressure,
    render::metrics::{self, NetnsReading, Reading},
    sock_diag::{self, ListenerLoad},
    traffic::Traffic,
    web_config::WebConfig,
};

const MAX_REQUEST: usize = 8 * 1024;
const REQUEST_TIME: Duration = Duration::from_secs(5);
/// For writing the answer: a client that stops reading is dropped.
const ANSWER_TIME: Duration = Duration::from_secs(10);
const MAX_CLIENTS: usize = 16;

/// Binds the endpoint at the first of `wanted` that takes it, so a busy
/// address is said before anything is loaded.
pub fn bind(wanted: &[SocketAddr]) -> Result<StdListener> {
    let mut last = None;
    for &at in wanted {
        match StdListener::bind(at) {
            Ok(listener) => {
                listener.set_nonblocking(true)?;
                return Ok(listener);
            }
            Err(e) => last = Some((at, e)),
        }
    }
    let (at, e) = last.expect("at least one address");
    Err(fail::usage(format!(
        "cannot listen on {at} for --metrics: {e} (choose another address or port)"
    )))
}

/// Serves `listener` until the process ends, as `web` says (None: plain
/// HTTP, no authentication).
pub fn start(
    listener: StdListener,
    web: Option<WebConfig>,
    counts: Arc<KernelCounts>,
    namespaces: Selection,
    reset_reasons: Option<&'static [String]>,
) -> Result<()> {
    let local = listener.local_addr()?;
    let tls = web.as_ref().is_some_and(|w| w.tls.is_some());
    let authenticated = web.as_ref().is_some_and(|w| !w.users.is_empty());
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            match runtime {
                Ok(runtime) => runtime.block_on(serve(
                    listener,
                    Arc::new(Guard::new(web)),
                    counts,
                    (namespaces, reset_reasons),
                )),
                Err(e) => log::error!("metrics endpoint: no runtime: {e}"),
            }
        })
        .context("starting the metrics thread")?;
    let scheme = if tls { "https" } else { "http" };
    eprintln!("enetstat: serving metrics on {scheme}://{local}/metrics");
    let protected = tls && authenticated;
    if !(local.ip().is_loopback() || protected) {
        eprintln!(
            "enetstat: warning: {local} is reachable from other hosts, without TLS and authentication: whoever reaches it sees this host's connections (give --web-config, firewall it, or serve on 127.0.0.1)"
        );
    }
    Ok(())
}

/// What a scrape reads besides the counts: the namespaces watched, and the
/// kernel's reset reasons.
type Scope = (Selection, Option<&'static [String]>);

async fn serve(listener: StdListener, guard: Arc<Guard>, counts: Arc<KernelCounts>, scope: Scope) {
    let listener = match TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return log::error!("metrics endpoint: {e}"),
    };
    let clients = Arc::new(Clients::default());
    for id in 0u64.. {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        if !clients.make_room() {
            continue;
        }
        let waiting = Arc::new(AtomicBool::new(true));
        let (counts, guard) = (Arc::clone(&counts), Arc::clone(&guard));
        let (mine, all) = (Arc::clone(&waiting), Arc::clone(&clients));
        let task = tokio::spawn(async move {
            match &guard.tls {
                Some(tls) => {
                    // Plain HTTP, or a handshake too slow: dropped.
                    let handshake = tokio::time::timeout(REQUEST_TIME, tls.accept(stream));
                    if let Ok(Ok(stream)) = handshake.await {
                        answer(stream, &mine, &guard, &counts, scope).await;
                    }
                }
                None => answer(stream, &mine, &guard, &counts, scope).await,
            }
            all.remove(id);
        });
        // The task has not run yet (one thread): it cannot have removed
        // itself before it is added.
        clients.add(id, waiting, task.abort_handle());
    }
}

/// The connections being served, oldest first: id, whether it is still
/// waiting for its request, and the handle that ends it.
#[derive(Default)]
struct Clients(Mutex<Vec<(u64, Arc<AtomicBool>, tokio::task::AbortHandle)>>);

impl Clients {
    /// Whether a new connection may be served, after ending the oldest one
    /// still waiting for its request if all places are taken.
    fn make_room(&self) -> bool {
        let Ok(mut all) = self.0.lock() else {
            return false;
        };
        if all.len() < MAX_CLIENTS {
            return true;
        }
        let Some(at) = all.iter().position(|(_, w, _)| w.load(Ordering::Relaxed)) else {
            return false;
        };
        all.remove(at).2.abort();
        true
    }

    fn add(&self, id: u64, waiting: Arc<AtomicBool>, task: tokio::task::AbortHandle) {
        if let Ok(mut all) = self.0.lock() {
            all.push((id, waiting, task));
        }
    }

    fn remove(&self, id: u64) {
        if let Ok(mut all) = self.0.lock() {
            all.retain(|(i, _, _)| *i != id);
        }
    }
}

async fn answer<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    waiting: &AtomicBool,
    guard: &Guard,
    counts: &KernelCounts,
    scope: Scope,
) {
    let head = match tokio::time::timeout(REQUEST_TIME, read_head(&mut stream)).await {
        Ok(Some(head)) => head,
        Ok(None) => return respond(&mut stream, "400 Bad Request", "text/plain", "").await,
        // Too slow: dropped without an answer.
        Err(_) => return,
    };
    waiting.store(false, Ordering::Relaxed);
    if !guard.admits(&head).await {
        let body = "credentials needed\n";
        return respond(&mut stream, "401 Unauthorized", "text/plain", body).await;
    }
    let (status, kind, body) = match route(&head) {
        Route::Metrics { openmetrics } => match scrape(counts, scope) {
            Ok(text) if openmetrics => ("200 OK", metrics::OPENMETRICS, text),
            Ok(text) => (
                "200 OK",
                metrics::PROMETHEUS_TEXT,
                metrics::prometheus_text(&text),
            ),
            Err(e) => (
                "500 Internal Server Error",
                "text/plain",
                format!("{e:#}\n"),
            ),
        },
        Route::NotFound => ("404 Not Found", "text/plain", "only /metrics\n".into()),
        Route::WrongMethod => ("405 Method Not Allowed", "text/plain", "only GET\n".into()),
        Route::Bad => ("400 Bad Request", "text/plain", String::new()),
    };
    respond(&mut stream, status, kind, &body).await;
}

/// The request head (up to the blank line), or None when the client sent
/// more than `MAX_REQUEST` bytes without one, or closed.
async fn read_head<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Vec<u8>> {
    let mut head = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    loop {
        let n = stream.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        head.extend_from_slice(&buf[..n]);
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Some(head);
        }
        if head.len() > MAX_REQUEST {
            return None;
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Route {
    /// `openmetrics`: the client accepts it (Prometheus does); others get
    /// the older text format.
    Metrics {
        openmetrics: bool,
    },
    NotFound,
    WrongMethod,
    Bad,
}

fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::Bad;
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Route::Bad;
    };
    if !version.starts_with("HTTP/1.") {
        return Route::Bad;
    }
    let path = target.split('?').next().unwrap_or_default();
    match (path == "/metrics", method == "GET") {
        (false, _) => Route::NotFound,
        (true, false) => Route::WrongMethod,
        (true, true) => Route::Metrics {
            openmetrics: accepts_openmetrics(head),
        },
    }
}

fn accepts_openmetrics(head: &[u8]) -> bool {
    String::from_utf8_lossy(head).lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("accept:") && l.contains("application/openmetrics-text")
    })
}

async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, status: &str, kind: &str, body: &str) {
    let allow = match &status[..3] {
        "405" => "Allow: GET\r\n",
        "401" => "WWW-Authenticate: Basic realm=\"enetstat\"\r\n",
        _ => "",
    };
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\n{allow}Connection: close\r\n\r\n{body}",
        body.len()
    );
    let write = async {
        stream.write_all(text.as_bytes()).await?;
        stream.shutdown().await
    };
    // A client that does not read its answer in time is dropped.
    let _ = tokio::time::timeout(ANSWER_TIME, write).await;
}

/// Fills in `reading` from a namespace's `sock_diag::namespace_load` (None:
/// the namespace went away). Listeners' drops go by local address: the
/// sockets of one SO_REUSEPORT group are one listener to whoever connects.
fn add_load(reading: &mut NetnsReading, load: Option<(TcpPressure, Option<Vec<ListenerLoad>>)>) {
    let Some((pressure, listeners)) = load else {
        return;
    };
    let mut drops: BTreeMap<String, u64> = BTreeMap::new();
    for l in listeners.iter().flatten() {
        *drops.entry(l.local.to_string()).or_default() += l.drops;
    }
    reading.pressure = Some(pressure);
    reading.listeners = drops.into_iter().collect();
}

/// One scrape: the kernel's counts and each watched namespace's /proc
/// figures; with `--netns all`, namespace by namespace.
fn scrape(counts: &KernelCounts, (namespaces, reset_reasons): Scope) -> Result<String> {
    let counters = counts.counters()?;
    let load = |path: Option<&std::path::Path>| netns::inside(path, sock_diag::namespace_load);
    let mut by_remote: BTreeMap<String, u64> = BTreeMap::new();
    for (_, path) in namespaces.members() {
        // No sock_diag, or the namespace gone: nothing to count there.
        if let Ok(Some((_, held))) = netns::inside(path.as_deref(), ports::budget) {
            for ((_, remote), used) in held {
                *by_remote.entry(remote.to_string()).or_default() += used.in_use;
            }
        }
    }
    let ephemeral_by_remote = by_remote.into_iter().collect();
    let namespaces = match namespaces {
        Selection::One(_) => {
            let mut reading = NetnsReading {
                traffic: Traffic::from_stats(&counts.stats()?),
                ..NetnsReading::default()
            };
            add_load(&mut reading, load(None)?);
            vec![reading]
        }
        Selection::All => {
            let mut by_inode: BTreeMap<u32, NetnsReading> = BTreeMap::new();
            for (inode, stats) in counts.stats_by_netns()? {
                let reading = by_inode.entry(inode).or_default();
                reading.traffic = Traffic::from_stats(&stats);
            }
            for (inode, path) in namespaces.members() {
                add_load(by_inode.entry(inode).or_default(), load(path.as_deref())?);
            }
            by_inode
                .into_iter()
                .map(|(inode, reading)| NetnsReading {
                    netns: Some(inode),
                    ..reading
                })
                .collect()
        }
    };
    Ok(metrics::render(Reading {
        namespaces,
        lost_ring_full: counters.ring_full,
        lost_skipped: counters.unrecovered,
        lost_gaps: counters.gaps,
        reset_reasons,
        programs: counts.cost()?.map(|c| c.programs),
        opened_by_cgroup: opened_by_cgroup(counts)?,
        close_wait_by_program: close_wait_by_program(counts),
        ephemeral_by_remote,
    }))
}

/// Sockets in CLOSE_WAIT for 10 s or more, by owner's program.
fn close_wait_by_program(counts: &KernelCounts) -> Vec<(String, u64)> {
    const AGE_NS: u64 = 10_000_000_000;
    let since = crate::kernel::monotonic_ns().saturating_sub(AGE_NS);
    let mut by_program: BTreeMap<String, u64> = BTreeMap::new();
    for (owner, count, _) in crate::kernel::close_wait_leaks(&counts.remembered(), since) {
        let program = owner.map_or("-".to_string(), |o| crate::textfmt::c_string(&o.1));
        *by_program.entry(program).or_default() += count;
    }
    by_program.into_iter().collect()
}

/// Connects begun so far by cgroup path (cgroups that began none left out).
fn opened_by_cgroup(counts: &KernelCounts) -> Result<Vec<(String, u64)>> {
    let owners = counts.owners()?;
    // A member of each cgroup, to name it by where the hierarchy is not in view.
    let pids = crate::cgroups::members(owners.programs.iter().map(|(k, _)| k));
    let mut names = CgroupNames::new();
    let mut by_path: BTreeMap<String, u64> = BTreeMap::new();
    for (id, stats) in owners.cgroups {
        if stats.opened > 0 {
            let pid = pids.get(&id).copied().unwrap_or(0);
            *by_path.entry(names.path(id, pid).to_string()).or_default() += stats.opened;
        }
    }
    Ok(by_path.into_iter().collect())
}

#[cfg(test)]
mod tests {

    /// A full house of clients, those in `waiting` still sending their
    /// request; their tasks live in `runtime`.
    fn full_house(runtime: &tokio::runtime::Runtime, waiting: &[u64]) -> Clients {
        let clients = Clients::default();
        for id in 0..MAX_CLIENTS as u64 {
            let task = runtime.spawn(std::future::pending::<()>());
            let flag = Arc::new(AtomicBool::new(waiting.contains(&id)));
            clients.add(id, flag, task.abort_handle());
        }
        clients
    }

    #[test]
    fn a_full_house_displaces_its_oldest_waiting_client_only() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let ids = |c: &Clients| c.0.lock().unwrap().iter().map(|e| e.0).collect::<Vec<_>>();
        let clients = full_house(&runtime, &[5, 9]);
        assert!(clients.make_room());
        assert!(!ids(&clients).contains(&5), "the oldest still waiting goes");
        assert!(ids(&clients).contains(&9));
        assert_eq!(ids(&clients).len(), MAX_CLIENTS - 1);
        // Every client being answered: no room, and nobody displaced.
        let busy = full_house(&runtime, &[]);
        assert!(!busy.make_room());
        assert_eq!(ids(&busy).len(), MAX_CLIENTS);
        busy.remove(3);
        assert!(busy.make_room());
    }
    use super::*;

    #[test]
    fn only_get_of_metrics_is_answered() {
        let route = |head: &str| route(head.as_bytes());
        let metrics = |openmetrics| Route::Metrics { openmetrics };
        assert_eq!(
            route("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            metrics(false)
        );
        assert_eq!(route("GET /metrics?x=1 HTTP/1.0\r\n\r\n"), metrics(false));
        assert_eq!(
            route(
                "GET /metrics HTTP/1.1\r\nAccept: application/openmetrics-text;version=1.0.0\r\n\r\n"
            ),
            metrics(true)
        );
        assert_eq!(route("GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route("POST /metrics HTTP/1.1\r\n\r\n"), Route::WrongMethod);
        assert_eq!(route("GET /metrics\r\n\r\n"), Route::Bad);
        assert_eq!(route("\u{1}\u{2} garbage"), Route::Bad);
    }

    #[test]
    fn binds_the_first_address_that_takes_it() {
        let taken = bind(&["127.0.0.1:0".parse().unwrap()]).unwrap();
        let busy = taken.local_addr().unwrap();
        assert!(bind(&[busy]).is_err());
        let listener = bind(&[busy, "127.0.0.1:0".parse().unwrap()]).unwrap();
        assert!(listener.local_addr().unwrap().ip().is_loopback());
    }
}
