//! The headless game server binary.

fn main() {}
