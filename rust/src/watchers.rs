//! Watchers: the Python-visible handles on the loop's ready queue, timer wheel and fds.
//!
//! They follow gevent's `IWatcher` contract: `start(callback, *args)`, `stop()`, `close()`,
//! `active`, `pending`, `ref`, `priority`, `callback`, `args`, and use as context managers
//! (leaving the block closes the watcher). A watcher is a thin view: its state lives here, but the
//! loop decides when it fires; firing means "queue it on the ready queue", and running the queue
//! calls `callback(*args)` in the hub greenlet.
//!
//! Every watcher is bound to the thread of its loop (see [`crate::owner`]); only
//! `Async.send()` and the callbacks from `run_callback_threadsafe` cross threads.

use std::os::unix::io::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::event_loop::{Loop, Ready};
use crate::owner::Owned;
use crate::wheel::TimerKey;

/// State every watcher kind shares.
pub struct Core {
    pub callback: Option<Py<PyAny>>,
    pub args: Py<PyTuple>,
    pub active: bool,
    pub pending: bool,
    pub keeps_alive: bool,
    pub priority: i32,
    pub closed: bool,
}

impl Core {
    fn new(py: Python<'_>, keeps_alive: bool, priority: i32) -> Core {
        Core {
            callback: None,
            args: PyTuple::empty(py).unbind(),
            active: false,
            pending: false,
            keeps_alive,
            priority,
            closed: false,
        }
    }

    /// Stores what `start()` was given; refuses non-callables like gevent does.
    fn set_target(&mut self, callback: Py<PyAny>, args: Py<PyTuple>, py: Python<'_>) -> PyResult<()> {
        if self.closed {
            return Err(PyValueError::new_err("operation on a closed watcher"));
        }
        if !callback.bind(py).is_callable() {
            return Err(PyTypeError::new_err(format!(
                "Expected callable, not {}",
                callback.bind(py).repr()?
            )));
        }
        self.callback = Some(callback);
        self.args = args;
        Ok(())
    }

    /// The (callback, args) to run now that the watcher fired, if it is still wanted.
    fn take_fire(&mut self, py: Python<'_>) -> Option<(Py<PyAny>, Py<PyTuple>)> {
        if !self.pending {
            return None; // stopped after it was queued
        }
        self.pending = false;
        let cb = self.callback.as_ref()?.clone_ref(py);
        Some((cb, self.args.clone_ref(py)))
    }

    /// The contribution of this watcher to the loop's count of things that keep it alive.
    fn refs(&self) -> usize {
        usize::from(self.active && self.keeps_alive)
    }
}

fn set_priority(core: &mut Core, priority: Option<i32>) {
    core.priority = priority.unwrap_or(0);
}

fn args_tuple<'py>(args: &Bound<'py, PyTuple>) -> Py<PyTuple> {
    args.clone().unbind()
}

// ---------------------------------------------------------------------------------------------
// Callback
// ---------------------------------------------------------------------------------------------

/// A function scheduled with `run_callback`: runs once, on the next turn of the loop.
#[pyclass(frozen, module = "verdigris._core")]
pub struct Callback {
    pub(crate) state: Owned<CallbackState>,
}

pub struct CallbackState {
    pub callback: Option<Py<PyAny>>,
    pub args: Option<Py<PyTuple>>,
}

impl Callback {
    pub(crate) fn new(owner: usize, callback: Py<PyAny>, args: Py<PyTuple>) -> Callback {
        Callback { state: Owned::with_owner(owner, CallbackState { callback: Some(callback), args: Some(args) }) }
    }

    /// Takes what to call, or None if the callback was stopped meanwhile.
    pub(crate) fn take(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyTuple>)>> {
        let mut st = self.state.get(py)?.borrow_mut();
        match (st.callback.take(), st.args.take()) {
            (Some(cb), Some(args)) => Ok(Some((cb, args))),
            _ => Ok(None),
        }
    }
}

#[pymethods]
impl Callback {
    /// Cancels the callback if it has not run yet.
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let mut st = self.state.get(py)?.borrow_mut();
        st.callback = None;
        st.args = None;
        Ok(())
    }

    /// Same as `stop()`.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)
    }

    /// True until the callback has run or been stopped.
    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().callback.is_some())
    }

    /// Alias of `pending` (gevent's callback objects offer both).
    #[getter]
    fn active(&self, py: Python<'_>) -> PyResult<bool> {
        self.pending(py)
    }

    #[getter]
    fn callback(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.state.get(py)?.borrow().callback.as_ref().map(|c| c.clone_ref(py)))
    }

    #[getter]
    fn args(&self, py: Python<'_>) -> PyResult<Option<Py<PyTuple>>> {
        Ok(self.state.get(py)?.borrow().args.as_ref().map(|a| a.clone_ref(py)))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let st = self.state.get(py)?.borrow();
        Ok(match &st.callback {
            Some(cb) => format!("<callback {} pending>", cb.bind(py).repr()?),
            None => "<callback done>".to_string(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Timer
// ---------------------------------------------------------------------------------------------

/// `loop.timer(after, repeat=0.0, ref=True, priority=None)`: fires `after` seconds after start,
/// then every `repeat` seconds if `repeat > 0`.
#[pyclass(frozen, module = "verdigris._core")]
pub struct Timer {
    pub(crate) event_loop: Py<Loop>,
    pub(crate) state: Owned<TimerState>,
}

pub struct TimerState {
    pub core: Core,
    pub after: f64,
    pub repeat: f64,
    pub key: Option<TimerKey>,
}

impl Timer {
    pub(crate) fn create(
        py: Python<'_>,
        event_loop: Py<Loop>,
        after: f64,
        repeat: f64,
        keeps_alive: bool,
        priority: Option<i32>,
    ) -> PyResult<Timer> {
        if !after.is_finite() && !(after.is_infinite() && after > 0.0) {
            return Err(PyValueError::new_err(format!("timer delay must be a number, not {after}")));
        }
        if repeat < 0.0 || repeat.is_nan() {
            return Err(PyValueError::new_err(format!("repeat must be positive or zero: {repeat}")));
        }
        Ok(Timer {
            event_loop,
            state: Owned::new(TimerState {
                core: Core::new(py, keeps_alive, priority.unwrap_or(0)),
                after: after.max(0.0),
                repeat,
                key: None,
            }),
        })
    }

    /// Called by the loop when the wheel fires this timer: marks it pending, re-arms repeats.
    /// Returns the delay to re-arm with, if any.
    pub(crate) fn expired(&self, py: Python<'_>) -> PyResult<(Option<f64>, bool)> {
        let mut st = self.state.get(py)?.borrow_mut();
        st.key = None;
        st.core.pending = true;
        if st.repeat > 0.0 && st.core.active {
            Ok((Some(st.repeat), false))
        } else {
            let released = st.core.refs() == 1;
            st.core.active = false;
            Ok((None, released))
        }
    }

    pub(crate) fn set_key(&self, py: Python<'_>, key: TimerKey) -> PyResult<()> {
        self.state.get(py)?.borrow_mut().key = Some(key);
        Ok(())
    }

    pub(crate) fn take_fire(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyTuple>)>> {
        Ok(self.state.get(py)?.borrow_mut().core.take_fire(py))
    }

    fn arm(slf: &Bound<'_, Self>, after: f64) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.event_loop.bind(py).get();
        let key = lp.arm_timer(py, after, Ready::Timer(slf.clone().unbind()))?;
        let mut st = this.state.get(py)?.borrow_mut();
        st.key = Some(key);
        if !st.core.active {
            st.core.active = true;
            if st.core.keeps_alive {
                lp.add_refs(py, 1)?;
            }
        }
        Ok(())
    }

    fn disarm(&self, py: Python<'_>) -> PyResult<()> {
        let lp = self.event_loop.bind(py).get();
        let (key, released) = {
            let mut st = self.state.get(py)?.borrow_mut();
            let released = st.core.refs();
            st.core.active = false;
            st.core.pending = false;
            (st.key.take(), released)
        };
        if let Some(key) = key {
            lp.cancel_timer(py, key)?;
        }
        if released > 0 {
            lp.add_refs(py, -1)?;
        }
        Ok(())
    }
}

#[pymethods]
impl Timer {
    /// Arms the timer to call `callback(*args)`. Starting an active timer re-arms it.
    #[pyo3(signature = (callback, *args, update = None))]
    fn start(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        update: Option<bool>,
    ) -> PyResult<()> {
        let _ = update; // the loop always arms from a fresh clock reading
        let py = slf.py();
        let this = slf.get();
        let after = {
            let mut st = this.state.get(py)?.borrow_mut();
            st.core.set_target(callback, args_tuple(args), py)?;
            st.after
        };
        if this.state.get(py)?.borrow().key.is_some() {
            this.disarm(py)?;
        }
        Timer::arm(slf, after)
    }

    /// Re-arms the timer with its `repeat` (or `after` when it has none) from now.
    #[pyo3(signature = (callback, *args, update = None))]
    fn again(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        update: Option<bool>,
    ) -> PyResult<()> {
        let _ = update;
        let py = slf.py();
        let this = slf.get();
        let delay = {
            let mut st = this.state.get(py)?.borrow_mut();
            st.core.set_target(callback, args_tuple(args), py)?;
            if st.repeat > 0.0 { st.repeat } else { st.after }
        };
        this.disarm(py)?;
        Timer::arm(slf, delay)
    }

    /// Disarms the timer (and forgets a firing that is queued but has not run).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.disarm(py)?;
        let mut st = self.state.get(py)?.borrow_mut();
        st.core.callback = None;
        st.core.args = PyTuple::empty(py).unbind();
        Ok(())
    }

    /// Stops the timer for good.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)?;
        self.state.get(py)?.borrow_mut().core.closed = true;
        Ok(())
    }

    #[getter]
    fn active(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.active)
    }

    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.pending)
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.closed)
    }

    #[getter(r#ref)]
    fn get_ref(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.keeps_alive)
    }

    #[setter(r#ref)]
    fn set_ref(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        let delta = {
            let mut st = self.state.get(py)?.borrow_mut();
            let before = st.core.refs() as isize;
            st.core.keeps_alive = value;
            st.core.refs() as isize - before
        };
        self.event_loop.bind(py).get().add_refs(py, delta)
    }

    #[getter]
    fn priority(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.state.get(py)?.borrow().core.priority)
    }

    #[setter]
    fn set_priority(&self, py: Python<'_>, value: Option<i32>) -> PyResult<()> {
        set_priority(&mut self.state.get(py)?.borrow_mut().core, value);
        Ok(())
    }

    #[getter]
    fn callback(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.state.get(py)?.borrow().core.callback.as_ref().map(|c| c.clone_ref(py)))
    }

    #[setter]
    fn set_callback(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> PyResult<()> {
        self.state.get(py)?.borrow_mut().core.callback = value;
        Ok(())
    }

    #[getter]
    fn args(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(self.state.get(py)?.borrow().core.args.clone_ref(py))
    }

    #[setter]
    fn set_args(&self, py: Python<'_>, value: Bound<'_, PyTuple>) -> PyResult<()> {
        self.state.get(py)?.borrow_mut().core.args = value.unbind();
        Ok(())
    }

    /// Seconds from start to the first firing.
    #[getter]
    fn after(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.state.get(py)?.borrow().after)
    }

    /// Seconds between firings (0: fire once).
    #[getter]
    fn repeat(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(self.state.get(py)?.borrow().repeat)
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let st = self.state.get(py)?.borrow();
        Ok(format!(
            "<timer after={} repeat={} active={} pending={} ref={}>",
            st.after, st.repeat, st.core.active, st.core.pending, st.core.keeps_alive
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Io
// ---------------------------------------------------------------------------------------------

/// `loop.io(fd, events, ref=True, priority=None)`: calls back while `fd` is ready for `events`
/// (1 = READ, 2 = WRITE, 3 = both), with level-triggered semantics as in libev.
#[pyclass(frozen, module = "verdigris._core")]
pub struct Io {
    pub(crate) event_loop: Py<Loop>,
    pub(crate) state: Owned<IoState>,
}

pub struct IoState {
    pub core: Core,
    pub fd: RawFd,
    pub events: u8,
    pub revents: u8,
    pub pass_events: bool,
    pub registered: bool,
}

impl Io {
    pub(crate) fn create(
        py: Python<'_>,
        event_loop: Py<Loop>,
        fd: RawFd,
        events: u8,
        keeps_alive: bool,
        priority: Option<i32>,
    ) -> Io {
        Io {
            event_loop,
            state: Owned::new(IoState {
                core: Core::new(py, keeps_alive, priority.unwrap_or(0)),
                fd,
                events,
                revents: 0,
                pass_events: false,
                registered: false,
            }),
        }
    }

    /// What the loop runs when this watcher fires.
    pub(crate) fn take_fire(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyTuple>)>> {
        let mut st = self.state.get(py)?.borrow_mut();
        let revents = st.revents;
        let pass_events = st.pass_events;
        let Some((cb, args)) = st.core.take_fire(py) else { return Ok(None) };
        if pass_events {
            let mut items: Vec<Py<PyAny>> = vec![revents.into_pyobject(py)?.into_any().unbind()];
            items.extend(args.bind(py).iter().map(|a| a.unbind()));
            return Ok(Some((cb, PyTuple::new(py, items)?.unbind())));
        }
        Ok(Some((cb, args)))
    }

    fn deactivate(&self, py: Python<'_>) -> PyResult<()> {
        let lp = self.event_loop.bind(py).get();
        let (fd, was_active, refs) = {
            let mut st = self.state.get(py)?.borrow_mut();
            let refs = st.core.refs();
            let was_active = st.core.active;
            st.core.active = false;
            st.core.pending = false;
            (st.fd, was_active, refs)
        };
        if was_active {
            lp.io_stopped(py, fd, self)?;
        }
        if refs > 0 {
            lp.add_refs(py, -1)?;
        }
        Ok(())
    }
}

impl Drop for Io {
    /// A watcher that is dropped unclosed still gives its fd registration back. From a thread
    /// other than the loop's this is impossible; the registration then stays until the loop's
    /// `close_fd`/`destroy` (a leak of one epoll entry, never a wrong wake-up).
    fn drop(&mut self) {
        Python::attach(|py| {
            let Ok(cell) = self.state.get(py) else { return };
            let (fd, registered) = {
                let st = cell.borrow();
                (st.fd, st.registered)
            };
            if registered {
                let _ = self.event_loop.bind(py).get().release_fd(py, fd);
            }
        });
    }
}

#[pymethods]
impl Io {
    /// Starts watching: `callback(*args)` runs in the hub whenever the fd is ready.
    /// With `pass_events=True` the ready events are passed as the first argument.
    #[pyo3(signature = (callback, *args, pass_events = false))]
    fn start(
        slf: &Bound<'_, Self>,
        callback: Py<PyAny>,
        args: &Bound<'_, PyTuple>,
        pass_events: bool,
    ) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        let lp = this.event_loop.bind(py).get();
        let (fd, needs_register, was_active, keeps_alive) = {
            let mut st = this.state.get(py)?.borrow_mut();
            st.core.set_target(callback, args_tuple(args), py)?;
            st.pass_events = pass_events;
            (st.fd, !st.registered, st.core.active, st.core.keeps_alive)
        };
        if needs_register {
            lp.acquire_fd(py, fd)?;
            this.state.get(py)?.borrow_mut().registered = true;
        }
        if was_active {
            return Ok(());
        }
        this.state.get(py)?.borrow_mut().core.active = true;
        if keeps_alive {
            lp.add_refs(py, 1)?;
        }
        lp.io_started(py, slf.clone().unbind())
    }

    /// Stops watching (the fd stays registered with the poller until `close()`).
    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        self.deactivate(py)?;
        let mut st = self.state.get(py)?.borrow_mut();
        st.core.callback = None;
        st.core.args = PyTuple::empty(py).unbind();
        Ok(())
    }

    /// Stops watching and releases the fd's registration with the poller.
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)?;
        let (fd, registered) = {
            let mut st = self.state.get(py)?.borrow_mut();
            st.core.closed = true;
            let registered = st.registered;
            st.registered = false;
            (st.fd, registered)
        };
        if registered {
            self.event_loop.bind(py).get().release_fd(py, fd)?;
        }
        Ok(())
    }

    #[getter]
    fn fd(&self, py: Python<'_>) -> PyResult<RawFd> {
        Ok(self.state.get(py)?.borrow().fd)
    }

    #[getter]
    fn events(&self, py: Python<'_>) -> PyResult<u8> {
        Ok(self.state.get(py)?.borrow().events)
    }

    /// gevent's string form of `events`, e.g. "READ|WRITE".
    #[getter]
    fn events_str(&self, py: Python<'_>) -> PyResult<String> {
        let e = self.state.get(py)?.borrow().events;
        let mut names = Vec::new();
        if e & crate::poll::READ != 0 {
            names.push("READ");
        }
        if e & crate::poll::WRITE != 0 {
            names.push("WRITE");
        }
        Ok(names.join("|"))
    }

    #[getter]
    fn active(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.active)
    }

    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.pending)
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.closed)
    }

    #[getter(r#ref)]
    fn get_ref(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().core.keeps_alive)
    }

    #[setter(r#ref)]
    fn set_ref(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        let delta = {
            let mut st = self.state.get(py)?.borrow_mut();
            let before = st.core.refs() as isize;
            st.core.keeps_alive = value;
            st.core.refs() as isize - before
        };
        self.event_loop.bind(py).get().add_refs(py, delta)
    }

    #[getter]
    fn priority(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.state.get(py)?.borrow().core.priority)
    }

    #[setter]
    fn set_priority(&self, py: Python<'_>, value: Option<i32>) -> PyResult<()> {
        set_priority(&mut self.state.get(py)?.borrow_mut().core, value);
        Ok(())
    }

    #[getter]
    fn callback(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.state.get(py)?.borrow().core.callback.as_ref().map(|c| c.clone_ref(py)))
    }

    #[setter]
    fn set_callback(&self, py: Python<'_>, value: Option<Py<PyAny>>) -> PyResult<()> {
        self.state.get(py)?.borrow_mut().core.callback = value;
        Ok(())
    }

    #[getter]
    fn args(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(self.state.get(py)?.borrow().core.args.clone_ref(py))
    }

    #[setter]
    fn set_args(&self, py: Python<'_>, value: Bound<'_, PyTuple>) -> PyResult<()> {
        self.state.get(py)?.borrow_mut().core.args = value.unbind();
        Ok(())
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let st = self.state.get(py)?.borrow();
        Ok(format!(
            "<io fd={} events={} active={} pending={} ref={}>",
            st.fd, st.events, st.core.active, st.core.pending, st.core.keeps_alive
        ))
    }
}

// ---------------------------------------------------------------------------------------------
// Async
// ---------------------------------------------------------------------------------------------

/// `loop.async_()`: `send()` from any thread makes the callback run in the loop's thread.
/// Several sends before the callback runs are coalesced into one call, as in libev.
#[pyclass(frozen, module = "verdigris._core")]
pub struct Async {
    pub(crate) event_loop: Py<Loop>,
    pub(crate) sent: AtomicBool,
    pub(crate) state: Owned<Core>,
}

impl Async {
    pub(crate) fn create(py: Python<'_>, event_loop: Py<Loop>, keeps_alive: bool, priority: Option<i32>) -> Async {
        Async {
            event_loop,
            sent: AtomicBool::new(false),
            state: Owned::new(Core::new(py, keeps_alive, priority.unwrap_or(0))),
        }
    }

    /// Called by the loop (its thread) when a send arrives: queue the callback if active.
    pub(crate) fn received(&self, py: Python<'_>) -> PyResult<bool> {
        self.sent.store(false, Ordering::Release);
        let mut st = self.state.get(py)?.borrow_mut();
        if st.active && !st.pending {
            st.pending = true;
            return Ok(true);
        }
        Ok(false)
    }

    pub(crate) fn take_fire(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyTuple>)>> {
        Ok(self.state.get(py)?.borrow_mut().take_fire(py))
    }
}

#[pymethods]
impl Async {
    #[pyo3(signature = (callback, *args))]
    fn start(&self, py: Python<'_>, callback: Py<PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let add = {
            let mut st = self.state.get(py)?.borrow_mut();
            st.set_target(callback, args_tuple(args), py)?;
            let add = !st.active && st.keeps_alive;
            st.active = true;
            add
        };
        if add {
            self.event_loop.bind(py).get().add_refs(py, 1)?;
        }
        Ok(())
    }

    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let refs = {
            let mut st = self.state.get(py)?.borrow_mut();
            let refs = st.refs();
            st.active = false;
            st.pending = false;
            st.callback = None;
            refs
        };
        if refs > 0 {
            self.event_loop.bind(py).get().add_refs(py, -1)?;
        }
        Ok(())
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)?;
        self.state.get(py)?.borrow_mut().closed = true;
        Ok(())
    }

    /// Wakes the loop and makes it run the callback. Safe from any thread.
    fn send(slf: &Bound<'_, Self>) -> PyResult<()> {
        let this = slf.get();
        if this.sent.swap(true, Ordering::AcqRel) {
            return Ok(()); // a send is already on its way
        }
        let lp = this.event_loop.bind(slf.py()).get();
        lp.threadsafe().push(Ready::Async(slf.clone().unbind()));
        Ok(())
    }

    /// `send()` for use as a callback that is handed an argument (gevent's name).
    fn send_ignoring_arg(slf: &Bound<'_, Self>, _ignored: &Bound<'_, PyAny>) -> PyResult<()> {
        Async::send(slf)
    }

    #[getter]
    fn active(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().active)
    }

    /// True while a send has not been handled yet.
    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.sent.load(Ordering::Acquire) || self.state.get(py)?.borrow().pending)
    }

    #[getter]
    fn closed(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().closed)
    }

    #[getter(r#ref)]
    fn get_ref(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().keeps_alive)
    }

    #[setter(r#ref)]
    fn set_ref(&self, py: Python<'_>, value: bool) -> PyResult<()> {
        let delta = {
            let mut st = self.state.get(py)?.borrow_mut();
            let before = st.refs() as isize;
            st.keeps_alive = value;
            st.refs() as isize - before
        };
        self.event_loop.bind(py).get().add_refs(py, delta)
    }

    #[getter]
    fn priority(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.state.get(py)?.borrow().priority)
    }

    #[setter]
    fn set_priority(&self, py: Python<'_>, value: Option<i32>) -> PyResult<()> {
        set_priority(&mut self.state.get(py)?.borrow_mut(), value);
        Ok(())
    }

    #[getter]
    fn callback(&self, py: Python<'_>) -> PyResult<Option<Py<PyAny>>> {
        Ok(self.state.get(py)?.borrow().callback.as_ref().map(|c| c.clone_ref(py)))
    }

    #[getter]
    fn args(&self, py: Python<'_>) -> PyResult<Py<PyTuple>> {
        Ok(self.state.get(py)?.borrow().args.clone_ref(py))
    }

    fn __enter__(slf: Bound<'_, Self>) -> Bound<'_, Self> {
        slf
    }

    #[pyo3(signature = (*_exc))]
    fn __exit__(&self, py: Python<'_>, _exc: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }
}
