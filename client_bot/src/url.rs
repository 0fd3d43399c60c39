//! `--url`: where the bots connect and how, as one address (`tcp://`, `ws://`, `wss://`).
//!
//! The host is an IP address or `localhost`, never a name to look up: the bots take a socket
//! address as `--addr` does, so `--url` reaches exactly the hosts `--addr` can. For `wss://` the
//! host as written is also the name the server's certificate must carry, so a test certificate
//! made for `localhost` is reached as `wss://localhost:PORT/`.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::BotTransport;

/// The longest `--url` taken: an address with a port is far shorter.
const MAX_URL: usize = 256;

/// A parsed `--url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BotUrl {
    /// `tcp://` or `ws://`/`wss://`.
    pub transport: BotTransport,
    /// `wss://`: TLS under the WebSocket transport.
    pub tls: bool,
    /// The host as written (without brackets): the TLS server name.
    pub host: String,
    /// The address connected to.
    pub addr: SocketAddr,
}

impl std::str::FromStr for BotUrl {
    type Err = String;

    /// `SCHEME://HOST:PORT` with an optional `/` at the end; SCHEME is `tcp`, `ws` or `wss`,
    /// HOST an IPv4 address, a bracketed IPv6 address or `localhost` (127.0.0.1), PORT required.
    /// The bots always ask for the path `/` (the server serves any), so no other path is taken.
    fn from_str(text: &str) -> Result<Self, String> {
        if text.len() > MAX_URL {
            return Err(format!("a URL is at most {MAX_URL} bytes"));
        }
        let (scheme, rest) = text.split_once("://").ok_or_else(|| format!("{text:?}: expected SCHEME://HOST:PORT/"))?;
        let (transport, tls) = match scheme.to_ascii_lowercase().as_str() {
            "tcp" => (BotTransport::Tcp, false),
            "ws" => (BotTransport::Ws, false),
            "wss" => (BotTransport::Ws, true),
            _ => return Err(format!("{text:?}: the scheme is tcp://, ws:// or wss://, not {scheme}://")),
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(format!("{text:?}: only SCHEME://HOST:PORT/ (no path, query or user)"));
        }
        let (host, port) = authority.rsplit_once(':').ok_or_else(|| format!("{text:?}: the port is required"))?;
        let port: u16 = port.parse().map_err(|_| format!("{text:?}: bad port {port:?}"))?;
        if port == 0 {
            return Err(format!("{text:?}: port 0"));
        }
        let (host, ip) = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            (v6, v6.parse::<std::net::Ipv6Addr>().map(IpAddr::V6).ok())
        } else if host.eq_ignore_ascii_case("localhost") {
            ("localhost", Some(IpAddr::V4(Ipv4Addr::LOCALHOST)))
        } else {
            (host, host.parse::<Ipv4Addr>().map(IpAddr::V4).ok())
        };
        let ip = ip.ok_or_else(|| format!("{text:?}: the host is an IP address or localhost, not {host:?}"))?;
        Ok(Self { transport, tls, host: host.to_string(), addr: SocketAddr::new(ip, port) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<BotUrl, String> {
        text.parse()
    }

    #[test]
    fn schemes_hosts_and_ports() {
        let url = parse("wss://localhost:7780/").unwrap();
        assert_eq!((url.transport, url.tls, url.host.as_str()), (BotTransport::Ws, true, "localhost"));
        assert_eq!(url.addr, "127.0.0.1:7780".parse().unwrap());
        let url = parse("ws://127.0.0.1:7780").unwrap();
        assert_eq!((url.transport, url.tls, url.addr), (BotTransport::Ws, false, "127.0.0.1:7780".parse().unwrap()));
        let url = parse("TCP://[::1]:7777/").unwrap();
        assert_eq!((url.transport, url.tls, url.host.as_str()), (BotTransport::Tcp, false, "::1"));
        assert_eq!(url.addr, "[::1]:7777".parse().unwrap());
    }

    #[test]
    fn what_is_refused() {
        for bad in [
            "127.0.0.1:7777",
            "http://127.0.0.1:80/",
            "ws://127.0.0.1/",
            "ws://127.0.0.1:0/",
            "ws://127.0.0.1:70000/",
            "ws://example.com:7780/",
            "ws://127.0.0.1:7780/play",
            "ws://127.0.0.1:7780/?x=1",
            "ws://user@127.0.0.1:7780/",
            "ws://[::1:7780/",
            "wss://",
            "",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} was taken");
        }
        assert!(parse(&format!("ws://127.0.0.1:7780/{}", "a".repeat(300))).is_err());
    }
}
