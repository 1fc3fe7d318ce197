//! The blocked-loop monitor: notices when one callback, or one greenlet's run, holds the loop.
//!
//! The loop counts what it dispatches (a plain store: only its thread writes) and flags the
//! time it spends blocked in poll. A monitor thread, started by the hub, wakes every
//! `period` seconds *without the GIL* and compares the count with its last sample: unchanged,
//! outside poll, means the same callback has been running for at least `period`. Only then does
//! it take the GIL and call the Python `report(blocked_seconds)` callback, which captures the
//! offender's stack (the loop thread must release the GIL now and then for that, which Python
//! does at its switch interval, or in any blocking call). One report per blocking episode.
//!
//! Cost on the hot path: one relaxed store per dispatched entry. Cost while nothing blocks: a
//! thread that sleeps and reads two atomics per period, never touching the GIL.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// What the loop publishes for the monitor.
#[derive(Default)]
pub struct Activity {
    dispatches: AtomicU64,
    polling: AtomicBool,
}

impl Activity {
    /// Counts one dispatched entry. Only the loop's thread calls this.
    #[inline]
    pub fn dispatched(&self) {
        let n = self.dispatches.load(Ordering::Relaxed);
        self.dispatches.store(n.wrapping_add(1), Ordering::Relaxed);
    }

    /// Marks the start and end of a blocking poll.
    #[inline]
    pub fn set_polling(&self, polling: bool) {
        self.polling.store(polling, Ordering::Relaxed);
    }

    fn sample(&self) -> (u64, bool) {
        (self.dispatches.load(Ordering::Relaxed), self.polling.load(Ordering::Relaxed))
    }
}

/// A running monitor thread; `stop()` ends it.
#[pyclass(frozen, module = "verdigris._core")]
pub struct Monitor {
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
    period: f64,
    /// The process that started the thread: a forked child has no such thread to join.
    pid: u32,
}

impl Monitor {
    pub(crate) fn spawn(activity: Arc<Activity>, period: f64, report: Py<PyAny>) -> PyResult<Monitor> {
        if !(period.is_finite() && period > 0.0) {
            return Err(PyValueError::new_err(format!("max_blocking_time must be > 0: {period}")));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let thread_stop = stop.clone();
        let interval = Duration::from_secs_f64(period);
        let thread = std::thread::Builder::new()
            .name("verdigris-monitor".into())
            .spawn(move || watch(activity, interval, report, thread_stop))
            .map_err(|e| PyValueError::new_err(format!("starting the monitor thread: {e}")))?;
        Ok(Monitor { stop, thread: Mutex::new(Some(thread)), period, pid: std::process::id() })
    }
}

fn watch(activity: Arc<Activity>, interval: Duration, report: Py<PyAny>, stop: Arc<AtomicBool>) {
    let (mut last, _) = activity.sample();
    let mut since = Instant::now();
    let mut reported = false;
    while !stop.load(Ordering::Acquire) {
        std::thread::park_timeout(interval);
        if stop.load(Ordering::Acquire) {
            break;
        }
        let (count, polling) = activity.sample();
        if count != last || polling || count == 0 {
            last = count;
            since = Instant::now();
            reported = false;
            continue;
        }
        let blocked = since.elapsed();
        if !reported && blocked >= interval {
            reported = true;
            Python::attach(|py| {
                if stop.load(Ordering::Acquire) {
                    return;
                }
                if let Err(e) = report.call1(py, (blocked.as_secs_f64(),)) {
                    e.print(py);
                }
            });
        }
    }
    Python::attach(|_py| drop(report));
}

#[pymethods]
impl Monitor {
    /// Stops the monitor thread (and waits for it, unless called from it).
    fn stop(&self, py: Python<'_>) {
        self.stop.store(true, Ordering::Release);
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(handle) = handle {
            if self.pid != std::process::id() {
                // Forked child: the thread stayed in the parent; forget its handle.
                std::mem::forget(handle);
                return;
            }
            handle.thread().unpark();
            if handle.thread().id() != std::thread::current().id() {
                py.detach(|| {
                    let _ = handle.join();
                });
            }
        }
    }

    /// True while the thread runs.
    #[getter]
    fn running(&self) -> bool {
        !self.stop.load(Ordering::Acquire)
    }

    /// The blocking threshold, in seconds.
    #[getter]
    fn period(&self) -> f64 {
        self.period
    }
}
