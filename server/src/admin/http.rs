//! The admin endpoint's HTTP side: hyper serving axum's router on the admin runtime, the checks
//! every request passes, the bounds on what a request may be, and the handlers of the health
//! checks, `/metrics` and the room API (the console's are in [`console`](super::console)).
//!
//! Bounds, so that nobody who can reach the port can make it hold much: connections as module
//! [`slots`](super::slots) says (never refused; the quietest evicted), request heads of at most
//! [`MAX_HEAD_BYTES`] read within [`HEAD_TIMEOUT`], a URI of at most [`MAX_URI_BYTES`] (414), a
//! declared body of at most [`MAX_BODY_BYTES`] (413; no route reads a body). A request hyper
//! cannot parse gets its 400 from hyper; none reaches a handler that could panic. A request
//! refused for who sent it (421, 401, 429) closes its connection. The reads (`/metrics`,
//! `/api/rooms...`) are paced ([`Pacer`]), so looping clients cannot make the endpoint copy
//! gigabytes a second on the game's machine.
//!
//! Client faults (a wrong `Host`, a wrong token, a throttled address, an eviction) are logged
//! at debug each, and summed up at warn at most once per [`FAULT_SUMMARY_PERIOD`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use hyper::service::Service as _;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::access::{self, Failures, Hosts};
use super::api::{AskError, Asker};
use super::console;
use super::slots::{Slot, Slots, Source};
use super::snapshot::Board;
use crate::lifecycle::Lifecycle;

/// The longest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long a client may take to send a request head (and how long an idle kept-alive
/// connection stays open): a client sends its head at once; one that does not holds a slot
/// this long at most (less when newcomers evict it).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest URI (path and query) served.
pub const MAX_URI_BYTES: usize = 1024;
/// The largest request body announced that is accepted (none is read).
pub const MAX_BODY_BYTES: u64 = 1024;
/// A health check fails when the last frame began longer ago than this.
pub const HEALTHY_FRAME_AGE: Duration = Duration::from_secs(1);
/// At most one warning line summing up client faults per this.
pub const FAULT_SUMMARY_PERIOD: Duration = Duration::from_secs(10);
/// Answers of `/metrics` and `/api/...` per second, in all, on average (see the pacer in this module).
pub const READS_PER_SECOND: f64 = 200.0;
/// As many at once, after a pause.
pub const READS_BURST: f64 = 100.0;
/// The longest a read waits for its turn; beyond, 429.
pub const READ_MAX_WAIT: Duration = Duration::from_secs(2);

/// Every header sent with every answer: no page may frame the console (clickjacking a kick
/// button), and no browser guesses a type.
const FRAME_POLICY: &str = "frame-ancestors 'none'";

/// What every handler shares.
pub(crate) struct AdminState {
    pub asker: Asker,
    pub board: Arc<Board>,
    pub lifecycle: Lifecycle,
    /// The token requests must present (`None`: no token, loopback only).
    pub token: Option<String>,
    /// The `Host` values served.
    pub hosts: Hosts,
    /// Wrong tokens per address.
    pub failures: Failures,
    /// One permit per open console feed.
    pub feeds: Arc<Semaphore>,
    pub faults: Faults,
    pub pacer: Pacer,
}

/// Paces the reads (`/metrics`, `/api/...`): [`READS_PER_SECOND`] on average in all, bursts of
/// [`READS_BURST`]; a read beyond waits its turn (at most [`READ_MAX_WAIT`], else 429).
///
/// Why: an answer costs the game nothing (it comes from a snapshot) and the endpoint one copy,
/// but a room of 1,000 is ~150 KB, and 32 clients looping on it fetched 28,000 a second: 4 GB/s
/// of copying on the machine the game runs on, which took the tick p99 from 0.5 to 4 ms. Paced,
/// looping clients wait (they hold nothing but their connection, which a newcomer may still
/// evict), and the endpoint copies at most 200 answers a second, what a few consoles, scripts
/// and Prometheus need many times over. Probes are not paced, and the console's feed is paced
/// by its own period.
#[derive(Default)]
pub(crate) struct Pacer(Mutex<Option<(f64, Instant)>>);

impl Pacer {
    /// Waits for this read's turn; `Err` with when to try again when the wait would be too long.
    async fn turn(&self) -> Result<(), Duration> {
        let wait = {
            let mut state = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            let now = Instant::now();
            let (tokens, at) = state.unwrap_or((READS_BURST, now));
            let tokens = (tokens + now.saturating_duration_since(at).as_secs_f64() * READS_PER_SECOND).min(READS_BURST);
            let wait = Duration::from_secs_f64((1.0 - tokens).max(0.0) / READS_PER_SECOND);
            if wait > READ_MAX_WAIT {
                *state = Some((tokens, now));
                return Err(wait - READ_MAX_WAIT);
            }
            *state = Some((tokens - 1.0, now));
            wait
        };
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        Ok(())
    }
}

/// What the connection's own service tells the handlers: who sent the request, and its slot
/// (a console's feed holds it as serving while it streams).
#[derive(Clone)]
pub(crate) struct Conn {
    pub peer: SocketAddr,
    pub slot: Arc<Slot>,
}

/// Every route, behind the checks.
pub(crate) fn router(state: Arc<AdminState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/api/rooms", get(rooms))
        .route("/api/rooms/{id}", get(room))
        .route("/api/players/{id}/kick", post(kick))
        .route("/api/console/feed", get(console::feed))
        .route("/", get(console::page))
        .route("/app.js", get(console::script))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .layer(middleware::map_response(secure_headers))
        .with_state(state)
}

/// Accepts connections until the runtime stops, each served by hyper's HTTP/1.1 on a task of
/// its own, in a slot of [`Slots`] (evicted when a newcomer needs it).
pub(crate) async fn serve(listener: TcpListener, app: Router, state: Arc<AdminState>) {
    let slots = Arc::new(Slots::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "admin endpoint: accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admitted = slots.admit(peer);
        if admitted.evictions > 0 {
            tracing::debug!(%peer, "admin endpoint: connections at their limit; the quietest evicted for a new one");
            state.faults.note(Fault::Evicted);
        }
        let conn = Conn { peer, slot: Arc::new(admitted.slot) };
        let router = TowerToHyperService::new(app.clone());
        let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
            let serving = conn.slot.serving();
            request.extensions_mut().insert(conn.clone());
            let answer = router.call(request.map(Body::new));
            async move {
                let answer = answer.await;
                drop(serving);
                answer
            }
        });
        let evicted = admitted.evicted;
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                served = served => if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "admin endpoint: connection ended");
                },
                _ = evicted => tracing::debug!(%peer, "admin endpoint: connection evicted"),
            }
        });
        // Let the new connection's task read its request before the next accept: under a flood
        // of connections, a probe's is served before newcomers can evict it.
        tokio::task::yield_now().await;
    }
}

/// Checks every request before its route: the URI's and body's bounds; then, except for the
/// health checks (which orchestrators call from addresses and with `Host`s nobody lists), the
/// `Host` ([`Hosts`]), the address's failed tokens, the token, and, for a POST from a browser,
/// that it comes from this endpoint's own page.
async fn guard(State(state): State<Arc<AdminState>>, request: Request, next: Next) -> Response {
    let uri_len = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return error(StatusCode::URI_TOO_LONG, format!("the URI is longer than {MAX_URI_BYTES} bytes"));
    }
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, format!("bodies are at most {MAX_BODY_BYTES} bytes"));
    }
    if matches!(request.uri().path(), "/healthz" | "/readyz") {
        return next.run(request).await;
    }
    let peer = request.extensions().get::<Conn>().map(|c| c.peer);
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    if !state.hosts.allows(host) {
        tracing::debug!(?peer, host, "admin endpoint: a request for another host refused (DNS rebinding?)");
        state.faults.note(Fault::Host);
        return closing(error(StatusCode::MISDIRECTED_REQUEST, "this endpoint does not serve that Host"));
    }
    if let Some(token) = state.token.as_deref() {
        let source = peer.map(|p| Source::of(p.ip()));
        let now = Instant::now();
        if let Some(wait) = source.and_then(|s| state.failures.wait(s, now)) {
            state.faults.note(Fault::Throttled);
            let mut response = error(StatusCode::TOO_MANY_REQUESTS, "too many wrong tokens; try again later");
            let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
            if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
            return closing(response);
        }
        if !access::authorized(token, request.headers()) {
            if let Some(source) = source {
                state.failures.failed(source, now);
            }
            // A browser's first request carries no credentials: only a wrong one is a fault.
            if request.headers().contains_key(header::AUTHORIZATION) {
                tracing::debug!(?peer, "admin endpoint: a wrong token");
                state.faults.note(Fault::Token);
            }
            return closing(unauthorized());
        }
    }
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return error(StatusCode::FORBIDDEN, "a POST from another site's page is refused");
    }
    let path = request.uri().path();
    let paced = request.method() == Method::GET && (path == "/metrics" || path.starts_with("/api/rooms"));
    if paced && let Err(later) = state.pacer.turn().await {
        let mut response = error(StatusCode::TOO_MANY_REQUESTS, "too many requests; try again later");
        let seconds = later.as_secs_f64().ceil().max(1.0) as u64;
        if let Ok(value) = HeaderValue::from_str(&seconds.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    next.run(request).await
}

/// Marks a response as the last on its connection.
fn closing(mut response: Response) -> Response {
    response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

/// Adds what every answer carries: [`FRAME_POLICY`] (unless the answer has its own policy,
/// which says the same), `X-Frame-Options: DENY` for older browsers, and `nosniff`.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(FRAME_POLICY));
    }
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    response
}

/// Whether a request's `Origin`, if it has one (browsers add it to a POST), is this endpoint
/// itself (its `Host`, which [`guard`] checked first). A page elsewhere could otherwise make a
/// browser that holds the console's credentials kick players.
fn same_origin(headers: &axum::http::HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else { return true };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let origin = origin.to_str().unwrap_or("");
    !host.is_empty() && (origin == format!("http://{host}") || origin == format!("https://{host}"))
}

/// 401, saying nothing but how to authenticate. The Basic challenge makes a browser ask for the
/// token.
fn unauthorized() -> Response {
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized");
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"gameserver admin\", charset=\"UTF-8\""),
    );
    response
}

/// The kinds of client fault summed up in the warning line.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Fault {
    Host,
    Token,
    Throttled,
    Evicted,
}

/// Client faults since the last warning line, and when it was written.
#[derive(Default)]
pub(crate) struct Faults {
    counts: [AtomicU64; 4],
    last_warning: Mutex<Option<Instant>>,
}

impl Faults {
    /// Counts one fault, and writes the summary if it is due.
    pub fn note(&self, fault: Fault) {
        self.counts[fault as usize].fetch_add(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut last = self.last_warning.lock().unwrap_or_else(PoisonError::into_inner);
        if last.is_some_and(|at| now.duration_since(at) < FAULT_SUMMARY_PERIOD) {
            return;
        }
        *last = Some(now);
        let [host, token, throttled, evicted] = self.counts.each_ref().map(|c| c.swap(0, Ordering::Relaxed));
        tracing::warn!(
            wrong_host = host,
            wrong_token = token,
            throttled,
            evicted,
            "admin endpoint: client faults since the last such line (each at debug)"
        );
    }
}

/// An error as JSON: `{"error": "..."}`.
pub(crate) fn error(status: StatusCode, message: impl Into<String>) -> Response {
    #[derive(Serialize)]
    struct Error {
        error: String,
    }
    (status, axum::Json(Error { error: message.into() })).into_response()
}

/// 503 with why the game loop gave no answer, and when to try again.
pub(crate) fn unavailable(why: AskError) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, why.message());
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// A JSON body already written.
fn json(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such route")
}

/// 200 while the game loop turns (a frame began within [`HEALTHY_FRAME_AGE`]); 503 with the
/// reason otherwise. Read from [`Lifecycle`]'s heartbeat, so it answers even when the loop is
/// stuck.
async fn healthz(State(state): State<Arc<AdminState>>) -> Response {
    match state.lifecycle.since_last_frame() {
        Some(age) if age <= HEALTHY_FRAME_AGE => {
            (StatusCode::OK, format!("ok: last frame {age:.0?} ago\n")).into_response()
        }
        Some(age) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("unhealthy: no frame for {age:.1?}; the game loop is stuck or stopped\n"),
        )
            .into_response(),
        None => (StatusCode::SERVICE_UNAVAILABLE, "unhealthy: the game loop has not run yet\n").into_response(),
    }
}

/// 200 while the server accepts players; 503 while starting, draining or shutting down.
async fn readyz(State(state): State<Arc<AdminState>>) -> Response {
    let phase = state.lifecycle.phase();
    let status = if phase.is_ready() { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = if phase.is_ready() { "ready" } else { "not ready" };
    (status, format!("{word}: {}\n", phase.as_str())).into_response()
}

async fn metrics_text(State(state): State<Arc<AdminState>>) -> Response {
    match state.board.read(None).await {
        Ok(snapshot) => {
            let text = snapshot.metrics_text(state.lifecycle.phase());
            ([(header::CONTENT_TYPE, super::metrics::CONTENT_TYPE)], text).into_response()
        }
        Err(why) => unavailable(why),
    }
}

async fn rooms(State(state): State<Arc<AdminState>>) -> Response {
    match state.board.read(None).await {
        Ok(snapshot) => json(snapshot.rooms_json()),
        Err(why) => unavailable(why),
    }
}

async fn room(State(state): State<Arc<AdminState>>, id: Result<Path<u32>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else { return error(StatusCode::BAD_REQUEST, "a room's id is a number") };
    match state.board.read(Some(id)).await {
        Ok(snapshot) => match snapshot.room_json(id) {
            Some(body) => json(body),
            None => error(StatusCode::NOT_FOUND, format!("no room {id}")),
        },
        Err(why) => unavailable(why),
    }
}

async fn kick(State(state): State<Arc<AdminState>>, id: Result<Path<i32>, PathRejection>) -> Response {
    let Ok(Path(id)) = id else { return error(StatusCode::BAD_REQUEST, "a connected player's id is a number") };
    match state.asker.kick(id).await {
        Ok(Some(kicked)) => axum::Json(kicked).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no connected player {id}")),
        Err(why) => unavailable(why),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderMap;

    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn a_post_from_another_origin_is_refused() {
        assert!(
            same_origin(&headers(&[(header::HOST, "127.0.0.1:9100")])),
            "no Origin: not a browser's cross-site POST"
        );
        assert!(same_origin(&headers(&[(header::HOST, "127.0.0.1:9100"), (header::ORIGIN, "http://127.0.0.1:9100")])));
        assert!(!same_origin(&headers(&[(header::HOST, "127.0.0.1:9100"), (header::ORIGIN, "http://evil.example")])));
        assert!(!same_origin(&headers(&[(header::ORIGIN, "http://127.0.0.1:9100")])));
    }
}
