//! The admin endpoint's HTTP side: hyper serving axum's router on the admin runtime, the token
//! rule and the bounds on what a request may be, and the handlers of the health checks,
//! `/metrics` and the room API (the console's are in [`console`](super::console)).
//!
//! Bounds, so that nobody who can reach the port can make it hold much: at most
//! [`MAX_CONNECTIONS`] connections at once (more are closed on arrival), request heads of at
//! most [`MAX_HEAD_BYTES`] read within [`HEAD_TIMEOUT`], a URI of at most [`MAX_URI_BYTES`]
//! (414), a declared body of at most [`MAX_BODY_BYTES`] (413; no route reads a body). A request
//! hyper cannot parse gets its 400 from hyper; none reaches a handler that could panic.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use super::api::{Ask, AskError, Asker, Reply};
use super::{console, metrics};
use crate::lifecycle::Lifecycle;

/// Connections at once; more are closed as they arrive. Prometheus, a few consoles and scripts
/// need a handful.
pub const MAX_CONNECTIONS: usize = 32;
/// The longest request head (request line and headers) read.
pub const MAX_HEAD_BYTES: usize = 16 * 1024;
/// How long a client may take to send a request head (and how long an idle kept-alive
/// connection stays open).
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest URI (path and query) served.
pub const MAX_URI_BYTES: usize = 1024;
/// The largest request body announced that is accepted (none is read).
pub const MAX_BODY_BYTES: u64 = 1024;
/// A health check fails when the last frame began longer ago than this.
pub const HEALTHY_FRAME_AGE: Duration = Duration::from_secs(1);

/// What every handler shares.
pub(crate) struct AdminState {
    pub asker: Asker,
    pub lifecycle: Lifecycle,
    /// The token requests must present (`None`: no token, loopback only).
    pub token: Option<String>,
    /// One permit per open console feed.
    pub feeds: Arc<Semaphore>,
}

/// Every route, behind the guard.
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
        .with_state(state)
}

/// Accepts connections until the runtime stops, each served by hyper's HTTP/1.1 on a task of
/// its own.
pub(crate) async fn serve(listener: TcpListener, app: Router) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::debug!(error = %e, "admin endpoint: accept failed; retrying");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!(%peer, "admin endpoint: {MAX_CONNECTIONS} connections open; closing a new one");
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .max_buf_size(MAX_HEAD_BYTES)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(%peer, error = %e, "admin endpoint: connection ended");
            }
            drop(slot);
        });
    }
}

/// Checks every request before its route: the URI's and body's bounds, the token (except for
/// the health checks, which load balancers and orchestrators call without one), and, for a
/// POST from a browser, that it comes from the console's own page.
async fn guard(State(state): State<Arc<AdminState>>, request: Request, next: Next) -> Response {
    let uri_len = request.uri().path_and_query().map_or(0, |p| p.as_str().len());
    if uri_len > MAX_URI_BYTES {
        return error(StatusCode::URI_TOO_LONG, format!("the URI is longer than {MAX_URI_BYTES} bytes"));
    }
    let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
        return error(StatusCode::PAYLOAD_TOO_LARGE, format!("bodies are at most {MAX_BODY_BYTES} bytes"));
    }
    let open = matches!(request.uri().path(), "/healthz" | "/readyz");
    if !open && !authorized(state.token.as_deref(), request.headers()) {
        return unauthorized();
    }
    if request.method() == Method::POST && !same_origin(request.headers()) {
        return error(StatusCode::FORBIDDEN, "a POST from another site's page is refused");
    }
    next.run(request).await
}

/// Whether the request carries the token: `Authorization: Bearer TOKEN`, or Basic credentials
/// whose password is the token (what a browser sends after asking; the user name is ignored).
/// Always true without a token.
fn authorized(token: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(token) = token else { return true };
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

/// Whether a request's `Origin`, if it has one (browsers add it to a POST), is this endpoint
/// itself. A page elsewhere could otherwise make a browser that holds the console's
/// credentials kick players.
fn same_origin(headers: &HeaderMap) -> bool {
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

fn json<T: Serialize>(answer: Result<T, AskError>) -> Response {
    match answer {
        Ok(body) => axum::Json(body).into_response(),
        Err(why) => unavailable(why),
    }
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
    match state.asker.ask(Ask::Metrics).await {
        Ok(data) => {
            let text = metrics::render(data, state.lifecycle.phase());
            ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response()
        }
        Err(why) => unavailable(why),
    }
}

async fn rooms(State(state): State<Arc<AdminState>>) -> Response {
    json(state.asker.ask(Ask::Rooms).await)
}

async fn room(State(state): State<Arc<AdminState>>, id: Result<Path<u32>, PathRejection>) -> Response {
    by_id(&state, id, "room", Ask::Room).await
}

async fn kick(State(state): State<Arc<AdminState>>, id: Result<Path<i32>, PathRejection>) -> Response {
    by_id(&state, id, "connected player", Ask::Kick).await
}

/// Asks the game `question` about the `what` whose id is in the path: 400 when the id is not a
/// number, 404 when the game knows no such thing, 503 without an answer.
async fn by_id<Id: std::fmt::Display + Copy, T: Serialize>(
    state: &AdminState,
    id: Result<Path<Id>, PathRejection>,
    what: &str,
    question: fn(Id, Reply<Option<T>>) -> Ask,
) -> Response {
    let Ok(Path(id)) = id else { return error(StatusCode::BAD_REQUEST, format!("a {what}'s id is a number")) };
    match state.asker.ask(|reply| question(id, reply)).await {
        Ok(Some(answer)) => axum::Json(answer).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, format!("no {what} {id}")),
        Err(why) => unavailable(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(header::HeaderName, &str)]) -> HeaderMap {
        pairs.iter().map(|(k, v)| (k.clone(), HeaderValue::from_str(v).unwrap())).collect()
    }

    #[test]
    fn the_token_comes_as_bearer_or_as_a_basic_password() {
        let basic = |user_pass: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(user_pass));
        let with = |value: &str| authorized(Some("s3cret"), &headers(&[(header::AUTHORIZATION, value)]));
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
        assert!(!authorized(Some("s3cret"), &HeaderMap::new()));
        assert!(authorized(None, &HeaderMap::new()), "no token set: nothing asked");
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
