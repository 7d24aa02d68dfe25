//! A waker for the storage tests that counts its wake-ups (and can tell a
//! channel of each), so a test can check that something was woken — once,
//! or not at all — without timing anything.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::task::{Wake, Waker};

pub(super) struct CountingWaker {
    wakes: AtomicUsize,
    /// Told of each wake-up, when a test waits for one.
    woken: Mutex<Option<mpsc::Sender<()>>>,
}

impl CountingWaker {
    /// How often it was woken so far.
    pub(super) fn wakes(&self) -> usize {
        self.wakes.load(Ordering::SeqCst)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wakes.fetch_add(1, Ordering::SeqCst);
        if let Ok(woken) = self.woken.lock()
            && let Some(woken) = woken.as_ref()
        {
            let _ = woken.send(());
        }
    }
}

/// A counting waker and the `Waker` to hand out.
pub(super) fn counting_waker() -> (Arc<CountingWaker>, Waker) {
    let counter = Arc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
        woken: Mutex::new(None),
    });
    (counter.clone(), Waker::from(counter))
}

/// The same, also telling the returned channel of each wake-up.
pub(super) fn notifying_waker() -> (Arc<CountingWaker>, Waker, mpsc::Receiver<()>) {
    let (tx, rx) = mpsc::channel();
    let counter = Arc::new(CountingWaker {
        wakes: AtomicUsize::new(0),
        woken: Mutex::new(Some(tx)),
    });
    (counter.clone(), Waker::from(counter), rx)
}
