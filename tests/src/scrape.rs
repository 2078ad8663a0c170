//! Talking to enetstat's metrics endpoint from inside a test's namespace.

use std::{
    io::{Read as _, Write as _},
    net::TcpStream,
    process::{Child, Stdio},
    time::{Duration, Instant},
};

use crate::{Netns, storm, wait_limit};

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
    checked_body(exchange(
        ns,
        endpoint,
        b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n",
    ))
}

/// As `scrape`, with the Basic authorization `token`.
pub fn scrape_as(ns: &Netns, endpoint: &str, token: &str) -> String {
    let request = format!("GET /metrics HTTP/1.1\r\nAuthorization: Basic {token}\r\n\r\n");
    checked_body(exchange(ns, endpoint, request.as_bytes()))
}

fn checked_body(answer: String) -> String {
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

/// A Prometheus server in `ns` scraping the endpoint every second, with its
/// data in a directory of its own. Killed on drop.
pub struct Prometheus {
    child: Child,
    dir: std::path::PathBuf,
}

impl Prometheus {
    const WEB: &str = "127.0.0.1:9090";

    /// Scraping `endpoint`, with `job` appended to its scrape job (indented
    /// four spaces: `scheme`, `tls_config`, `basic_auth`).
    pub fn start(ns: &Netns, endpoint: &str, job: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{}-prometheus", ns.name));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: enetstat\n    static_configs:\n      - targets: ['{endpoint}']\n{job}"
            ),
        )
        .unwrap();
        let child = ns
            .command("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={}", Self::WEB))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("prometheus (cargo xtask setup installs it)");
        Self { child, dir }
    }

    /// The value of an instant query's single result, None while there is none.
    pub fn query(&self, ns: &Netns, promql: &str) -> Option<f64> {
        let url = format!("http://{}/api/v1/query", Self::WEB);
        let out = ns
            .command("curl")
            .args(["-s", "-G", "--data-urlencode"])
            .arg(format!("query={promql}"))
            .arg(url)
            .output()
            .ok()?;
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits (bounded) until every query gives its value; the last values
    /// seen otherwise.
    pub fn wait_for(&self, ns: &Netns, want: &[(&str, f64)]) -> Result<(), String> {
        // Starting Prometheus under emulation takes a while: a wider bound.
        let deadline = Instant::now() + wait_limit() * 3;
        loop {
            let got: Vec<Option<f64>> = want.iter().map(|(q, _)| self.query(ns, q)).collect();
            if want.iter().zip(&got).all(|((_, w), g)| *g == Some(*w)) {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.join("log")).unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(5).collect();
                return Err(format!("wanted {want:?}, got {got:?}; log ends {tail:?}"));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits until `prometheus` scrapes, then runs 2,000 connections to a
/// server of their own on 127.0.0.2:7000, one in five to a port nobody
/// listens on (1,600 accepted, two ends each; 400 refused), and waits
/// until Prometheus has counted them all.
pub fn prometheus_counts_a_mixed_storm(ns: &Netns, prometheus: &Prometheus) -> Result<(), String> {
    prometheus.wait_for(ns, &[("up{job=\"enetstat\"}", 1.0)])?;
    storm(ns, "127.0.0.2:7000", 2_000, &["--mix"]);
    prometheus.wait_for(
        ns,
        &[
            (
                "enetstat_connections_opened_total{direction=\"active\"}",
                2_000.0,
            ),
            (
                "enetstat_connections_opened_total{direction=\"passive\"}",
                1_600.0,
            ),
            ("enetstat_connections_closed_total", 3_600.0),
            ("enetstat_connect_failures_total{reason=\"refused\"}", 400.0),
        ],
    )
}
