//! The play page: what the WebSocket port serves to a browser's plain `GET`, so that a person
//! joins the world with nothing but the server's address (`http://HOST:7780/`). One page and the
//! codec generated from `assets/PDL.xml`, both compiled into the binary: no CDN, no build step.

use net_plugin::WebFile;

/// The page and the module it imports.
pub const FILES: [WebFile; 2] = [
    WebFile { path: "/", content_type: "text/html; charset=utf-8", body: include_str!("play/index.html") },
    WebFile { path: "/packets.js", content_type: "text/javascript; charset=utf-8", body: shared::js::PACKETS_JS },
];
