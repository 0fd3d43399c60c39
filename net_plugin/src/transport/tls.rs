//! TLS under the WebSocket transport (`wss://`), with rustls.
//!
//! # Why rustls sans-IO, after tokio-rustls's handshake
//!
//! A session's socket is read by its task and written by the shared writer, each with
//! non-blocking calls on the `TcpStream` itself (the stall, backlog and budget rules hang on
//! that). A `TlsStream` would own the socket and need its own read and write paths. So the
//! handshake and the upgrade request run over tokio-rustls (inside the handshake timeout), and
//! then its `ServerConnection` is taken out ([`Tls`]) and used as a codec at the queue's two
//! ends: what the session task reads is decrypted before the WebSocket codec sees it
//! ([`Tls::open`]), and what is queued for the writer is encrypted as it is queued
//! ([`TlsGuard::seal`]). The queue, and so the writer, holds ciphertext: one buffer per flushed
//! frame, written with one vectored write as before, and every backlog rule counts the bytes
//! that go on the wire.
//!
//! Records must reach the queue in the order they were sealed (their sequence numbers), so a
//! session's TLS lock is taken before its outbound lock and held across the push.

use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use bytes::Bytes;
use rustls::Connection;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::DisconnectReason;

/// The acceptor of a TLS WebSocket port: its certificate chain and key, loaded at start-up.
pub(crate) type Acceptor = tokio_rustls::TlsAcceptor;

/// Loads a PEM certificate chain and its private key into an acceptor. Any fault (a missing
/// file, no certificate, a key that does not match) is a start-up error, named with its file.
pub(crate) fn acceptor(cert: &Path, key: &Path) -> Result<Acceptor, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<_, _>>())
        .map_err(|e| format!("net.websocket.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("net.websocket.tls_cert {}: no certificate in the file", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("net.websocket.tls_key {}: {e}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("net.websocket.tls_cert and tls_key: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// A session's TLS state once the handshake is done. Boxed: rustls's state is over a kilobyte,
/// and every session, plain TCP included, holds an `Option<Tls>` (S4's memory per idle session).
#[derive(Debug)]
pub(crate) struct Tls(Box<Mutex<Connection>>);

/// A session's TLS state, locked: to seal records for its queue.
pub(crate) struct TlsGuard<'a>(MutexGuard<'a, Connection>);

impl Tls {
    /// Takes over a connection whose handshake tokio-rustls finished. Its plaintext buffer
    /// limit is lifted: every record is taken out right after it is sealed, into the session's
    /// queue, whose own limits apply.
    /// Either side's: a client's (`tls_client`) is used the same way.
    pub fn new(connection: impl Into<Connection>) -> Self {
        let mut connection = connection.into();
        connection.set_buffer_limit(None);
        Self(Box::new(Mutex::new(connection)))
    }

    /// Locks it. A panic while it was held may have left a record half sealed: the session is
    /// then lost anyway (it ends with the panic), so a poisoned lock is used as is.
    pub fn lock(&self) -> TlsGuard<'_> {
        TlsGuard(self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Decrypts `cipher` (what the socket gave) into `plain`. Records TLS answers with (an
    /// alert, a key update) stay in the connection and go out with the next [`TlsGuard::seal`].
    /// A peer that breaks TLS ends the session.
    pub fn open(&self, mut cipher: &[u8], plain: &mut Vec<u8>) -> Result<(), DisconnectReason> {
        let mut guard = self.lock();
        let connection = &mut guard.0;
        while !cipher.is_empty() {
            match connection.read_tls(&mut cipher) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(DisconnectReason::Io(e.kind())),
            }
            if let Err(e) = connection.process_new_packets() {
                tracing::debug!(error = %e, "TLS error from a peer");
                return Err(DisconnectReason::Io(io::ErrorKind::InvalidData));
            }
            match connection.reader().read_to_end(plain) {
                Ok(_) => {}
                // No more plaintext for now; the peer's close_notify shows as a read of 0.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(DisconnectReason::Io(e.kind())),
            }
        }
        Ok(())
    }
}

impl TlsGuard<'_> {
    /// Encrypts `parts` (one WebSocket message, or a control frame) into one buffer of records.
    pub fn seal(&mut self, parts: &[&[u8]]) -> Bytes {
        for part in parts {
            // Without a buffer limit the writer takes everything.
            let _ = self.0.writer().write_all(part);
        }
        self.pending()
    }

    /// The TLS records waiting to be sent (an alert, handshake leftovers), as one buffer;
    /// empty when there are none.
    pub fn pending(&mut self) -> Bytes {
        let mut out = Vec::new();
        while self.0.wants_write() {
            if self.0.write_tls(&mut out).is_err() {
                break;
            }
        }
        Bytes::from(out)
    }

    /// The `close_notify` alert, sealed: the last record of a session that ends cleanly.
    pub fn close_notify(&mut self) -> Bytes {
        self.0.send_close_notify();
        self.pending()
    }
}

#[cfg(test)]
mod tests {
    use rustls::{ClientConnection, ServerConnection};

    use super::*;

    /// A server's connection past its handshake with a client trusting its certificate, the
    /// handshake's records passed by hand.
    fn pair() -> (Tls, ClientConnection) {
        let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let key = PrivateKeyDer::from_pem_slice(certified.signing_key.serialize_pem().as_bytes()).unwrap();
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![certified.cert.der().clone()], key)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut server = ServerConnection::new(Arc::new(server)).unwrap();
        let mut client = ClientConnection::new(Arc::new(client), "localhost".try_into().unwrap()).unwrap();
        while server.is_handshaking() || client.is_handshaking() {
            let mut bytes = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut bytes).unwrap();
            }
            server.read_tls(&mut &bytes[..]).unwrap();
            server.process_new_packets().unwrap();
            bytes.clear();
            while server.wants_write() {
                server.write_tls(&mut bytes).unwrap();
            }
            client.read_tls(&mut &bytes[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        (Tls::new(server), client)
    }

    fn client_reads(client: &mut ClientConnection, records: &[u8]) -> Vec<u8> {
        let mut records = records;
        let mut plain = Vec::new();
        while !records.is_empty() {
            client.read_tls(&mut records).unwrap();
            client.process_new_packets().unwrap();
            let _ = client.reader().read_to_end(&mut plain);
        }
        plain
    }

    #[test]
    fn sealed_parts_arrive_as_one_stream_and_a_peers_records_open_in_any_split() {
        let (tls, mut client) = pair();
        let sealed = tls.lock().seal(&[b"header", b"payload"]);
        assert_eq!(client_reads(&mut client, &sealed), b"headerpayload");

        // Several records (at most 16 KiB each), fed a byte at a time, in pieces, whole.
        for split in [1, 1000, usize::MAX] {
            let (tls, mut client) = pair();
            client.writer().write_all(&[7u8; 40_000]).unwrap();
            let mut records = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut records).unwrap();
            }
            let mut plain = Vec::new();
            for piece in records.chunks(split) {
                tls.open(piece, &mut plain).unwrap();
            }
            assert_eq!(plain, vec![7u8; 40_000], "split {split}");
        }
    }

    #[test]
    fn bytes_that_are_not_tls_records_end_the_session() {
        let (tls, _) = pair();
        let mut plain = Vec::new();
        let refused = tls.open(b"GET / HTTP/1.1\r\n\r\n", &mut plain);
        assert_eq!(refused, Err(DisconnectReason::Io(io::ErrorKind::InvalidData)));
        assert!(plain.is_empty());
    }

    #[test]
    fn close_notify_reaches_the_peer() {
        let (tls, mut client) = pair();
        let last = tls.lock().close_notify();
        client.read_tls(&mut &last[..]).unwrap();
        let state = client.process_new_packets().unwrap();
        assert!(state.peer_has_closed());
    }
}
