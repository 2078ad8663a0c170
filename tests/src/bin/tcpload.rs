//! Traffic for enetstat's tests and benchmarks, run inside a test's network
//! namespace. Each role is its own process so that tests can check that
//! events name the right owner.
//!
//! - `serve`: listen, accept N connections, read each to EOF (or reset), close.
//! - `connect`: connect, report, wait for a line on stdin, close.
//! - `storm`: a listener plus worker threads making N short connections,
//!   ended by client close, or with `--mix` every way a connection can end.
//! - `flood`: N non-blocking connects, held until stdin says anything.
//! - `stray-ack`: one bare TCP ACK (IPv4, raw socket) that belongs to no
//!   connection, which the receiving listener answers with a reset.
//!
//! Progress lines on stdout ("listening", "accepted", "connected", ...) let a
//! test step the two sides through an exact sequence.

use std::{
    io::{BufRead, Read, Write},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tests::set_socket_option;

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    Serve {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 1)]
        accept: u64,
        /// Close accepted sockets with a reset (SO_LINGER 0) instead of reading to EOF.
        #[arg(long)]
        rst: bool,
        /// Keep every accepted socket open, never reading or closing it,
        /// until stdin closes or says anything (a CLOSE_WAIT leak).
        #[arg(long)]
        hold: bool,
    },
    Connect {
        #[arg(long)]
        to: SocketAddr,
        /// Close with a reset (SO_LINGER 0).
        #[arg(long)]
        rst: bool,
        /// Give up after this long; 0: a blocking connect, which only the
        /// kernel ends.
        #[arg(long, default_value_t = 5000)]
        timeout_ms: u64,
        /// Bytes to send once connected.
        #[arg(long, default_value_t = 0)]
        send: usize,
    },
    /// Listens with this backlog and never accepts, until stdin closes or
    /// says anything: connections wait in the accept queue.
    Listen {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long, default_value_t = 128)]
        backlog: i32,
    },
    /// Starts `count` non-blocking connects to `to` without waiting for
    /// them, holds the sockets until stdin closes or says anything.
    Flood {
        #[arg(long)]
        to: std::net::SocketAddrV4,
        #[arg(long)]
        count: u32,
    },
    StrayAck {
        #[arg(long)]
        from: std::net::SocketAddrV4,
        #[arg(long)]
        to: std::net::SocketAddrV4,
    },
    Storm {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        count: u64,
        #[arg(long, default_value_t = 4)]
        workers: u64,
        /// Clients close with a reset instead of a FIN.
        #[arg(long)]
        rst: bool,
        /// Cycle through every ending (see `Ending`) instead.
        #[arg(long, conflicts_with = "rst")]
        mix: bool,
    },
}

/// How a storm connection ends.
#[derive(Clone, Copy, PartialEq)]
enum Ending {
    /// The client closes first (it ends in TIME_WAIT).
    ClientClose,
    /// The server closes first (the server's socket ends in TIME_WAIT).
    ServerClose,
    ClientReset,
    ServerReset,
    /// A connect to a port nobody listens on.
    Refused,
}

impl Ending {
    fn of(connection: u64, mix: bool, rst: bool) -> Self {
        const ALL: [Ending; 5] = [
            Ending::ClientClose,
            Ending::ServerClose,
            Ending::ClientReset,
            Ending::ServerReset,
            Ending::Refused,
        ];
        match (mix, rst) {
            (true, _) => ALL[(connection % 5) as usize],
            (false, true) => Ending::ClientReset,
            (false, false) => Ending::ClientClose,
        }
    }

    /// What the client sends so that the server knows its part.
    fn request(self) -> &'static [u8] {
        match self {
            Ending::ServerClose => b"S",
            Ending::ServerReset => b"R",
            _ => b"",
        }
    }
}

fn main() -> Result<()> {
    match Args::parse().role {
        Role::Serve {
            listen,
            accept,
            rst,
            hold,
        } => serve(listen, accept, rst, hold),
        Role::Connect {
            to,
            rst,
            timeout_ms,
            send,
        } => connect(to, rst, Duration::from_millis(timeout_ms), send),
        Role::Listen { listen, backlog } => listen_only(listen, backlog),
        Role::Flood { to, count } => flood(to, count),
        Role::StrayAck { from, to } => stray_ack(from, to),
        Role::Storm {
            listen,
            count,
            workers,
            rst,
            mix,
        } => storm(listen, count, workers, move |i| Ending::of(i, mix, rst)),
    }
}

fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn set_linger_zero(stream: &TcpStream) -> Result<()> {
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    set_socket_option(stream, libc::SO_LINGER, &linger, "SO_LINGER")
}

fn set_timeout(listener: &TcpListener, timeout: Duration) -> Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    set_socket_option(listener, libc::SO_RCVTIMEO, &tv, "SO_RCVTIMEO")
}

fn listen_only(listen: SocketAddr, backlog: i32) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    // SAFETY: valid listening socket.
    if unsafe { libc::listen(listener.as_raw_fd(), backlog) } != 0 {
        bail!("listen: {}", std::io::Error::last_os_error());
    }
    say("listening");
    until_told()?;
    drop(listener);
    say("closed");
    Ok(())
}

/// Waits until stdin closes or says anything (the test's `close`).
fn until_told() -> Result<()> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(())
}

fn flood(to: std::net::SocketAddrV4, count: u32) -> Result<()> {
    // SAFETY: a zeroed sockaddr_in, then filled in.
    let mut addr: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    addr.sin_family = libc::AF_INET as u16;
    addr.sin_port = to.port().to_be();
    addr.sin_addr.s_addr = u32::from(*to.ip()).to_be();
    let mut sockets = Vec::new();
    for _ in 0..count {
        // SAFETY: plain socket(2); the fd is owned right after.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0) };
        if fd < 0 {
            bail!("socket: {}", std::io::Error::last_os_error());
        }
        // SAFETY: a fresh fd nobody else owns.
        sockets.push(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) });
        // SAFETY: connect(2) with a valid address of its size.
        let rc = unsafe {
            libc::connect(
                fd,
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in>() as u32,
            )
        };
        let err = std::io::Error::last_os_error();
        if rc != 0 && err.raw_os_error() != Some(libc::EINPROGRESS) {
            bail!("connect {to}: {err}");
        }
    }
    say("flooded");
    until_told()?;
    drop(sockets);
    say("closed");
    Ok(())
}

fn serve(listen: SocketAddr, accept: u64, rst: bool, hold: bool) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    say("listening");
    let mut held = Vec::new();
    for _ in 0..accept {
        let (mut stream, _) = listener.accept().context("accept")?;
        say("accepted");
        if hold {
            held.push(stream);
            continue;
        }
        if rst {
            set_linger_zero(&stream)?;
        } else {
            // Until the peer's FIN (EOF) or reset.
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
        drop(stream);
        say("closed");
    }
    if hold {
        until_told()?;
        drop(held);
        say("closed");
    }
    Ok(())
}

/// Sends a 20-byte TCP header with only ACK set from `from` to `to`; the
/// kernel adds the IP header, the checksum is ours.
fn stray_ack(from: std::net::SocketAddrV4, to: std::net::SocketAddrV4) -> Result<()> {
    let mut tcp = [0u8; 20];
    tcp[0..2].copy_from_slice(&from.port().to_be_bytes());
    tcp[2..4].copy_from_slice(&to.port().to_be_bytes());
    tcp[4..8].copy_from_slice(&1u32.to_be_bytes()); // sequence
    tcp[8..12].copy_from_slice(&1u32.to_be_bytes()); // acknowledgement
    tcp[12] = 5 << 4; // header length in 32-bit words
    tcp[13] = 0x10; // ACK
    tcp[14..16].copy_from_slice(&1024u16.to_be_bytes()); // window
    // Checksum over the IPv4 pseudo-header and the segment.
    let mut sum: u32 = 0;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
    };
    add(&from.ip().octets());
    add(&to.ip().octets());
    add(&[0, libc::IPPROTO_TCP as u8, 0, tcp.len() as u8]);
    add(&tcp);
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    tcp[16..18].copy_from_slice(&(!(sum as u16)).to_be_bytes());

    // SAFETY: plain socket calls with buffers of the sizes passed.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_TCP);
        if fd < 0 {
            bail!("raw socket: {}", std::io::Error::last_os_error());
        }
        let mut dst: libc::sockaddr_in = std::mem::zeroed();
        dst.sin_family = libc::AF_INET as libc::sa_family_t;
        dst.sin_addr.s_addr = u32::from_ne_bytes(to.ip().octets());
        let sent = libc::sendto(
            fd,
            tcp.as_ptr().cast(),
            tcp.len(),
            0,
            (&dst as *const libc::sockaddr_in).cast(),
            size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        libc::close(fd);
        if sent != tcp.len() as isize {
            bail!("sendto: {}", std::io::Error::last_os_error());
        }
    }
    say("sent");
    Ok(())
}

fn connect(to: SocketAddr, rst: bool, timeout: Duration, send: usize) -> Result<()> {
    let connected = match timeout.is_zero() {
        true => TcpStream::connect(to),
        false => TcpStream::connect_timeout(&to, timeout),
    };
    let mut stream = match connected {
        Ok(stream) => stream,
        Err(e) => {
            say(&format!("failed {:?}", e.kind()));
            return Ok(());
        }
    };
    stream.write_all(&vec![b'x'; send]).context("send")?;
    say("connected");
    until_told()?;
    if rst {
        set_linger_zero(&stream)?;
    }
    drop(stream);
    say("closed");
    Ok(())
}

/// Makes `count` connections to an in-process listener as fast as `workers`
/// threads can, ending connection i as `ending(i)`; prints the rate. The
/// listener closes last, so every connection's events precede its
/// LISTEN -> CLOSE.
fn storm(
    listen: SocketAddr,
    count: u64,
    workers: u64,
    ending: impl Fn(u64) -> Ending + Copy + Send + 'static,
) -> Result<()> {
    let listener = TcpListener::bind(listen).with_context(|| format!("bind {listen}"))?;
    // std listens with a backlog of 128; a storm overflows that and the kernel
    // drops SYNs, which costs a 1 s retransmit each. Listening again resizes it.
    // SAFETY: valid listening socket.
    if unsafe { libc::listen(listener.as_raw_fd(), 65535) } != 0 {
        bail!("listen: {}", std::io::Error::last_os_error());
    }
    // accept() gives up after a second without connections, so a connection
    // reset before it was accepted cannot leave the server waiting forever.
    set_timeout(&listener, Duration::from_secs(1))?;
    let to_accept = (0..count).filter(|&i| ending(i) != Ending::Refused).count() as u64;
    let mut refused_at = listen;
    refused_at.set_port(listen.port() + 1);
    let clients_done = Arc::new(AtomicBool::new(false));
    let accepted = Arc::new(AtomicU64::new(0));
    let servers: Vec<_> = (0..workers)
        .map(|_| {
            let listener = listener.try_clone()?;
            let clients_done = Arc::clone(&clients_done);
            let accepted = Arc::clone(&accepted);
            Ok(std::thread::spawn(move || {
                serve_storm(&listener, &accepted, to_accept, &clients_done)
            }))
        })
        .collect::<Result<_>>()?;
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let clients: Vec<_> = (0..workers)
        .map(|_| {
            let next = Arc::clone(&next);
            std::thread::spawn(move || -> Result<Instant> {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok(Instant::now());
                    }
                    client(listen, refused_at, ending(i))?;
                }
            })
        })
        .collect();
    // The storm ends with its last connection, not when the server threads
    // notice (up to the accept timeout later).
    let mut ended = started;
    for client in clients {
        ended = ended.max(client.join().expect("client thread")?);
    }
    clients_done.store(true, Ordering::Release);
    for server in servers {
        ended = ended.max(server.join().expect("server thread")?.unwrap_or(started));
    }
    let secs = ended.duration_since(started).as_secs_f64();
    say(&format!(
        "storm {count} connections in {secs:.3} s: {:.0} conn/s",
        count as f64 / secs
    ));
    Ok(())
}

/// A storm's server thread: accepts until `to_accept` connections are
/// accepted in all, or the clients are done; closes each as its client
/// asks (`R`: with a reset). Returns when it finished its last connection.
fn serve_storm(
    listener: &TcpListener,
    accepted: &AtomicU64,
    to_accept: u64,
    clients_done: &AtomicBool,
) -> Result<Option<Instant>> {
    let mut last_done = None;
    while accepted.load(Ordering::Relaxed) < to_accept {
        match listener.accept() {
            Ok((mut stream, _)) => {
                accepted.fetch_add(1, Ordering::Relaxed);
                // The client's request, or its FIN or reset.
                let mut buf = [0u8; 1];
                if matches!(stream.read(&mut buf), Ok(1)) && buf[0] == b'R' {
                    set_linger_zero(&stream)?;
                }
                drop(stream);
                last_done = Some(Instant::now());
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if clients_done.load(Ordering::Acquire) {
                    break;
                }
            }
            Err(e) => return Err(e).context("accept"),
        }
    }
    Ok(last_done)
}

/// One storm connection, ended as `ending` says.
fn client(listen: SocketAddr, refused_at: SocketAddr, ending: Ending) -> Result<()> {
    if ending == Ending::Refused {
        return match TcpStream::connect(refused_at) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
            other => bail!("connect to {refused_at}: expected a refusal, got {other:?}"),
        };
    }
    let mut stream = TcpStream::connect(listen).context("connect")?;
    match ending {
        Ending::ClientReset => set_linger_zero(&stream)?,
        Ending::ServerClose | Ending::ServerReset => {
            stream.write_all(ending.request()).context("send request")?;
            // Until the server's FIN or reset.
            let mut sink = Vec::new();
            let _ = stream.read_to_end(&mut sink);
        }
        Ending::ClientClose | Ending::Refused => {}
    }
    Ok(())
}
