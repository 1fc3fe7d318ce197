//! Thread ownership of a loop's state.
//!
//! A verdigris loop, like a gevent hub, belongs to the thread that created it: its ready queue,
//! timer wheel and poller are plain single-threaded structures. The Python objects that expose
//! them are still reachable from every thread, so PyO3 needs them to be `Send + Sync`. This
//! module provides that soundly: [`Owned`] checks, on every access, that the caller is the
//! owning thread and that the GIL is held, and hands out the `RefCell` inside only then. Other
//! threads get a clear `RuntimeError` (they must use `run_callback_threadsafe` or an async
//! watcher, which go through the lock-protected [`crate::event_loop::Threadsafe`] instead).
//!
//! Discussion: PyO3's `unsendable` gives the same check, but it also fails for the few methods
//! that exist precisely to be called from other threads, and reports it as a panic.

use std::cell::RefCell;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

thread_local! {
    static THREAD_MARK: u8 = const { 0 };
}

/// A cheap identity for the current thread: the address of a thread-local.
pub fn thread_mark() -> usize {
    THREAD_MARK.with(|m| m as *const u8 as usize)
}

/// State owned by one thread, reachable only from it and only with the GIL held.
pub struct Owned<T> {
    owner: usize,
    cell: RefCell<T>,
}

// SAFETY: the RefCell is only ever reached through `get`, which requires a `Python` token (the
// GIL is held: this crate is built for GIL-enabled interpreters only, see `gil_used` in lib.rs)
// and checks that the caller is the owning thread. So no two threads touch it, not even while
// the owner has released the GIL to poll. Dropping on another thread is fine: T holds Python
// references (dropped with the GIL held during deallocation) and plain data.
unsafe impl<T: Send> Sync for Owned<T> {}
unsafe impl<T: Send> Send for Owned<T> {}

impl<T> Owned<T> {
    /// Creates state owned by the calling thread.
    pub fn new(value: T) -> Self {
        Owned { owner: thread_mark(), cell: RefCell::new(value) }
    }

    /// State owned by the thread whose [`thread_mark`] is `owner` (e.g. a callback that another
    /// thread schedules on a loop belongs to the loop's thread).
    pub fn with_owner(owner: usize, value: T) -> Self {
        Owned { owner, cell: RefCell::new(value) }
    }

    /// The mark of the owning thread.
    pub fn owner(&self) -> usize {
        self.owner
    }

    /// The state, if the calling thread owns it.
    #[inline]
    pub fn get<'a>(&'a self, _py: Python<'a>) -> PyResult<&'a RefCell<T>> {
        if self.owner == thread_mark() {
            Ok(&self.cell)
        } else {
            Err(PyRuntimeError::new_err(
                "this verdigris loop object belongs to another thread; from other threads use \
                 loop.run_callback_threadsafe() or an async_ watcher",
            ))
        }
    }

    /// True when the calling thread owns the state.
    pub fn is_owner(&self) -> bool {
        self.owner == thread_mark()
    }
}
