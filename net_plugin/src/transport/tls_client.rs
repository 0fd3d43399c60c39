//! The client side of TLS under the WebSocket transport (`wss://`): what a [`Connector`]
//! needs to reach a TLS WebSocket port, as the bots do.
//!
//! The handshake and the upgrade run over tokio-rustls, as on the server; then the
//! `ClientConnection` becomes the session's [`Tls`] codec, so a client session reads and writes
//! its socket like every other session (see `tls.rs` for why).
//!
//! [`Connector`]: crate::Connector

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;

use super::Transport;
use super::tls::Tls;
use super::ws::{self, HandshakeError};

/// How a connection is opened: its transport and, for [`Transport::WebSocket`], TLS
/// (`wss://`) when `tls` is set. TLS is ignored over [`Transport::Tcp`]: the course's clients
/// speak plain TCP.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The transport.
    pub transport: Transport,
    /// TLS for a WebSocket connection, with the certificates it trusts and the server's name.
    pub tls: Option<ClientTls>,
}

/// What a `wss://` client trusts and whom it expects: built once (loading the system's roots
/// reads files) and shared by every connection, as cheaply cloned handles.
#[derive(Clone)]
pub struct ClientTls {
    connector: tokio_rustls::TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

impl ClientTls {
    /// Trusts the system's root certificates plus those of `extra_ca` (a PEM file, e.g. a test's
    /// self-signed certificate), and checks that the server's certificate names `server_name`
    /// (a DNS name or an IP address). Any fault (a bad name, a missing or empty PEM file, no
    /// root at all) is returned, named.
    pub fn new(server_name: &str, extra_ca: Option<&Path>) -> Result<Self, String> {
        let server_name = ServerName::try_from(server_name.to_string())
            .map_err(|e| format!("TLS server name {server_name:?}: {e}"))?;
        let mut roots = rustls::RootCertStore::empty();
        // Unreadable system roots are not fatal: a test trusts its own CA alone.
        let native = rustls_native_certs::load_native_certs();
        for error in &native.errors {
            tracing::debug!(%error, "a system root certificate could not be loaded");
        }
        let _ = roots.add_parsable_certificates(native.certs);
        if let Some(path) = extra_ca {
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| format!("CA certificate {}: {e}", path.display()))?;
            if certs.is_empty() {
                return Err(format!("CA certificate {}: no certificate in the file", path.display()));
            }
            for cert in certs {
                roots.add(cert).map_err(|e| format!("CA certificate {}: {e}", path.display()))?;
            }
        }
        if roots.is_empty() {
            return Err("TLS: no trusted root certificate (none on the system, no CA file given)".into());
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Self { connector: tokio_rustls::TlsConnector::from(Arc::new(config)), server_name })
    }

    /// The TLS handshake (the server's certificate checked), then the WebSocket upgrade over
    /// it; the session's TLS codec from then on. The caller bounds it with its connect timeout.
    pub(crate) async fn connect(&self, stream: &mut TcpStream, addr: SocketAddr) -> Result<Tls, HandshakeError> {
        // The TLS error as rustls says it ("invalid peer certificate: UnknownIssuer"), named.
        let handshake = self.connector.connect(self.server_name.clone(), stream).await;
        let mut secured =
            handshake.map_err(|e| HandshakeError::Io(std::io::Error::new(e.kind(), format!("TLS handshake: {e}"))))?;
        ws::connect(&mut secured, addr).await?;
        Ok(Tls::new(secured.into_inner().1))
    }
}
