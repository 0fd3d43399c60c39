//! What goes wrong inside the network's own tasks: the faults tests inject to check that the
//! long-lived tasks are supervised, and the text of a caught panic.

use std::sync::atomic::{AtomicBool, Ordering};

/// Faults a test can inject into the network's long-lived tasks, to check that they are
/// supervised. Not for production use.
#[doc(hidden)]
#[derive(Debug, Default)]
pub struct Faults {
    writer: AtomicBool,
    accept: AtomicBool,
}

impl Faults {
    /// The writer task panics at its next pass.
    pub fn panic_writer_once(&self) {
        self.writer.store(true, Ordering::Release);
    }

    /// The accept loop panics at its next connection.
    pub fn panic_accept_loop_once(&self) {
        self.accept.store(true, Ordering::Release);
    }

    pub(crate) fn writer(&self) {
        if self.writer.swap(false, Ordering::AcqRel) {
            panic!("injected fault: the writer panicked");
        }
    }

    pub(crate) fn accept(&self) {
        if self.accept.swap(false, Ordering::AcqRel) {
            panic!("injected fault: the accept loop panicked");
        }
    }
}

/// The text of a caught panic.
pub(crate) fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic".to_string())
}
