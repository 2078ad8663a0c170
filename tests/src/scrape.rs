//! Talking to enetstat's metrics endpoint from inside a test's namespace.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
};

use crate::{Netns, wait_limit};

/// One HTTP exchange with `endpoint` from inside `ns`: what the server
/// answered before it closed (empty when it closed or reset without a word).
pub fn exchange(ns: &Netns, endpoint: &str, request: &[u8]) -> String {
    ns.inside(|| {
        let mut stream = TcpStream::connect(endpoint).expect("connect to the endpoint");
        stream.set_read_timeout(Some(wait_limit())).unwrap();
        // A server that stops reading may reset the rest of a long request.
        let _ = stream.write_all(request);
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
}

/// The body of `GET /metrics` (the Prometheus text format), checked for 200.
pub fn scrape(ns: &Netns, endpoint: &str) -> String {
    let answer = exchange(ns, endpoint, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4"),
        "{head}"
    );
    body.to_string()
}

/// The value of the sample `series` (name and labels as printed) in a scrape.
pub fn sample(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {series} in\n{text}"))
}
