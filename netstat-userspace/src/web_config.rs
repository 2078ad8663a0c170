//! `--web-config FILE`: TLS and basic authentication for the metrics
//! endpoint, in the Prometheus exporter-toolkit's format (the file every
//! official exporter takes as `--web.config.file`), read and checked once
//! at start. Supported: `tls_server_config` (`cert_file`, `key_file`,
//! `client_auth_type`, `client_ca_file`, `min_version`) and
//! `basic_auth_users` (bcrypt hashes). Any other key is refused rather than
//! ignored: a setting the user believes in must not silently do nothing.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use anyhow::Result;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use yaml_rust2::{Yaml, YamlLoader};

use crate::fail;

/// The endpoint's protection.
pub struct WebConfig {
    /// Serve HTTPS only.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name -> bcrypt hash; empty: no authentication.
    pub users: Vec<(String, String)>,
}

/// Reads and checks `path`; a one-line error (exit 2) names the file and
/// what is wrong.
pub fn load(path: &Path) -> Result<WebConfig> {
    let bad = |what: String| fail::usage(format!("--web-config {}: {what}", path.display()));
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let docs = YamlLoader::load_from_str(&text).map_err(|e| bad(e.to_string()))?;
    let empty = Yaml::Hash(Default::default());
    let top = docs.first().unwrap_or(&empty);
    let top = map(top, "the file").map_err(bad)?;
    // Relative paths are relative to the file, as the exporter-toolkit has it.
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut config = WebConfig {
        tls: None,
        users: Vec::new(),
    };
    for (key, value) in top {
        match key.as_str() {
            "tls_server_config" => config.tls = Some(tls(value, dir).map_err(bad)?),
            "basic_auth_users" => config.users = users(value).map_err(bad)?,
            other => return Err(bad(format!("unsupported key {other:?}"))),
        }
    }
    Ok(config)
}

/// A YAML mapping of string keys, or what it is instead.
fn map<'a>(value: &'a Yaml, what: &str) -> Result<Vec<(String, &'a Yaml)>, String> {
    match value {
        Yaml::Hash(hash) => hash
            .iter()
            .map(|(k, v)| match k {
                Yaml::String(k) => Ok((k.clone(), v)),
                _ => Err(format!("{what}: keys must be strings")),
            })
            .collect(),
        Yaml::Null => Ok(Vec::new()),
        _ => Err(format!("{what} must be a mapping")),
    }
}

fn string(value: &Yaml, key: &str) -> Result<String, String> {
    match value {
        Yaml::String(s) => Ok(s.clone()),
        _ => Err(format!("{key} must be a string")),
    }
}

fn users(value: &Yaml) -> Result<Vec<(String, String)>, String> {
    let mut users = Vec::new();
    for (user, hash) in map(value, "basic_auth_users")? {
        let hash = string(hash, &format!("basic_auth_users.{user}"))?;
        // A hash the bcrypt crate cannot read would refuse every password.
        if bcrypt::verify("", &hash).is_err() {
            return Err(format!("basic_auth_users.{user}: not a bcrypt hash"));
        }
        users.push((user, hash));
    }
    Ok(users)
}

const TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];

/// The TLS settings as rustls's server configuration.
fn tls(value: &Yaml, dir: &Path) -> Result<Arc<ServerConfig>, String> {
    let (mut cert, mut key, mut client_auth, mut client_ca) = (None, None, None, None);
    let mut versions: &[&rustls::SupportedProtocolVersion] = rustls::ALL_VERSIONS;
    for (k, v) in map(value, "tls_server_config")? {
        let s = string(v, &format!("tls_server_config.{k}"))?;
        match k.as_str() {
            "cert_file" => cert = Some(dir.join(s)),
            "key_file" => key = Some(dir.join(s)),
            "client_auth_type" => client_auth = Some(s),
            "client_ca_file" => client_ca = Some(dir.join(s)),
            "min_version" => {
                versions = match s.as_str() {
                    "TLS12" => rustls::ALL_VERSIONS,
                    "TLS13" => TLS13_ONLY,
                    _ => return Err(format!("min_version {s:?}: use TLS12 or TLS13")),
                }
            }
            other => return Err(format!("unsupported key tls_server_config.{other}")),
        }
    }
    let (Some(cert), Some(key)) = (cert, key) else {
        return Err("tls_server_config needs cert_file and key_file".into());
    };
    // ring builds with the C compiler alone (aws-lc-rs, rustls's default,
    // wants cmake); it lacks only the post-quantum key exchanges.
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(versions)
        .map_err(|e| e.to_string())?;
    let verifier = match (client_auth.as_deref(), client_ca) {
        (None | Some("NoClientCert"), None) => None,
        (Some(kind @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven")), Some(ca)) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(&ca)? {
                roots.add(c).map_err(|e| format!("{}: {e}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = match kind {
                "VerifyClientCertIfGiven" => verifier.allow_unauthenticated(),
                _ => verifier,
            };
            Some(verifier.build().map_err(|e| e.to_string())?)
        }
        (Some(kind), None) if kind != "NoClientCert" => {
            return Err(format!("client_auth_type {kind} needs client_ca_file"));
        }
        (kind, _) => {
            return Err(format!(
                "client_auth_type {kind:?} with client_ca_file: use NoClientCert (no CA), VerifyClientCertIfGiven or RequireAndVerifyClientCert"
            ));
        }
    };
    let builder = match verifier {
        Some(verifier) => builder.with_client_cert_verifier(verifier),
        None => builder.with_no_client_auth(),
    };
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| format!("{}: {e}", key.display()))?;
    let mut config = builder
        .with_single_cert(certificates(&cert)?, key)
        .map_err(|e| format!("{}: {e}", cert.display()))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

fn certificates(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{}: no PEM certificate", path.display()));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("enetstat-web-{}-{name}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn users_load_and_anything_unsupported_is_refused_by_name() {
        let hash = bcrypt::hash("secret", 4).unwrap();
        let ok = write("ok.yml", &format!("basic_auth_users:\n  alice: '{hash}'\n"));
        let config = load(&ok).unwrap();
        assert!(config.tls.is_none());
        assert_eq!(config.users, [("alice".to_string(), hash)]);
        for (text, says) in [
            (
                "http_server_config:\n  http2: false\n",
                "unsupported key \"http_server_config\"",
            ),
            ("basic_auth_users:\n  bob: plain\n", "not a bcrypt hash"),
            (
                "tls_server_config:\n  cert_file: a.crt\n",
                "needs cert_file and key_file",
            ),
            (
                "tls_server_config:\n  cipher_suites: []\n",
                "tls_server_config.cipher_suites",
            ),
            ("- a\n", "must be a mapping"),
        ] {
            let path = write("bad.yml", text);
            let error = load(&path).err().expect(text).to_string();
            assert!(error.contains(says), "{text:?}: {error}");
            assert!(error.starts_with("--web-config "), "{error}");
        }
    }
}
