//! `--metrics --web-config`: the endpoint over TLS with basic
//! authentication, scraped by a real Prometheus as it scrapes an exporter
//! that uses the exporter-toolkit.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use tests::{
    Netns, Tracer,
    scrape::{Prometheus, exchange, prometheus_counts_a_mixed_storm},
};

const ENDPOINT: &str = "127.0.0.1:9977";

/// A CA, a certificate for 127.0.0.1 that it signed, and a web
/// configuration with user alice (password "secret"), in `dir`.
fn tls_files(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("san"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    let new_key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    for args in [
        format!("req -x509 {new_key} -keyout ca.key -out ca.crt -days 2 -subj /CN=test-CA"),
        format!("req {new_key} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt -days 2 -extfile san".to_string(),
    ] {
        let out = Command::new("openssl")
            .args(args.split(' '))
            .current_dir(dir)
            .output()
            .expect("openssl");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "openssl {args}: {stderr}");
    }
    let hash = bcrypt::hash("secret", 4).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\nbasic_auth_users:\n  alice: '{hash}'\n"
        ),
    )
    .unwrap();
    web
}

/// The HTTP status curl gets for `GET /metrics` over TLS as `user:password`.
fn status(ns: &Netns, ca: &Path, credentials: &str) -> String {
    let out = ns
        .command("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "--cacert"])
        .arg(ca)
        .args(["-u", credentials, &format!("https://{ENDPOINT}/metrics")])
        .output()
        .expect("curl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn over_tls_with_basic_auth_a_real_prometheus_counts_a_storm_exactly() {
    let ns = Netns::new("metrics-tls");
    let dir = std::env::temp_dir().join(format!("{}-tls", ns.name));
    let web = tls_files(&dir);
    let ca = dir.join("ca.crt");
    // The storm goes to 127.0.0.2: the scrapes' own connections are not counted.
    let tracer = Tracer::start(
        &ns,
        &[
            "--metrics",
            ENDPOINT,
            "--addr",
            "127.0.0.2/32",
            "--web-config",
            web.to_str().unwrap(),
        ],
    );
    assert_eq!(status(&ns, &ca, "alice:wrong"), "401");
    assert_eq!(status(&ns, &ca, "alice:secret"), "200");
    // Plain HTTP to the TLS port gets no HTTP answer; the scrapes after it work.
    let plain = exchange(
        &ns,
        ENDPOINT,
        b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n",
    );
    assert!(!plain.starts_with("HTTP/"), "{plain}");
    let job = format!(
        "    scheme: https\n    tls_config:\n      ca_file: {}\n    basic_auth:\n      username: alice\n      password: secret\n",
        ca.display()
    );
    let prometheus = Prometheus::start(&ns, ENDPOINT, &job);
    let result = prometheus_counts_a_mixed_storm(&ns, &prometheus);
    drop(prometheus);
    let out = tracer.stop();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(result, Ok(()));
    assert!(out.status.success(), "{:?}", out.stderr);
    assert_eq!(out.stop_object()["lost"], 0);
}
