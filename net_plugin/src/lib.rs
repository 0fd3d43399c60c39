//! The networking plugin (see issue 3).
