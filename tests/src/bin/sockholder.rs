//! Holds sockets open for the snapshot tests and benchmarks, inside a test's
//! network namespace, until its stdin closes.
//!
//! - `server`: one of every kind netstat lists: TCP listeners (IPv4, dual-stack
//!   IPv6, a long IPv6 address), UDP (bound), raw (IPv4, IPv6) and unix
//!   (stream and seqpacket listeners, an abstract datagram socket, an unnamed
//!   pair). Accepts whatever connects.
//! - `client`: connects to the server's listeners (one with keepalive and
//!   unread data), a connected UDP socket and connected unix sockets.
//! - `pairs`: a listener and N established loopback connections, both ends
//!   held here (the snapshot benchmark's load).
//!
//! Prints "ready" once everything is open.

use std::{
    ffi::CString,
    io::{Read, Write},
    net::{SocketAddr, TcpListener, TcpStream, UdpSocket},
    os::{
        fd::{FromRawFd, OwnedFd},
        linux::net::SocketAddrExt,
        unix::net::{SocketAddr as UnixAddr, UnixDatagram, UnixListener, UnixStream},
    },
    path::PathBuf,
};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
struct Args {
    #[command(subcommand)]
    role: Role,
}

#[derive(Subcommand)]
enum Role {
    Server {
        /// Directory for the unix socket files.
        #[arg(long)]
        dir: PathBuf,
        /// A long IPv6 address configured in the namespace (for -W).
        #[arg(long)]
        long_v6: SocketAddr,
    },
    Client {
        #[arg(long)]
        dir: PathBuf,
        #[arg(long)]
        long_v6: SocketAddr,
    },
    Pairs {
        #[arg(long)]
        listen: SocketAddr,
        #[arg(long)]
        count: usize,
    },
}

const TCP4: &str = "127.0.0.1:8080";
const TCP6: &str = "[::]:2222";
const UDP4: &str = "0.0.0.0:53";
const UDP6: &str = "[::1]:5353";

fn main() -> Result<()> {
    // Keeps every socket alive until the end of main.
    let mut held: Vec<Box<dyn std::any::Any>> = Vec::new();
    match Args::parse().role {
        Role::Server { dir, long_v6 } => {
            for addr in [TCP4, TCP6] {
                let listener = TcpListener::bind(addr).with_context(|| format!("bind {addr}"))?;
                held.push(Box::new(accept_forever(listener)));
            }
            held.push(Box::new(accept_forever(
                TcpListener::bind(long_v6).context("bind long v6")?,
            )));
            held.push(Box::new(UdpSocket::bind(UDP4)?));
            held.push(Box::new(UdpSocket::bind(UDP6)?));
            held.push(Box::new(raw(libc::AF_INET, libc::IPPROTO_ICMP)?));
            held.push(Box::new(raw(libc::AF_INET6, libc::IPPROTO_ICMPV6)?));
            let stream = UnixListener::bind(dir.join("stream.sock"))?;
            held.push(Box::new(std::thread::spawn(move || {
                let mut accepted = Vec::new();
                while let Ok((s, _)) = stream.accept() {
                    accepted.push(s);
                }
            })));
            held.push(Box::new(seqpacket_listener(&dir.join("seq.sock"))?));
            let name = format!("enetstat-test-{}", std::process::id());
            held.push(Box::new(UnixDatagram::bind_addr(
                &UnixAddr::from_abstract_name(name)?,
            )?));
            held.push(Box::new(UnixDatagram::pair()?));
        }
        Role::Client { dir, long_v6 } => {
            let mut keepalive = TcpStream::connect(TCP4)?;
            set_keepalive(&keepalive)?;
            // Unread on the server side: a non-zero Recv-Q.
            keepalive.write_all(&[7; 100])?;
            held.push(Box::new(keepalive));
            held.push(Box::new(TcpStream::connect("[::1]:2222")?));
            // IPv4 into the dual-stack listener: an IPv4-mapped tcp6 row.
            held.push(Box::new(TcpStream::connect("127.0.0.1:2222")?));
            held.push(Box::new(TcpStream::connect(long_v6)?));
            let udp = UdpSocket::bind("127.0.0.1:0")?;
            udp.connect("127.0.0.1:53")?;
            held.push(Box::new(udp));
            held.push(Box::new(UnixStream::connect(dir.join("stream.sock"))?));
            held.push(Box::new(seqpacket_connect(&dir.join("seq.sock"))?));
        }
        Role::Pairs { listen, count } => {
            let listener = TcpListener::bind(listen)?;
            let mut pairs = Vec::with_capacity(count);
            for _ in 0..count {
                let client = TcpStream::connect(listener.local_addr()?)?;
                let (server, _) = listener.accept()?;
                pairs.push((client, server));
            }
            held.push(Box::new(listener));
            held.push(Box::new(pairs));
        }
    }
    println!("ready");
    std::io::stdout().flush()?;
    // Hold until the test closes stdin (or kills us).
    let _ = std::io::stdin().read_to_end(&mut Vec::new());
    drop(held);
    Ok(())
}

/// Accepts and keeps connections on a thread for as long as we live.
fn accept_forever(listener: TcpListener) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let mut accepted = Vec::new();
        while let Ok((s, _)) = listener.accept() {
            accepted.push(s);
        }
    })
}

fn set_keepalive(s: &TcpStream) -> Result<()> {
    let on: libc::c_int = 1;
    tests::set_socket_option(s, libc::SO_KEEPALIVE, &on, "SO_KEEPALIVE")
}

fn socket(family: libc::c_int, kind: libc::c_int, protocol: libc::c_int) -> Result<OwnedFd> {
    // SAFETY: plain socket(2); the fd is owned from here on.
    let fd = unsafe { libc::socket(family, kind | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        bail!(
            "socket({family}, {kind}, {protocol}): {}",
            std::io::Error::last_os_error()
        );
    }
    // SAFETY: fd is fresh and valid.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn raw(family: libc::c_int, protocol: libc::c_int) -> Result<OwnedFd> {
    socket(family, libc::SOCK_RAW, protocol)
}

fn unix_addr(path: &std::path::Path) -> Result<(libc::sockaddr_un, libc::socklen_t)> {
    // SAFETY: sockaddr_un is plain data.
    let mut addr: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
    let bytes = CString::new(path.as_os_str().as_encoded_bytes())?;
    let bytes = bytes.as_bytes_with_nul();
    if bytes.len() > addr.sun_path.len() {
        bail!("{} is too long for a unix socket", path.display());
    }
    for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    Ok((addr, size_of::<libc::sockaddr_un>() as libc::socklen_t))
}

fn seqpacket_listener(path: &std::path::Path) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd as _;
    let fd = socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0)?;
    let (addr, len) = unix_addr(path)?;
    // SAFETY: valid fd and address.
    let ok = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        ) == 0
            && libc::listen(fd.as_raw_fd(), 16) == 0
    };
    if !ok {
        bail!("seqpacket listen: {}", std::io::Error::last_os_error());
    }
    Ok(fd)
}

fn seqpacket_connect(path: &std::path::Path) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd as _;
    let fd = socket(libc::AF_UNIX, libc::SOCK_SEQPACKET, 0)?;
    let (addr, len) = unix_addr(path)?;
    // SAFETY: valid fd and address.
    if unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_un).cast(),
            len,
        )
    } != 0
    {
        bail!("seqpacket connect: {}", std::io::Error::last_os_error());
    }
    Ok(fd)
}
