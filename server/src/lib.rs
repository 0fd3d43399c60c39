//! The headless game server.
