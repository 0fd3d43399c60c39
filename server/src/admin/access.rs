//! Who may use the admin endpoint: the `Host` a request names, its token, and how many wrong
//! tokens an address may try.
//!
//! **Host.** A page on another site can make a browser on the operator's machine send requests
//! to a loopback port, and by pointing its own DNS name at 127.0.0.1 after the page loaded (DNS
//! rebinding) it can also read the answers: the browser thinks it talks to `evil.example`. The
//! browser then sends `Host: evil.example:PORT`, which no operator's request carries, so a
//! request is refused (421) unless its `Host` is this endpoint ([`Hosts::allows`]): the bind
//! address itself; `localhost:PORT` for a loopback or wildcard bind; for a wildcard bind
//! (`0.0.0.0`, `[::]`) any IP address with the port, since the address a client dialled is not
//! known here and a rebinding page can only name its own DNS name; or an `[admin]
//! allowed_hosts` entry (a DNS name operators use). `/healthz` and `/readyz` take any `Host`:
//! they say nothing but "ok" and change nothing, and Kubernetes' probes send
//! `Host: POD_IP:PORT`, which a server bound to a pod's IP or a wildcard cannot list ahead.
//!
//! **Token.** Compared in a time that does not depend on where it differs; at least
//! [`MIN_TOKEN_LEN`](crate::config::MIN_TOKEN_LEN) characters (checked at start-up).
//!
//! **Throttle.** Each address may fail [`FAILURE_BURST`] times at once, then one more every
//! [`FAILURE_REFILL`]: beyond, its requests (right or wrong) get 429 with `Retry-After`, so
//! guessing a 16-character token takes forever. The table of addresses is bounded
//! ([`MAX_TRACKED`]); when full, the address that failed longest ago is forgotten.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, header};
use base64::Engine;

use super::slots::Source;

/// Wrong tokens an address may send at once.
pub const FAILURE_BURST: u32 = 5;
/// After the burst, one more wrong token per this.
pub const FAILURE_REFILL: Duration = Duration::from_secs(1);
/// Addresses whose failures are remembered at once.
pub const MAX_TRACKED: usize = 4096;

/// The `Host` values a request may name.
pub(crate) struct Hosts {
    bind: SocketAddr,
    /// `[admin] allowed_hosts`, lower case: `name` (any port) or `name:port`.
    allowed: Vec<String>,
}

impl Hosts {
    pub fn new(bind: SocketAddr, allowed: &[String]) -> Self {
        Self { bind, allowed: allowed.iter().map(|h| h.to_ascii_lowercase()).collect() }
    }

    /// Whether a request naming `host` (its `Host` header) is for this endpoint.
    pub fn allows(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let (name, port) = split_host(&host);
        let Some(port) = port else { return false };
        if self.allowed.iter().any(|a| *a == host || *a == name) {
            return true;
        }
        if port != self.bind.port() {
            return false;
        }
        let wildcard = self.bind.ip().is_unspecified();
        match name.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
            Ok(ip) => wildcard || ip == self.bind.ip(),
            Err(_) => name == "localhost" && (wildcard || self.bind.ip().is_loopback()),
        }
    }
}

/// `name:port` into its name and port (80 when none is given; `None` when it is not a port).
fn split_host(host: &str) -> (&str, Option<u16>) {
    let colon = if host.starts_with('[') { host.rfind("]:").map(|at| at + 1) } else { host.rfind(':') };
    match colon {
        Some(at) => (&host[..at], host[at + 1..].parse().ok()),
        None => (host, Some(80)),
    }
}

/// Whether the request carries `token`: `Authorization: Bearer TOKEN`, or Basic credentials
/// whose password is the token (what a browser sends after asking; the user name is ignored).
pub(crate) fn authorized(token: &str, headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) else { return false };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return same_secret(credentials.as_bytes(), token.as_bytes());
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else { return false };
        let password = decoded.iter().position(|b| *b == b':').map_or(&[][..], |at| &decoded[at + 1..]);
        return same_secret(password, token.as_bytes());
    }
    false
}

/// Compares two secrets in a time that does not depend on where they differ (only on their
/// lengths), so response times do not reveal the token byte by byte.
fn same_secret(given: &[u8], token: &[u8]) -> bool {
    given.len() == token.len() && given.iter().zip(token).fold(0u8, |diff, (a, b)| diff | (a ^ b)) == 0
}

/// Failed authentications per address: a token bucket each.
#[derive(Default)]
pub(crate) struct Failures(Mutex<HashMap<Source, Bucket>>);

#[derive(Debug, Clone, Copy)]
struct Bucket {
    /// Failures it may still make now.
    left: f64,
    at: Instant,
}

impl Bucket {
    fn now(self, now: Instant) -> Self {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() / FAILURE_REFILL.as_secs_f64();
        Bucket { left: (self.left + refill).min(f64::from(FAILURE_BURST)), at: now }
    }
}

impl Failures {
    /// How long `source` must wait before it may try again, if it has used up its failures.
    pub fn wait(&self, source: Source, now: Instant) -> Option<Duration> {
        let table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = table.get(&source)?.now(now);
        (bucket.left < 1.0).then(|| FAILURE_REFILL.mul_f64(1.0 - bucket.left))
    }

    /// Counts one failure of `source`.
    pub fn failed(&self, source: Source, now: Instant) {
        let mut table = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if table.len() >= MAX_TRACKED && !table.contains_key(&source) {
            table.retain(|_, b| b.now(now).left < f64::from(FAILURE_BURST));
            if table.len() >= MAX_TRACKED
                && let Some(oldest) = table.iter().min_by_key(|(_, b)| b.at).map(|(s, _)| *s)
            {
                table.remove(&oldest);
            }
        }
        let full = Bucket { left: f64::from(FAILURE_BURST), at: now };
        let bucket = table.get(&source).copied().unwrap_or(full).now(now);
        table.insert(source, Bucket { left: bucket.left - 1.0, at: now });
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn the_token_comes_as_bearer_or_as_a_basic_password() {
        let basic = |user_pass: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass));
        let with = |value: &str| authorized("s3cret", &headers(&[(header::AUTHORIZATION, value)]));
        assert!(with("Bearer s3cret"));
        assert!(with("bearer  s3cret "));
        assert!(with(&basic("admin:s3cret")));
        assert!(with(&basic(":s3cret")));
        assert!(!with("Bearer s3cre"));
        assert!(!with("Bearer s3crett"));
        assert!(!with("Bearer"));
        assert!(!with(&basic("s3cret")), "no colon: no password");
        assert!(!with(&basic("admin:wrong")));
        assert!(!with("Basic !!!not-base64"));
        assert!(!with("Token s3cret"));
        assert!(!authorized("s3cret", &HeaderMap::new()));
    }

    #[test]
    fn only_this_endpoints_names_are_hosts() {
        let loopback = Hosts::new("127.0.0.1:9100".parse().unwrap(), &[]);
        for host in ["127.0.0.1:9100", "localhost:9100", "LOCALHOST:9100"] {
            assert!(loopback.allows(host), "{host}");
        }
        for host in
            ["evil.example:9100", "evil.example", "127.0.0.1:9101", "127.0.0.2:9100", "127.0.0.1", "", "localhost:x"]
        {
            assert!(!loopback.allows(host), "{host}");
        }
        let v6 = Hosts::new("[::1]:9100".parse().unwrap(), &[]);
        assert!(v6.allows("[::1]:9100") && v6.allows("localhost:9100") && !v6.allows("127.0.0.1:9100"));
        let wildcard = Hosts::new("0.0.0.0:9100".parse().unwrap(), &["Admin.Example.com".into(), "ops:8443".into()]);
        for host in ["10.1.2.3:9100", "[fd00::1]:9100", "localhost:9100", "admin.example.com", "ops:8443"] {
            assert!(wildcard.allows(host), "{host}");
        }
        for host in ["evil.example:9100", "10.1.2.3:80", "ops:8444", "admin.example.com.evil:9100"] {
            assert!(!wildcard.allows(host), "{host}");
        }
        let pod = Hosts::new("10.1.2.3:9100".parse().unwrap(), &[]);
        assert!(pod.allows("10.1.2.3:9100") && !pod.allows("localhost:9100") && !pod.allows("10.1.2.4:9100"));
    }

    #[test]
    fn failures_are_throttled_per_address() {
        let failures = Failures::default();
        let (a, b) = (Source::of("192.0.2.1".parse().unwrap()), Source::of("192.0.2.2".parse().unwrap()));
        let t = Instant::now();
        for _ in 0..FAILURE_BURST {
            assert_eq!(failures.wait(a, t), None);
            failures.failed(a, t);
        }
        let wait = failures.wait(a, t).expect("throttled after the burst");
        assert!(wait <= FAILURE_REFILL && wait > Duration::ZERO, "{wait:?}");
        assert_eq!(failures.wait(b, t), None, "another address is not");
        assert_eq!(failures.wait(a, t + FAILURE_REFILL), None, "one more after the refill");
        failures.failed(a, t + FAILURE_REFILL);
        assert!(failures.wait(a, t + FAILURE_REFILL).is_some());
    }

    #[test]
    fn the_failure_table_is_bounded() {
        let failures = Failures::default();
        let t = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 10) {
            failures.failed(Source::of(IpAddr::V4(i.into())), t + Duration::from_micros(u64::from(i)));
        }
        assert!(failures.0.lock().unwrap().len() <= MAX_TRACKED);
    }
}
