//! Who may scrape the metrics endpoint (`--web-config`): the TLS acceptor
//! and the users' credentials, checked at a bounded cost so that a flood
//! of wrong passwords cannot take the CPU from the event path.

use std::{
    collections::{HashSet, VecDeque},
    sync::{
        Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use base64::Engine as _;

use crate::web_config::WebConfig;

/// Verified credentials kept at most (a scraper sends the same each time).
const VERIFIED_KEPT: usize = 64;
/// bcrypt checks at most per second, one at a time: each costs tens of
/// milliseconds of CPU; past this a request whose credentials were never
/// accepted gets 401 unchecked.
const CHECKS_PER_SECOND: usize = 4;

/// The TLS acceptor and the users, with the credentials already accepted
/// and the times of the last checks.
pub struct Guard {
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    users: Vec<(String, String)>,
    verified: Mutex<HashSet<String>>,
    checks: Mutex<VecDeque<Instant>>,
    /// A check is under way.
    checking: AtomicBool,
}

impl Guard {
    pub fn new(web: Option<WebConfig>) -> Self {
        let (tls, users) = web.map_or((None, Vec::new()), |w| (w.tls, w.users));
        Self {
            tls: tls.map(tokio_rustls::TlsAcceptor::from),
            users,
            verified: Default::default(),
            checks: Default::default(),
            checking: AtomicBool::new(false),
        }
    }

    /// Whether the request head carries the credentials of a user.
    pub async fn admits(&self, head: &[u8]) -> bool {
        if self.users.is_empty() {
            return true;
        }
        let Some(credentials) = basic_credentials(head) else {
            return false;
        };
        if self.verified.lock().is_ok_and(|v| v.contains(&credentials)) {
            return true;
        }
        let Some((user, password)) = decode_basic(&credentials) else {
            return false;
        };
        let Some(hash) = self
            .users
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, h)| h.clone())
        else {
            return false;
        };
        let Some(_checking) = self.start_check() else {
            return false;
        };
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await
            .is_ok_and(|r| r.unwrap_or(false));
        if let (true, Ok(mut kept)) = (ok, self.verified.lock()) {
            if kept.len() >= VERIFIED_KEPT {
                kept.clear();
            }
            kept.insert(credentials);
        }
        ok
    }

    /// A bcrypt check's turn, if one may start: none under way (one core
    /// at most), and room in this second's budget (taken here). The turn
    /// ends when dropped, however the check ends.
    fn start_check(&self) -> Option<Turn<'_>> {
        let mut checks = self.checks.lock().ok()?;
        if self.checking.load(Ordering::Relaxed) {
            return None;
        }
        let now = Instant::now();
        while checks
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(1))
        {
            checks.pop_front();
        }
        if checks.len() >= CHECKS_PER_SECOND {
            return None;
        }
        checks.push_back(now);
        self.checking.store(true, Ordering::Relaxed);
        Some(Turn(&self.checking))
    }
}

/// The token of an `Authorization: Basic` header.
fn basic_credentials(head: &[u8]) -> Option<String> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        let value = value.trim();
        let scheme = value.get(..6)?;
        (name.eq_ignore_ascii_case("authorization") && scheme.eq_ignore_ascii_case("basic "))
            .then(|| value[6..].trim().to_string())
    })
}

/// `user:password` from a Basic token.
fn decode_basic(token: &str) -> Option<(String, String)> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(token)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The check under way (`Guard::checking`), until dropped.
struct Turn<'a>(&'a AtomicBool);

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_basic_token_is_found_in_any_case_and_decoded() {
        let head = b"GET /metrics HTTP/1.1\r\nauthorization: basic YWxpY2U6c2VjcmV0\r\n\r\n";
        let token = basic_credentials(head).unwrap();
        assert_eq!(token, "YWxpY2U6c2VjcmV0");
        assert_eq!(
            decode_basic(&token),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            basic_credentials(b"GET / HTTP/1.1\r\nAuthorization: Bearer x\r\n\r\n"),
            None
        );
        assert_eq!(decode_basic("not base64!"), None);
    }

    #[test]
    fn checks_run_one_at_a_time_and_at_most_four_a_second() {
        let guard = Guard::new(None);
        let first = guard.start_check();
        assert!(first.is_some());
        // One under way: no other starts.
        assert!(guard.start_check().is_none());
        drop(first);
        for _ in 0..3 {
            assert!(guard.start_check().is_some());
        }
        // Four this second, each ended: the budget is spent.
        assert!(guard.start_check().is_none());
    }
}
