//! Bot clients.

fn main() {}
