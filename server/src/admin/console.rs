//! The web console: one page and one script, compiled into the binary (no build step, no CDN),
//! and its live feed, a stream of server-sent events.
//!
//! The page (`console/index.html`, `console/app.js`: plain JavaScript and SVG) lists the rooms,
//! draws the chosen room's players from above as dots (with the view radius of a selected player
//! when interest management is on), lists them in a table with a kick button each, and charts
//! the last minutes: players, packets in and out per second, tick p50 and p99.
//!
//! The feed sends one update every [`FEED_PERIOD`] (5 a second), whatever the player count,
//! written from the game's latest snapshot (module [`snapshot`](super::snapshot)) with at most
//! [`CONSOLE_MAX_PLAYERS`](super::api::CONSOLE_MAX_PLAYERS) players: consoles cost the game
//! nothing beyond the snapshots, however many watch. At most [`MAX_FEEDS`] consoles watch at
//! once; another is told 503 (and its connection closed). A feed's connection counts as
//! serving a request while it streams, so newcomers evict other connections before it.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::time::MissedTickBehavior;

use super::http::{AdminState, Conn, error};

/// Between two updates of a console's feed.
pub const FEED_PERIOD: Duration = Duration::from_millis(200);
/// Consoles watching at once.
pub const MAX_FEEDS: usize = 8;

const PAGE: &str = include_str!("console/index.html");
const SCRIPT: &str = include_str!("console/app.js");

/// Only this endpoint's own script runs on the page, and it talks only to this endpoint.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self'; \
     frame-ancestors 'none'";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    response
}

/// `GET /`: the console's page.
pub(crate) async fn page() -> Response {
    asset("text/html; charset=utf-8", PAGE)
}

/// `GET /app.js`: its script.
pub(crate) async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The room a feed asks for: `room=ID` in the query, or none.
fn chosen_room(query: Option<&str>) -> Result<Option<u32>, ()> {
    let Some(query) = query else { return Ok(None) };
    for pair in query.split('&') {
        if let Some(id) = pair.strip_prefix("room=") {
            return id.parse().map(Some).map_err(|_| ());
        }
    }
    Ok(None)
}

/// `GET /api/console/feed?room=ID`: an `update` event (JSON, see
/// [`ConsoleUpdate`](super::api::ConsoleUpdate)) every [`FEED_PERIOD`]; an `unavailable` event
/// (text) when the game loop gives no answer. It ends when the browser goes away.
pub(crate) async fn feed(
    State(state): State<Arc<AdminState>>,
    conn: Option<Extension<Conn>>,
    RawQuery(query): RawQuery,
) -> Response {
    let Ok(room) = chosen_room(query.as_deref()) else {
        return error(StatusCode::BAD_REQUEST, "room is a room id: /api/console/feed?room=1");
    };
    let Ok(watching) = state.feeds.clone().try_acquire_owned() else {
        let mut response = error(StatusCode::SERVICE_UNAVAILABLE, format!("{MAX_FEEDS} consoles are open already"));
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    };
    // The connection serves this request while the stream lasts.
    let serving = conn.map(|Extension(conn)| conn.slot.serving());
    let mut every = tokio::time::interval(FEED_PERIOD);
    every.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let board = state.board.clone();
    // The permit and the serving mark go with the stream: dropped when the browser disconnects.
    let updates =
        futures_util::stream::unfold((board, every, (watching, serving)), move |(board, mut every, held)| async move {
            every.tick().await;
            let event = match board.read(room).await {
                Ok(snapshot) => {
                    let json = snapshot.console_json(room);
                    Event::default().event("update").data(String::from_utf8_lossy(&json))
                }
                Err(why) => Event::default().event("unavailable").data(why.message()),
            };
            Some((Ok::<_, Infallible>(event), (board, every, held)))
        });
    Sse::new(updates).keep_alive(KeepAlive::default()).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_feed_takes_a_room_id_or_none() {
        assert_eq!(chosen_room(None), Ok(None));
        assert_eq!(chosen_room(Some("")), Ok(None));
        assert_eq!(chosen_room(Some("room=3")), Ok(Some(3)));
        assert_eq!(chosen_room(Some("x=1&room=12")), Ok(Some(12)));
        assert_eq!(chosen_room(Some("room=abc")), Err(()));
        assert_eq!(chosen_room(Some("room=-1")), Err(()));
    }

    #[test]
    fn the_page_loads_only_its_own_script() {
        assert!(PAGE.contains("<script src=\"/app.js\"></script>"));
        // The SVG namespace is a name, not a place anything is loaded from.
        let script = SCRIPT.replace("\"http://www.w3.org/2000/svg\"", "");
        for text in [PAGE, script.as_str()] {
            assert!(!text.contains("http://") && !text.contains("https://"), "nothing from elsewhere (no CDN)");
        }
    }
}
