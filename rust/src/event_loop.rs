//! The event loop: one cycle, run by the hub greenlet.
//!
//! ```text
//!   run():  loop {
//!       1. run a snapshot batch of the ready queue      (callbacks, fired watchers, wake-ups)
//!       2. decide how long to block                      (0 if work is queued; next timer; forever)
//!       3. poll for I/O with the GIL released            (skipped when nothing could be ready)
//!       4. turn readiness, expired timers and cross-thread sends into ready-queue entries
//!   }
//! ```
//!
//! Design notes
//!
//! * One FIFO queue. Everything that "happens" (a `run_callback`, a timer expiring, an fd
//!   becoming ready, a parked greenlet's wake-up) becomes a [`Ready`] entry and runs in step 1.
//!   Step 1 runs only the entries present when it starts: what they schedule runs on the next
//!   turn, after a poll, so `sleep(0)` is fair to other greenlets and to I/O.
//! * No Rust borrow is held across a call into Python. Every entry is popped under a short
//!   borrow, then run with none held, so a callback may freely schedule, arm, cancel, switch
//!   greenlets or even re-enter `run()`.
//! * The loop is alive while something can still happen: a queued entry, a cross-thread send on
//!   its way, or a started watcher or parked greenlet that "keeps the loop alive" (`ref=True`).
//!   When nothing is left, `run()` returns and the hub raises `LoopExit` in the waiting greenlet.
//! * Parked greenlets (sleep, fd waits) are "fused waits" (see [`crate::waits`]): the wake-up
//!   is a greenlet switch done here, through greenlet's C API, with no Python object in between.
//! * An exception escaping a callback goes to `error_handler.handle_error(context, type, value,
//!   tb)` (the hub) and the loop goes on; only an exception raised by that handler itself, or
//!   by a Python signal handler, ends `run()`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pyo3::exceptions::{PyOSError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::clock;
use crate::errors::{self, BlockingSwitchOutError, InvalidSwitchError};
use crate::greenlet_api;
use crate::hooks::{Hook, HookKind};
use crate::monitor::{Activity, Monitor};
use crate::owner::{thread_mark, Owned};
use crate::poll::{PollOutcome, Poller, READ, WRITE};
use crate::waits::{Outcome, Wait, WaitKey, Waits};
use crate::watchers::{Async, Callback, Io, Timer};
use crate::wheel::{Tick, TimerKey, Wheel};

thread_local! {
    /// The loop whose hub runs in this thread (set when `loop.hub` is set).
    static THREAD_LOOP: std::cell::RefCell<Option<Py<Loop>>> = const { std::cell::RefCell::new(None) };
}

/// This thread's loop, creating the hub (through `verdigris.hub.get_hub()`) on first use.
pub(crate) fn thread_loop(py: Python<'_>) -> PyResult<Py<Loop>> {
    if let Some(lp) = THREAD_LOOP.with(|cell| cell.borrow().as_ref().map(|l| l.clone_ref(py))) {
        return Ok(lp);
    }
    let hub = py.import("verdigris.hub")?.getattr("get_hub")?.call0()?;
    let lp = hub.getattr("loop")?;
    let lp = lp.cast::<Loop>().map_err(PyErr::from)?.clone().unbind();
    THREAD_LOOP.with(|cell| *cell.borrow_mut() = Some(lp.clone_ref(py)));
    Ok(lp)
}

/// `verdigris.sleep(seconds=0, ref=True)`: the current thread's loop parks the current greenlet.
#[pyfunction]
#[pyo3(signature = (seconds = 0.0, r#ref = true))]
pub fn sleep(py: Python<'_>, seconds: f64, r#ref: bool) -> PyResult<()> {
    thread_loop(py)?.get().sleep_impl(py, seconds, r#ref)
}

thread_local! {
    /// greenlet class (by address, the class kept alive) -> its `switch_out`, if any.
    static SWITCH_OUT: std::cell::RefCell<HashMap<usize, (Py<PyAny>, Option<Py<PyAny>>)>> =
        std::cell::RefCell::new(HashMap::new());
}

/// The `switch_out` hook of `current`'s class, looked up once per class: a failed attribute
/// lookup on a greenlet raises (and formats) an AttributeError, dearer than the switch.
fn switch_out_of<'py>(current: &Bound<'py, PyAny>) -> PyResult<Option<Bound<'py, PyAny>>> {
    let py = current.py();
    let cls = current.get_type();
    let addr = cls.as_ptr() as usize;
    if let Some(found) = SWITCH_OUT.with(|m| {
        m.borrow().get(&addr).map(|(_, hook)| hook.as_ref().map(|h| h.clone_ref(py)))
    }) {
        return Ok(found.map(|h| h.into_bound(py)));
    }
    let hook = match cls.getattr("switch_out") {
        Ok(h) if !h.is_none() => Some(h.unbind()),
        Ok(_) => None,
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyAttributeError>(py) => None,
        Err(e) => return Err(e),
    };
    let result = hook.as_ref().map(|h| h.clone_ref(py).into_bound(py));
    SWITCH_OUT.with(|m| m.borrow_mut().insert(addr, (cls.into_any().unbind(), hook)));
    Ok(result)
}

/// `Hub.switch()`: switches from the current greenlet to this thread's hub and returns what is
/// later switched back. Calls the current greenlet class's `switch_out(greenlet)` first (the
/// hub's own raises `BlockingSwitchOutError`). Arguments are ignored (it is installed as a
/// plain function in the `Hub` class, so `hub.switch()` passes none and `Hub.switch(hub)` one).
#[pyfunction]
#[pyo3(signature = (*_args))]
pub fn hub_switch<'py>(py: Python<'py>, _args: &Bound<'py, PyTuple>) -> PyResult<Bound<'py, PyAny>> {
    let lp = thread_loop(py)?;
    let api = greenlet_api::api();
    let current = api.current(py)?;
    if let Some(hook) = switch_out_of(&current)? {
        hook.call1((current.clone(),))?;
    }
    let hub = lp.get().hub_for(py, &current)?;
    api.switch(&hub, lp.get().empty.bind(py))
}

/// Nanoseconds per wheel tick (1 ms, the resolution of epoll's timeout).
const TICK_NS: u64 = 1_000_000;

/// One entry of the ready queue (and the payload of the timer wheel).
pub(crate) enum Ready {
    /// A `run_callback` callback.
    Call(Py<Callback>),
    /// A timer watcher that expired.
    Timer(Py<Timer>),
    /// An io watcher whose fd became ready.
    Io(Py<Io>),
    /// An async watcher that was sent.
    Async(Py<Async>),
    /// Switch back into a parked greenlet.
    Resume(WaitKey, Outcome),
}

/// What other threads may touch: a locked queue and the poller's waker.
pub(crate) struct Threadsafe {
    queue: Mutex<Vec<Ready>>,
    pending: AtomicBool,
    waker: Mutex<Arc<mio::Waker>>,
}

impl Threadsafe {
    /// Queues `entry` for the loop's thread and wakes its poll if needed.
    pub(crate) fn push(&self, entry: Ready) {
        self.queue.lock().unwrap_or_else(|e| e.into_inner()).push(entry);
        if !self.pending.swap(true, Ordering::AcqRel) {
            let waker = self.waker.lock().unwrap_or_else(|e| e.into_inner()).clone();
            // A failed wake (the eventfd is full) still leaves `pending` set, which the loop
            // checks before blocking, so nothing is lost.
            let _ = waker.wake();
        }
    }

    fn take(&self) -> Vec<Ready> {
        if !self.pending.swap(false, Ordering::AcqRel) {
            return Vec::new();
        }
        std::mem::take(&mut *self.queue.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn is_pending(&self) -> bool {
        self.pending.load(Ordering::Acquire)
    }
}

/// Everything the loop's thread owns, borrowed briefly and never across a call into Python.
struct State {
    ready: VecDeque<Ready>,
    wheel: Wheel<Ready>,
    waits: Waits,
    /// Started io watchers, by fd.
    io_watchers: HashMap<RawFd, Vec<Py<Io>>>,
    /// Fused I/O waits, by fd.
    fd_waits: HashMap<RawFd, Vec<WaitKey>>,
    /// Greenlets parked in `idle_wait`, resumed when a turn finds nothing else to do.
    idle_waits: Vec<WaitKey>,
    /// fds that fused waits keep registered until `close_fd`.
    kept_fds: HashSet<RawFd>,
    /// How many started watchers and parked greenlets keep the loop alive.
    refs: usize,
    /// The cached time (`now()`), in ns of CLOCK_MONOTONIC.
    now_ns: u64,
    expired: Vec<(TimerKey, Ready)>,
    /// Started hooks, by `HookKind` (prepare, check, idle, fork).
    hooks: [Vec<Py<Hook>>; 4],
    stop_requested: bool,
    destroyed: bool,
    error_handler: Option<Py<PyAny>>,
    hub: Option<Py<PyAny>>,
}

/// The poller and its event buffer: used without the GIL while blocked.
struct PollerCell {
    poller: Poller,
    events: Vec<(RawFd, u8)>,
}

/// The event loop of one thread (gevent's `ILoop`).
#[pyclass(frozen, subclass, module = "verdigris._core")]
pub struct Loop {
    state: Owned<State>,
    activity: Arc<Activity>,
    poller: Owned<PollerCell>,
    threadsafe: Arc<Threadsafe>,
    origin_ns: u64,
    default: bool,
    empty: Py<PyTuple>,
}

fn ticks_since(origin_ns: u64, ns: u64) -> Tick {
    ns.saturating_sub(origin_ns) / TICK_NS
}

fn os_error(context: &str, fd: RawFd, e: std::io::Error) -> PyErr {
    // The poller wraps OS errors with context; the errno is on the innermost one.
    let errno = e
        .raw_os_error()
        .or_else(|| {
            std::error::Error::source(&e)
                .and_then(|s| s.downcast_ref::<std::io::Error>())
                .and_then(std::io::Error::raw_os_error)
        })
        .unwrap_or(libc::EIO);
    let _ = (context, fd);
    PyOSError::new_err((errno, e.to_string()))
}

impl Loop {
    fn set_hub_inner(&self, py: Python<'_>, hub: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        if let Some(h) = &hub {
            if !greenlet_api::api().is_greenlet(h) {
                return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                    "loop.hub must be a greenlet, not {}",
                    h.get_type().name()?
                )));
            }
        }
        let old = std::mem::replace(&mut self.st(py)?.borrow_mut().hub, hub.map(Bound::unbind));
        drop(old);
        Ok(())
    }

    pub(crate) fn sleep_impl(&self, py: Python<'_>, seconds: f64, keeps_alive: bool) -> PyResult<()> {
        self.sleep(py, seconds, keeps_alive)
    }

    pub(crate) fn timeout_arm(
        &self,
        py: Python<'_>,
        seconds: f64,
        glet: Bound<'_, PyAny>,
        throws: Py<PyAny>,
        keeps_alive: bool,
    ) -> PyResult<u64> {
        self.arm_throw(py, seconds, glet, throws, keeps_alive)
    }

    pub(crate) fn timeout_disarm(&self, py: Python<'_>, token: u64) -> PyResult<bool> {
        self.disarm(py, token)
    }

    pub(crate) fn timeout_armed(&self, py: Python<'_>, token: u64) -> PyResult<bool> {
        self.is_armed(py, token)
    }

    pub(crate) fn threadsafe(&self) -> &Threadsafe {
        &self.threadsafe
    }

    fn st<'a>(&'a self, py: Python<'a>) -> PyResult<&'a std::cell::RefCell<State>> {
        self.state.get(py)
    }

    fn live_state<'a>(&'a self, py: Python<'a>) -> PyResult<std::cell::RefMut<'a, State>> {
        let st = self.st(py)?.borrow_mut();
        if st.destroyed {
            return Err(PyValueError::new_err("operation on destroyed loop"));
        }
        Ok(st)
    }

    /// Tick at which a timer armed now for `after` seconds is due (rounded up: never early).
    fn deadline_for(&self, after: f64) -> Tick {
        let due = clock::monotonic_ns().saturating_add(clock::seconds_to_ns(after));
        due.saturating_sub(self.origin_ns).div_ceil(TICK_NS)
    }

    pub(crate) fn arm_timer(&self, py: Python<'_>, after: f64, entry: Ready) -> PyResult<TimerKey> {
        let deadline = self.deadline_for(after);
        Ok(self.live_state(py)?.wheel.insert(deadline, entry))
    }

    pub(crate) fn cancel_timer(&self, py: Python<'_>, key: TimerKey) -> PyResult<()> {
        // Dropping the payload (a Py) with the GIL held is fine; the borrow is released first.
        let payload = self.st(py)?.borrow_mut().wheel.cancel(key);
        drop(payload);
        Ok(())
    }

    pub(crate) fn add_refs(&self, py: Python<'_>, delta: isize) -> PyResult<()> {
        let mut st = self.st(py)?.borrow_mut();
        st.refs = st.refs.checked_add_signed(delta).unwrap_or_else(|| {
            debug_assert!(false, "loop keep-alive count went negative");
            0
        });
        Ok(())
    }

    pub(crate) fn acquire_fd(&self, py: Python<'_>, fd: RawFd) -> PyResult<()> {
        self.poller.get(py)?.borrow_mut().poller.register(fd).map_err(|e| os_error("registering", fd, e))
    }

    pub(crate) fn release_fd(&self, py: Python<'_>, fd: RawFd) -> PyResult<()> {
        self.poller.get(py)?.borrow_mut().poller.deregister(fd);
        Ok(())
    }

    /// An io watcher was started: index it by fd, and fire it at once if the fd is ready now
    /// (level-triggered semantics on top of edge-triggered polling).
    pub(crate) fn io_started(&self, py: Python<'_>, io: Py<Io>) -> PyResult<()> {
        let (fd, events) = {
            let st = io.get().state.get(py)?.borrow();
            (st.fd, st.events)
        };
        let ready = self.ready_now(py, fd, events)?;
        let mut st = self.live_state(py)?;
        if ready != 0 {
            let mut ios = io.get().state.get(py)?.borrow_mut();
            ios.core.pending = true;
            ios.revents = ready;
            st.ready.push_back(Ready::Io(io.clone_ref(py)));
        }
        st.io_watchers.entry(fd).or_default().push(io);
        Ok(())
    }

    pub(crate) fn io_stopped(&self, py: Python<'_>, fd: RawFd, io: &Io) -> PyResult<()> {
        let mut st = self.st(py)?.borrow_mut();
        if let Some(list) = st.io_watchers.get_mut(&fd) {
            list.retain(|w| !std::ptr::eq(w.get(), io));
            if list.is_empty() {
                st.io_watchers.remove(&fd);
            }
        }
        Ok(())
    }

    /// Ready bits of `fd` among `events`, asking the kernel only when the cache says "maybe".
    fn ready_now(&self, py: Python<'_>, fd: RawFd, events: u8) -> PyResult<u8> {
        let mut pc = self.poller.get(py)?.borrow_mut();
        if pc.poller.readiness(fd) & events == 0 {
            return Ok(0);
        }
        Ok(pc.poller.check_now(fd, events))
    }

    /// The hub greenlet to switch to, refusing to block inside the hub itself.
    fn hub_for<'py>(&self, py: Python<'py>, current: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
        let st = self.st(py)?.borrow();
        let hub = st.hub.as_ref().ok_or_else(|| {
            PyValueError::new_err("loop has no hub greenlet to switch to (loop.hub is not set)")
        })?;
        let hub = hub.bind(py).clone();
        if hub.is(current) {
            return Err(BlockingSwitchOutError::new_err(
                "Impossible to call blocking function in the event loop callback",
            ));
        }
        Ok(hub)
    }

    /// Parks the current greenlet in `wait` and switches to the hub; returns how it was resumed
    /// (None: by a stray switch) after removing every trace of the wait.
    fn park(
        &self,
        py: Python<'_>,
        hub: &Bound<'_, PyAny>,
        current: &Bound<'_, PyAny>,
        key: WaitKey,
    ) -> PyResult<Option<Outcome>> {
        let switched = greenlet_api::api().switch(hub, self.empty.bind(py));
        let fired = self.unpark(py, key)?;
        match switched {
            Err(e) => Err(e),
            Ok(value) => {
                if fired.is_none() {
                    return Err(InvalidSwitchError::new_err(format!(
                        "Invalid switch into {}: got {} while it waited in the loop",
                        current.repr()?,
                        value.repr()?
                    )));
                }
                Ok(fired)
            }
        }
    }

    /// Removes a wait: cancels its timer, unindexes its fd, gives back its keep-alive.
    fn unpark(&self, py: Python<'_>, key: WaitKey) -> PyResult<Option<Outcome>> {
        let (wait, timer_payload, release_fd) = {
            let mut st = self.st(py)?.borrow_mut();
            let Some(wait) = st.waits.remove(key) else { return Ok(None) };
            let timer_payload = wait.timer.and_then(|t| st.wheel.cancel(t));
            let mut release_fd = None;
            if let Some((fd, _)) = wait.fd {
                if let Some(list) = st.fd_waits.get_mut(&fd) {
                    list.retain(|k| *k != key);
                    if list.is_empty() {
                        st.fd_waits.remove(&fd);
                    }
                }
                if wait.owns_registration {
                    release_fd = Some(fd);
                }
            }
            if wait.counts_ref {
                st.refs -= 1;
            }
            if !wait.queued {
                st.idle_waits.retain(|k| *k != key);
            }
            (wait, timer_payload, release_fd)
        };
        if let Some(fd) = release_fd {
            self.release_fd(py, fd)?;
        }
        drop(timer_payload);
        Ok(wait.fired)
    }

    // -----------------------------------------------------------------------------------------
    // The cycle
    // -----------------------------------------------------------------------------------------

    /// Step 1: runs the entries queued before it started. Errs only when the error handler did.
    fn run_batch(&self, py: Python<'_>) -> PyResult<()> {
        let n = self.st(py)?.borrow().ready.len();
        for _ in 0..n {
            let Some(entry) = self.st(py)?.borrow_mut().ready.pop_front() else { break };
            self.activity.dispatched();
            self.dispatch(py, entry)?;
        }
        Ok(())
    }

    fn dispatch(&self, py: Python<'_>, entry: Ready) -> PyResult<()> {
        let (target, context): (Option<(Py<PyAny>, Py<PyTuple>)>, Py<PyAny>) = match entry {
            Ready::Resume(key, outcome) => return self.resume(py, key, outcome),
            Ready::Call(cb) => (cb.get().take(py)?, cb.into_any()),
            Ready::Timer(t) => (t.get().take_fire(py)?, t.into_any()),
            Ready::Async(a) => (a.get().take_fire(py)?, a.into_any()),
            Ready::Io(io) => {
                let target = io.get().take_fire(py)?;
                if let Some((cb, args)) = target {
                    let result = cb.bind(py).call1(args.bind(py));
                    if let Err(e) = result {
                        self.report_error(py, io.clone_ref(py).into_any(), e)?;
                    }
                    self.io_level_recheck(py, &io)?;
                }
                return Ok(());
            }
        };
        if let Some((cb, args)) = target {
            if let Err(e) = cb.bind(py).call1(args.bind(py)) {
                self.report_error(py, context, e)?;
            }
        }
        Ok(())
    }

    /// After an io watcher ran: if it is still started and the fd may still be ready (nobody
    /// observed EAGAIN), fire it again next turn, as a level-triggered watcher would.
    fn io_level_recheck(&self, py: Python<'_>, io: &Py<Io>) -> PyResult<()> {
        let (fd, events, active, pending) = {
            let st = io.get().state.get(py)?.borrow();
            (st.fd, st.events, st.core.active, st.core.pending)
        };
        if !active || pending {
            return Ok(());
        }
        let ready = self.ready_now(py, fd, events)?;
        if ready != 0 {
            {
                let mut st = io.get().state.get(py)?.borrow_mut();
                st.core.pending = true;
                st.revents = ready;
            }
            self.st(py)?.borrow_mut().ready.push_back(Ready::Io(io.clone_ref(py)));
        }
        Ok(())
    }

    fn resume(&self, py: Python<'_>, key: WaitKey, outcome: Outcome) -> PyResult<()> {
        let glet = {
            let mut st = self.st(py)?.borrow_mut();
            if st.waits.get_mut(key).is_some_and(|w| w.throw.is_some()) {
                // An armed timeout fired: it is done, whatever the throw does.
                let wait = st.waits.remove(key).expect("checked above");
                if wait.counts_ref {
                    st.refs -= 1;
                }
                drop(st);
                return self.throw_timeout(py, wait);
            }
            match st.waits.get_mut(key) {
                Some(wait) if wait.fired.is_none() => {
                    wait.fired = Some(outcome);
                    wait.glet.clone_ref(py)
                }
                _ => return Ok(()), // stale: the greenlet was resumed some other way
            }
        };
        let glet = glet.into_bound(py);
        if let Err(e) = greenlet_api::api().switch(&glet, self.empty.bind(py)) {
            self.report_error(py, glet.unbind(), e)?;
        }
        Ok(())
    }

    fn throw_timeout(&self, py: Python<'_>, wait: Wait) -> PyResult<()> {
        let api = greenlet_api::api();
        let glet = wait.glet.into_bound(py);
        let exc = wait.throw.expect("a timeout wait").into_bound(py);
        if !api.is_active(&glet) {
            // Dead, or never started: gevent's timeout does nothing then.
            let dead: bool = glet.getattr("dead")?.is_truthy()?;
            if dead {
                return Ok(());
            }
        }
        if let Err(e) = api.throw(&glet, &exc) {
            self.report_error(py, glet.unbind(), e)?;
        }
        Ok(())
    }

    /// Hands an exception from a callback to the error handler (gevent: `hub.handle_error`).
    fn report_error(&self, py: Python<'_>, context: Py<PyAny>, err: PyErr) -> PyResult<()> {
        let handler = self.st(py)?.borrow().error_handler.as_ref().map(|h| h.clone_ref(py));
        match handler {
            Some(handler) => {
                let value = err.value(py).clone();
                let typ = value.get_type();
                let tb = err.traceback(py);
                handler.bind(py).call_method1("handle_error", (context, typ, value, tb))?;
                Ok(())
            }
            None => {
                err.print(py);
                Ok(())
            }
        }
    }

    /// Steps 2 and 3: how long to block, then poll. Returns false when the loop has nothing
    /// left that could ever happen.
    fn poll_once(&self, py: Python<'_>, nowait: bool) -> PyResult<bool> {
        let timeout = {
            let st = self.st(py)?.borrow();
            let idle = !st.idle_waits.is_empty() || !st.hooks[HookKind::Idle as usize].is_empty();
            if !st.ready.is_empty() || self.threadsafe.is_pending() || idle {
                Some(Duration::ZERO)
            } else if st.refs == 0 {
                return Ok(false);
            } else if nowait {
                Some(Duration::ZERO)
            } else {
                st.wheel.next_expiration().map(|tick| {
                    let due_ns = self.origin_ns.saturating_add(tick.saturating_mul(TICK_NS));
                    Duration::from_nanos(due_ns.saturating_sub(clock::monotonic_ns()))
                })
            }
        };
        let outcome = {
            let mut pc_ref = self.poller.get(py)?.borrow_mut();
            let pc: &mut PollerCell = &mut pc_ref;
            if timeout == Some(Duration::ZERO) && pc.poller.len() == 0 {
                // Nothing registered can be ready: skip the system call.
                pc.events.clear();
                PollOutcome::default()
            } else {
                let PollerCell { poller, events } = pc;
                self.activity.set_polling(true);
                let polled = py.detach(|| poller.poll(timeout, events));
                self.activity.set_polling(false);
                polled.map_err(|e| os_error("polling with", -1, e))?
            }
        };
        if outcome.interrupted || outcome.signalled {
            py.check_signals()?;
        }
        Ok(true)
    }

    /// Step 4: readiness, expired timers and cross-thread entries become ready-queue entries.
    fn collect(&self, py: Python<'_>) -> PyResult<()> {
        let events = std::mem::take(&mut self.poller.get(py)?.borrow_mut().events);
        let now = clock::monotonic_ns();
        let mut expired = {
            let mut st = self.st(py)?.borrow_mut();
            st.now_ns = now;
            let mut expired = std::mem::take(&mut st.expired);
            st.wheel.advance(ticks_since(self.origin_ns, now), &mut expired);
            for &(fd, bits) in &events {
                self.collect_fd(py, &mut st, fd, bits)?;
            }
            expired
        };
        self.poller.get(py)?.borrow_mut().events = events;
        for (_, entry) in expired.drain(..) {
            match entry {
                Ready::Timer(t) => self.timer_expired(py, t)?,
                Ready::Resume(key, outcome) => {
                    let mut st = self.st(py)?.borrow_mut();
                    if let Some(wait) = st.waits.get_mut(key) {
                        wait.timer = None;
                        if !wait.queued {
                            wait.queued = true;
                            st.ready.push_back(Ready::Resume(key, outcome));
                        }
                    }
                }
                other => self.st(py)?.borrow_mut().ready.push_back(other),
            }
        }
        self.st(py)?.borrow_mut().expired = expired;
        for entry in self.threadsafe.take() {
            match entry {
                Ready::Async(a) => {
                    if a.get().received(py)? {
                        self.st(py)?.borrow_mut().ready.push_back(Ready::Async(a));
                    }
                }
                other => self.st(py)?.borrow_mut().ready.push_back(other),
            }
        }
        let mut st = self.st(py)?.borrow_mut();
        if st.ready.is_empty() && !st.idle_waits.is_empty() {
            let State { idle_waits, waits, ready, .. } = &mut *st;
            for key in idle_waits.drain(..) {
                if let Some(wait) = waits.get_mut(key) {
                    if !wait.queued {
                        wait.queued = true;
                        ready.push_back(Ready::Resume(key, Outcome::Ready));
                    }
                }
            }
        }
        Ok(())
    }

    fn collect_fd(&self, py: Python<'_>, st: &mut State, fd: RawFd, bits: u8) -> PyResult<()> {
        let State { io_watchers, fd_waits, waits, ready, .. } = st;
        if let Some(list) = io_watchers.get(&fd) {
            for io in list {
                let mut ios = io.get().state.get(py)?.borrow_mut();
                let hit = ios.events & bits;
                if hit != 0 && ios.core.active && !ios.core.pending {
                    ios.core.pending = true;
                    ios.revents = hit;
                    ready.push_back(Ready::Io(io.clone_ref(py)));
                }
            }
        }
        if let Some(keys) = fd_waits.get(&fd) {
            for &key in keys {
                if let Some(wait) = waits.get_mut(key) {
                    let wanted = wait.fd.map_or(0, |(_, e)| e);
                    if wanted & bits != 0 && !wait.queued {
                        wait.queued = true;
                        ready.push_back(Ready::Resume(key, Outcome::Ready));
                    }
                }
            }
        }
        Ok(())
    }

    fn timer_expired(&self, py: Python<'_>, t: Py<Timer>) -> PyResult<()> {
        let (rearm, released) = t.get().expired(py)?;
        if let Some(repeat) = rearm {
            let key = self.arm_timer(py, repeat, Ready::Timer(t.clone_ref(py)))?;
            t.get().set_key(py, key)?;
        }
        let mut st = self.st(py)?.borrow_mut();
        if released {
            st.refs -= 1;
        }
        st.ready.push_back(Ready::Timer(t));
        Ok(())
    }

    pub(crate) fn hook_started(&self, py: Python<'_>, kind: HookKind, hook: Py<Hook>) -> PyResult<()> {
        self.live_state(py)?.hooks[kind as usize].push(hook);
        Ok(())
    }

    pub(crate) fn hook_stopped(&self, py: Python<'_>, kind: HookKind, hook: &Hook) -> PyResult<()> {
        self.st(py)?.borrow_mut().hooks[kind as usize].retain(|h| !std::ptr::eq(h.get(), hook));
        Ok(())
    }

    /// Calls every started hook of `kind` (a snapshot: hooks started meanwhile wait a turn).
    fn run_hooks(&self, py: Python<'_>, kind: HookKind) -> PyResult<()> {
        let hooks: Vec<Py<Hook>> = {
            let st = self.st(py)?.borrow();
            let list = &st.hooks[kind as usize];
            if list.is_empty() {
                return Ok(());
            }
            list.iter().map(|h| h.clone_ref(py)).collect()
        };
        for hook in hooks {
            if let Some((cb, args)) = hook.get().target(py)? {
                self.activity.dispatched();
                if let Err(e) = cb.bind(py).call1(args.bind(py)) {
                    self.report_error(py, hook.clone_ref(py).into_any(), e)?;
                }
            }
        }
        Ok(())
    }

    fn make_hook(slf: &Bound<'_, Self>, kind: HookKind, keeps_alive: bool, priority: Option<i32>) -> PyResult<Hook> {
        slf.get().live_state(slf.py())?;
        Ok(Hook::create(slf.py(), slf.clone().unbind(), kind, keeps_alive, priority))
    }

    fn validate_fd(fd: RawFd, events: u8) -> PyResult<()> {
        if fd < 0 {
            return Err(PyValueError::new_err(format!("fd must be non-negative: {fd}")));
        }
        if events == 0 || events & !(READ | WRITE) != 0 {
            return Err(PyValueError::new_err(format!("illegal event mask: {events}")));
        }
        Ok(())
    }
}

#[pymethods]
impl Loop {
    #[new]
    #[pyo3(signature = (default = false))]
    fn py_new(py: Python<'_>, default: bool) -> PyResult<Self> {
        let poller = Poller::new().map_err(|e| os_error("creating the poller", -1, e))?;
        let threadsafe = Arc::new(Threadsafe {
            queue: Mutex::new(Vec::new()),
            pending: AtomicBool::new(false),
            waker: Mutex::new(poller.waker()),
        });
        let origin_ns = clock::monotonic_ns();
        Ok(Loop {
            state: Owned::new(State {
                ready: VecDeque::new(),
                wheel: Wheel::new(),
                waits: Waits::default(),
                io_watchers: HashMap::new(),
                fd_waits: HashMap::new(),
                idle_waits: Vec::new(),
                kept_fds: HashSet::new(),
                refs: 0,
                now_ns: origin_ns,
                expired: Vec::new(),
                hooks: Default::default(),
                stop_requested: false,
                destroyed: false,
                error_handler: None,
                hub: None,
            }),
            poller: Owned::new(PollerCell { poller, events: Vec::new() }),
            activity: Arc::new(Activity::default()),
            threadsafe,
            origin_ns,
            default,
            empty: PyTuple::empty(py).unbind(),
        })
    }

    /// True for the main thread's loop.
    #[getter]
    fn default(&self) -> bool {
        self.default
    }

    /// Receives `handle_error(context, type, value, tb)` for exceptions escaping callbacks.
    #[getter]
    fn get_error_handler(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.st(py)?.borrow().error_handler.as_ref().map(|h| h.clone_ref(py)))
    }

    #[setter]
    fn set_error_handler(&self, py: Python<'_>, handler: Option<Py<PyAny>>) -> PyResult<()> {
        let old = std::mem::replace(&mut self.st(py)?.borrow_mut().error_handler, handler);
        drop(old);
        Ok(())
    }

    /// The greenlet that runs this loop; parked greenlets switch to it.
    #[getter]
    fn get_hub(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.st(py)?.borrow().hub.as_ref().map(|h| h.clone_ref(py)))
    }

    #[setter]
    fn set_hub(slf: &Bound<'_, Self>, hub: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if this.state.is_owner() {
            let me = slf.clone().unbind();
            let attach = hub.is_some();
            THREAD_LOOP.with(|cell| {
                let mut cur = cell.borrow_mut();
                let is_me = cur.as_ref().is_some_and(|l| l.is(&me));
                if attach {
                    *cur = Some(me);
                } else if is_me {
                    *cur = None;
                }
            });
        }
        this.set_hub_inner(py, hub)
    }

    /// The loop's cached time (seconds of `time.monotonic()`), updated every turn.
    fn now(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.st(py)?.borrow().now_ns as f64 / 1e9)
    }

    /// Refreshes the cached time.
    fn update_now(&self, py: Python<'_>) -> PyResult<()> {
        self.st(py)?.borrow_mut().now_ns = clock::monotonic_ns();
        Ok(())
    }

    /// The granularity of timers, in seconds.
    #[getter]
    fn approx_timer_resolution(&self) -> f64 {
        TICK_NS as f64 / 1e9
    }

    /// Runs the loop until nothing can happen any more (or `break_()`), in the hub greenlet.
    /// `nowait`: one turn without blocking; `once`: one turn, blocking if nothing is queued.
    #[pyo3(signature = (nowait = false, once = false))]
    fn run(&self, py: Python<'_>, nowait: bool, once: bool) -> PyResult<()> {
        if self.st(py)?.borrow().destroyed {
            return Err(PyValueError::new_err("operation on destroyed loop"));
        }
        loop {
            self.run_batch(py)?;
            {
                let mut st = self.st(py)?.borrow_mut();
                if std::mem::take(&mut st.stop_requested) || st.destroyed {
                    return Ok(());
                }
            }
            self.run_hooks(py, HookKind::Prepare)?;
            if !self.poll_once(py, nowait)? {
                return Ok(());
            }
            self.collect(py)?;
            self.run_hooks(py, HookKind::Check)?;
            if self.st(py)?.borrow().ready.is_empty() {
                self.run_hooks(py, HookKind::Idle)?;
            }
            if nowait || once {
                return self.run_batch(py);
            }
        }
    }

    /// Makes `run()` return after the current batch (gevent's `break_`).
    #[pyo3(signature = (how = None))]
    fn break_(&self, py: Python<'_>, how: Option<i32>) -> PyResult<()> {
        let _ = how;
        self.st(py)?.borrow_mut().stop_requested = true;
        Ok(())
    }

    /// Schedules `func(*args)` to run in the hub on the next turn (FIFO).
    #[pyo3(signature = (func, *args))]
    fn run_callback(&self, py: Python<'_>, func: Py<PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<Py<Callback>> {
        if !func.bind(py).is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "Expected callable, not {}",
                func.bind(py).repr()?
            )));
        }
        let cb = Py::new(py, Callback::new(self.state.owner(), func, args.clone().unbind()))?;
        self.live_state(py)?.ready.push_back(Ready::Call(cb.clone_ref(py)));
        Ok(cb)
    }

    /// `run_callback` for other threads: queues under a lock and wakes a blocked poll.
    #[pyo3(signature = (func, *args))]
    fn run_callback_threadsafe(
        &self,
        py: Python<'_>,
        func: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
    ) -> PyResult<Py<Callback>> {
        if !func.bind(py).is_callable() {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "Expected callable, not {}",
                func.bind(py).repr()?
            )));
        }
        let cb = Py::new(py, Callback::new(self.state.owner(), func, args.clone().unbind()))?;
        self.threadsafe.push(Ready::Call(cb.clone_ref(py)));
        Ok(cb)
    }

    /// A timer watcher (see `Timer`).
    #[pyo3(signature = (after, repeat = 0.0, r#ref = true, priority = None))]
    fn timer(
        slf: &Bound<'_, Self>,
        after: f64,
        repeat: f64,
        r#ref: bool,
        priority: Option<i32>,
    ) -> PyResult<Timer> {
        slf.get().live_state(slf.py())?;
        Timer::create(slf.py(), slf.clone().unbind(), after, repeat, r#ref, priority)
    }

    /// An io watcher on `fd` for `events` (1 READ, 2 WRITE, 3 both).
    #[pyo3(signature = (fd, events, r#ref = true, priority = None))]
    fn io(slf: &Bound<'_, Self>, fd: RawFd, events: u8, r#ref: bool, priority: Option<i32>) -> PyResult<Io> {
        slf.get().live_state(slf.py())?;
        Loop::validate_fd(fd, events)?;
        Ok(Io::create(slf.py(), slf.clone().unbind(), fd, events, r#ref, priority))
    }

    /// An async watcher: `send()` from any thread runs its callback here.
    #[pyo3(signature = (r#ref = true, priority = None))]
    fn async_(slf: &Bound<'_, Self>, r#ref: bool, priority: Option<i32>) -> PyResult<Async> {
        slf.get().live_state(slf.py())?;
        Ok(Async::create(slf.py(), slf.clone().unbind(), r#ref, priority))
    }

    /// A watcher whose callback runs before every poll.
    #[pyo3(signature = (r#ref = true, priority = None))]
    fn prepare(slf: &Bound<'_, Self>, r#ref: bool, priority: Option<i32>) -> PyResult<Hook> {
        Loop::make_hook(slf, HookKind::Prepare, r#ref, priority)
    }

    /// A watcher whose callback runs after every poll.
    #[pyo3(signature = (r#ref = true, priority = None))]
    fn check(slf: &Bound<'_, Self>, r#ref: bool, priority: Option<i32>) -> PyResult<Hook> {
        Loop::make_hook(slf, HookKind::Check, r#ref, priority)
    }

    /// A watcher whose callback runs when a turn has nothing else to do (the loop then never
    /// blocks while it is started).
    #[pyo3(signature = (r#ref = true, priority = None))]
    fn idle(slf: &Bound<'_, Self>, r#ref: bool, priority: Option<i32>) -> PyResult<Hook> {
        Loop::make_hook(slf, HookKind::Idle, r#ref, priority)
    }

    /// A watcher whose callback runs in a forked child, after `reinit()`.
    #[pyo3(signature = (r#ref = true, priority = None))]
    fn fork(slf: &Bound<'_, Self>, r#ref: bool, priority: Option<i32>) -> PyResult<Hook> {
        Loop::make_hook(slf, HookKind::Fork, r#ref, priority)
    }

    /// Starts the blocked-loop monitor: a thread that calls `report(blocked_seconds)` (with the
    /// GIL, from the monitor thread) when one callback or greenlet run has held the loop for
    /// `max_blocking_time` seconds. See `verdigris._core.Monitor`.
    fn start_monitor(&self, max_blocking_time: f64, report: Py<PyAny>) -> PyResult<Monitor> {
        Monitor::spawn(self.activity.clone(), max_blocking_time, report)
    }

    /// Parks the current greenlet for `seconds` (<= 0: until the next turn, behind everything
    /// already queued). With `ref=False` the sleep does not keep the loop alive.
    #[pyo3(signature = (seconds, r#ref = true))]
    fn sleep(&self, py: Python<'_>, seconds: f64, r#ref: bool) -> PyResult<()> {
        if seconds.is_nan() {
            return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
        }
        let current = greenlet_api::api().current(py)?;
        let hub = self.hub_for(py, &current)?;
        let key = {
            let mut st = self.live_state(py)?;
            let mut wait = Wait::new(current.clone().unbind());
            if seconds <= 0.0 {
                wait.queued = true;
                let key = st.waits.insert(wait);
                st.ready.push_back(Ready::Resume(key, Outcome::Ready));
                key
            } else {
                wait.counts_ref = r#ref;
                let key = st.waits.insert(wait);
                let timer = st.wheel.insert(self.deadline_for(seconds), Ready::Resume(key, Outcome::Ready));
                st.waits.get_mut(key).expect("just inserted").timer = Some(timer);
                if r#ref {
                    st.refs += 1;
                }
                key
            }
        };
        self.park(py, &hub, &current, key).map(|_| ())
    }

    /// Arms a timeout: after `seconds`, `exception` (an instance or a class) is thrown into
    /// `glet`, unless `disarm(token)` comes first. Returns the token. Cheaper than a timer
    /// watcher: nothing is allocated on the Python side (this is what `Timeout` uses).
    #[pyo3(signature = (seconds, glet, exception, r#ref = true))]
    fn arm_throw(
        &self,
        py: Python<'_>,
        seconds: f64,
        glet: Bound<'_, PyAny>,
        exception: Py<PyAny>,
        r#ref: bool,
    ) -> PyResult<u64> {
        if seconds.is_nan() {
            return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
        }
        if !greenlet_api::api().is_greenlet(&glet) {
            return Err(pyo3::exceptions::PyTypeError::new_err(format!(
                "expected a greenlet, not {}",
                glet.get_type().name()?
            )));
        }
        let deadline = self.deadline_for(seconds);
        let mut st = self.live_state(py)?;
        let mut wait = Wait::new(glet.unbind());
        wait.throw = Some(exception);
        wait.counts_ref = r#ref;
        let key = st.waits.insert(wait);
        let timer = st.wheel.insert(deadline, Ready::Resume(key, Outcome::TimedOut));
        st.waits.get_mut(key).expect("just inserted").timer = Some(timer);
        if r#ref {
            st.refs += 1;
        }
        Ok(key.to_token())
    }

    /// Disarms a timeout armed by `arm_throw`; returns whether it was still pending.
    fn disarm(&self, py: Python<'_>, token: u64) -> PyResult<bool> {
        let (wait, payload) = {
            let mut st = self.st(py)?.borrow_mut();
            let key = WaitKey::from_token(token);
            if !st.waits.get_mut(key).is_some_and(|w| w.throw.is_some()) {
                return Ok(false);
            }
            let wait = st.waits.remove(key).expect("checked above");
            if wait.counts_ref {
                st.refs -= 1;
            }
            let payload = wait.timer.and_then(|t| st.wheel.cancel(t));
            (wait, payload)
        };
        drop((wait, payload));
        Ok(true)
    }

    /// True while a timeout armed by `arm_throw` has not been disarmed or delivered.
    fn is_armed(&self, py: Python<'_>, token: u64) -> PyResult<bool> {
        let mut st = self.st(py)?.borrow_mut();
        Ok(st.waits.get_mut(WaitKey::from_token(token)).is_some_and(|w| w.throw.is_some()))
    }

    /// Parks the current greenlet until the loop has nothing else to do: no entry queued and
    /// nothing ready after a non-blocking poll (gevent's `idle()`).
    fn idle_wait(&self, py: Python<'_>) -> PyResult<()> {
        let current = greenlet_api::api().current(py)?;
        let hub = self.hub_for(py, &current)?;
        let key = {
            let mut st = self.live_state(py)?;
            let mut wait = Wait::new(current.clone().unbind());
            wait.counts_ref = true;
            let key = st.waits.insert(wait);
            st.idle_waits.push(key);
            st.refs += 1;
            key
        };
        self.park(py, &hub, &current, key).map(|_| ())
    }

    /// Parks the current greenlet until `fd` is ready for `events` (1 READ, 2 WRITE, 3 both).
    /// Returns True when ready, False when `timeout` seconds passed first. Raises OSError(EBADF)
    /// if `close_fd(fd)` is called meanwhile.
    ///
    /// `eagain=True` says the caller just got EAGAIN, so cached readiness is stale and is
    /// dropped; otherwise a cached "ready" is confirmed with one non-blocking poll and returns
    /// at once. `keep=True` leaves the fd registered after the wait until `close_fd(fd)` (the
    /// cooperative socket does that); `keep=False` registers it for this wait only.
    #[pyo3(signature = (fd, events, timeout = None, eagain = true, keep = true))]
    fn wait_fd(
        &self,
        py: Python<'_>,
        fd: RawFd,
        events: u8,
        timeout: Option<f64>,
        eagain: bool,
        keep: bool,
    ) -> PyResult<bool> {
        Loop::validate_fd(fd, events)?;
        if let Some(t) = timeout {
            if t.is_nan() {
                return Err(PyValueError::new_err("Invalid value NaN (not a number)"));
            }
        }
        let current = greenlet_api::api().current(py)?;
        let hub = self.hub_for(py, &current)?;
        // Registration: kept (socket lifetime) or for this wait only.
        let kept = self.st(py)?.borrow().kept_fds.contains(&fd);
        if !kept {
            self.acquire_fd(py, fd)?;
            if keep {
                self.st(py)?.borrow_mut().kept_fds.insert(fd);
            }
        }
        let registered_for_wait = !kept && !keep;
        {
            let mut pc = self.poller.get(py)?.borrow_mut();
            if eagain {
                pc.poller.clear_readiness(fd, events);
            } else if pc.poller.readiness(fd) & events != 0 && pc.poller.check_now(fd, events) != 0 {
                drop(pc);
                if registered_for_wait {
                    self.release_fd(py, fd)?;
                }
                return Ok(true);
            }
        }
        if timeout.is_some_and(|t| t <= 0.0) {
            if registered_for_wait {
                self.release_fd(py, fd)?;
            }
            return Ok(false);
        }
        let key = {
            let mut st = self.live_state(py)?;
            let mut wait = Wait::new(current.clone().unbind());
            wait.fd = Some((fd, events));
            wait.counts_ref = true;
            wait.owns_registration = registered_for_wait;
            let key = st.waits.insert(wait);
            if let Some(t) = timeout {
                let timer = st.wheel.insert(self.deadline_for(t), Ready::Resume(key, Outcome::TimedOut));
                st.waits.get_mut(key).expect("just inserted").timer = Some(timer);
            }
            st.fd_waits.entry(fd).or_default().push(key);
            st.refs += 1;
            key
        };
        match self.park(py, &hub, &current, key)? {
            Some(Outcome::Ready) | None => Ok(true),
            Some(Outcome::TimedOut) => Ok(false),
            Some(Outcome::Closed) => Err(errors::cancel_wait_error()),
        }
    }

    /// Forgets `fd` before it is closed: greenlets waiting on it get OSError(EBADF) ("File
    /// descriptor was closed in another greenlet") and the poller drops the kept registration.
    fn close_fd(&self, py: Python<'_>, fd: RawFd) -> PyResult<()> {
        let was_kept = {
            let mut st = self.st(py)?.borrow_mut();
            let State { fd_waits, waits, ready, kept_fds, .. } = &mut *st;
            if let Some(keys) = fd_waits.get(&fd) {
                for &key in keys {
                    if let Some(wait) = waits.get_mut(key) {
                        if !wait.queued {
                            wait.queued = true;
                            ready.push_back(Ready::Resume(key, Outcome::Closed));
                        } else if wait.fired.is_none() {
                            // A wake-up is queued already: the close overtakes it, and the
                            // queued one then finds the wait fired and is skipped.
                            ready.push_front(Ready::Resume(key, Outcome::Closed));
                        }
                    }
                }
            }
            kept_fds.remove(&fd)
        };
        if was_kept {
            self.release_fd(py, fd)?;
        }
        Ok(())
    }

    /// Cached readiness bits of `fd` (1 READ, 2 WRITE), as last reported by the poller.
    fn fd_readiness(&self, py: Python<'_>, fd: RawFd) -> PyResult<u8> {
        Ok(self.poller.get(py)?.borrow().poller.readiness(fd))
    }

    /// Write end of the signal wake-up pipe, for `signal.set_wakeup_fd`.
    fn signal_wakeup_fd(&self, py: Python<'_>) -> PyResult<RawFd> {
        Ok(self.poller.get(py)?.borrow().poller.signal_wakeup_fd())
    }

    /// After `os.fork()`, in the child: a fresh poller (the parent's epoll instance must not be
    /// shared), with every registered fd registered again.
    fn reinit(&self, py: Python<'_>) -> PyResult<()> {
        let mut pc = self.poller.get(py)?.borrow_mut();
        pc.poller.reinit().map_err(|e| os_error("re-creating the poller after fork:", -1, e))?;
        *self.threadsafe.waker.lock().unwrap_or_else(|e| e.into_inner()) = pc.poller.waker();
        drop(pc);
        self.run_hooks(py, HookKind::Fork)
    }

    /// Stops the loop for good and drops everything queued or armed.
    fn destroy(&self, py: Python<'_>) -> PyResult<()> {
        let (ready, wheel, io_watchers, hooks, handler, hub) = {
            let mut st = self.st(py)?.borrow_mut();
            st.destroyed = true;
            st.refs = 0;
            (
                std::mem::take(&mut st.ready),
                std::mem::take(&mut st.wheel),
                std::mem::take(&mut st.io_watchers),
                std::mem::take(&mut st.hooks),
                st.error_handler.take(),
                st.hub.take(),
            )
        };
        drop((ready, wheel, io_watchers, hooks, handler, hub));
        drop(self.threadsafe.take());
        Ok(())
    }

    /// True once `destroy()` ran.
    #[getter]
    fn destroyed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.st(py)?.borrow().destroyed)
    }

    /// Number of entries waiting in the ready queue.
    #[getter]
    fn pendingcnt(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.st(py)?.borrow().ready.len())
    }

    /// Number of started watchers and parked greenlets keeping the loop alive.
    #[getter]
    fn activecnt(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.st(py)?.borrow().refs)
    }

    /// Number of greenlets parked in fused waits (sleep, wait_fd).
    #[getter]
    fn parked(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.st(py)?.borrow().waits.len())
    }

    /// Number of armed timers (timer watchers and timed fused waits).
    #[getter]
    fn timers(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(self.st(py)?.borrow().wheel.len())
    }

    /// True when called from the thread that owns this loop.
    fn owned_by_current_thread(&self) -> bool {
        self.state.owner() == thread_mark()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let Ok(cell) = self.st(py) else {
            return Ok(format!(
                "<verdigris loop{} of another thread>",
                if self.default { " default" } else { "" }
            ));
        };
        let st = cell.borrow();
        Ok(format!(
            "<verdigris loop{} ready={} timers={} parked={} refs={}{}>",
            if self.default { " default" } else { "" },
            st.ready.len(),
            st.wheel.len(),
            st.waits.len(),
            st.refs,
            if st.destroyed { " destroyed" } else { "" }
        ))
    }
}
