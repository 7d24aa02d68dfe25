//! A clean stop on SIGTERM and SIGINT.
//!
//! The signals are blocked in the main thread before any other thread
//! exists, so every thread inherits the mask and only [`StopSignals::wait`]
//! (on a thread of its own) ever sees them. On a signal the server persists
//! and flushes its stores, then exits: nothing acknowledged is lost and the
//! next start replays no journal.

/// SIGTERM and SIGINT, blocked for the whole process.
pub struct StopSignals {
    set: libc::sigset_t,
}

/// Blocks SIGTERM and SIGINT. Call first thing, before spawning threads.
pub fn block() -> Result<StopSignals, String> {
    // SAFETY: sigset_t is plain data; sigemptyset initialises it before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid, owned sigset_t; the signal numbers are valid.
    let ok = unsafe {
        libc::sigemptyset(&mut set) == 0
            && libc::sigaddset(&mut set, libc::SIGTERM) == 0
            && libc::sigaddset(&mut set, libc::SIGINT) == 0
            && libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) == 0
    };
    if ok {
        Ok(StopSignals { set })
    } else {
        Err("cannot block SIGTERM/SIGINT".into())
    }
}

impl StopSignals {
    /// Waits for SIGTERM or SIGINT and returns its number.
    pub fn wait(&self) -> i32 {
        let mut signal = 0;
        // SAFETY: `self.set` was initialised in `block`; `signal` is a valid out pointer.
        let result = unsafe { libc::sigwait(&self.set, &mut signal) };
        if result == 0 { signal } else { libc::SIGTERM }
    }
}

// SAFETY: a sigset_t is plain data with no thread affinity.
unsafe impl Send for StopSignals {}
