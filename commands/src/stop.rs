//! Ctrl-C and SIGTERM for streaming commands (monitor, map watch): the
//! signal only sets a flag, and the command's loop ends cleanly, printing
//! its summary, when it sees it.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::Relaxed);
}

/// Routes SIGINT and SIGTERM to the flag.
pub fn install() {
    // SAFETY: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

/// Whether a signal asked the command to stop.
pub fn requested() -> bool {
    STOP.load(Ordering::Relaxed)
}
