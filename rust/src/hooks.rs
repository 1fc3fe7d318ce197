//! Hooks: watchers that run at fixed points of every loop turn (libev's prepare, check and idle
//! watchers) or once in a forked child (fork watchers).
//!
//! * `prepare` callbacks run just before the loop polls;
//! * `check` callbacks run just after it polled (and queued what became ready);
//! * `idle` callbacks run when a turn finds nothing else to do, and while one is started the
//!   loop never blocks in poll;
//! * `fork` callbacks run in the child after `loop.reinit()`.
//!
//! Hooks are called directly by the cycle, not through the ready queue: they describe the
//! turn itself. A started hook with `ref=True` keeps the loop alive, as in libev.

use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

use crate::event_loop::Loop;
use crate::owner::Owned;

/// When a hook runs.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum HookKind {
    Prepare = 0,
    Check = 1,
    Idle = 2,
    Fork = 3,
}

impl HookKind {
    fn name(self) -> &'static str {
        match self {
            HookKind::Prepare => "prepare",
            HookKind::Check => "check",
            HookKind::Idle => "idle",
            HookKind::Fork => "fork",
        }
    }
}

pub struct HookState {
    pub callback: Option<Py<PyAny>>,
    pub args: Py<PyTuple>,
    pub active: bool,
    pub keeps_alive: bool,
    pub priority: i32,
    pub closed: bool,
}

/// A prepare, check, idle or fork watcher (gevent's `IWatcher`).
#[pyclass(frozen, module = "verdigris._core")]
pub struct Hook {
    pub(crate) event_loop: Py<Loop>,
    pub(crate) kind: HookKind,
    pub(crate) state: Owned<HookState>,
}

impl Hook {
    pub(crate) fn create(py: Python<'_>, event_loop: Py<Loop>, kind: HookKind, keeps_alive: bool, priority: Option<i32>) -> Hook {
        Hook {
            event_loop,
            kind,
            state: Owned::new(HookState {
                callback: None,
                args: PyTuple::empty(py).unbind(),
                active: false,
                keeps_alive,
                priority: priority.unwrap_or(0),
                closed: false,
            }),
        }
    }

    /// What to call now, if the hook is still started.
    pub(crate) fn target(&self, py: Python<'_>) -> PyResult<Option<(Py<PyAny>, Py<PyTuple>)>> {
        let st = self.state.get(py)?.borrow();
        if !st.active {
            return Ok(None);
        }
        Ok(st.callback.as_ref().map(|cb| (cb.clone_ref(py), st.args.clone_ref(py))))
    }

    fn refs(st: &HookState) -> isize {
        isize::from(st.active && st.keeps_alive)
    }
}

#[pymethods]
impl Hook {
    #[pyo3(signature = (callback, *args))]
    fn start(slf: &Bound<'_, Self>, callback: Py<PyAny>, args: &Bound<'_, PyTuple>) -> PyResult<()> {
        let py = slf.py();
        let this = slf.get();
        if !callback.bind(py).is_callable() {
            return Err(PyTypeError::new_err(format!("Expected callable, not {}", callback.bind(py).repr()?)));
        }
        let delta = {
            let mut st = this.state.get(py)?.borrow_mut();
            if st.closed {
                return Err(PyValueError::new_err("operation on a closed watcher"));
            }
            st.callback = Some(callback);
            st.args = args.clone().unbind();
            if st.active {
                return Ok(());
            }
            st.active = true;
            Hook::refs(&st)
        };
        let lp = this.event_loop.bind(py).get();
        lp.add_refs(py, delta)?;
        lp.hook_started(py, this.kind, slf.clone().unbind())
    }

    fn stop(&self, py: Python<'_>) -> PyResult<()> {
        let delta = {
            let mut st = self.state.get(py)?.borrow_mut();
            let before = Hook::refs(&st);
            let was_active = st.active;
            st.active = false;
            st.callback = None;
            st.args = PyTuple::empty(py).unbind();
            if !was_active {
                return Ok(());
            }
            -before
        };
        let lp = self.event_loop.bind(py).get();
        lp.add_refs(py, delta)?;
        lp.hook_stopped(py, self.kind, self)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        self.stop(py)?;
        self.state.get(py)?.borrow_mut().closed = true;
        Ok(())
    }

    #[getter]
    fn active(&self, py: Python<'_>) -> PyResult<bool> {
        Ok(self.state.get(py)?.borrow().active)
    }

    /// Hooks are called directly by the cycle, so one is never left pending.
    #[getter]
    fn pending(&self) -> bool {
        false
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
            let before = Hook::refs(&st);
            st.keeps_alive = value;
            Hook::refs(&st) - before
        };
        self.event_loop.bind(py).get().add_refs(py, delta)
    }

    #[getter]
    fn priority(&self, py: Python<'_>) -> PyResult<i32> {
        Ok(self.state.get(py)?.borrow().priority)
    }

    #[setter]
    fn set_priority(&self, py: Python<'_>, value: Option<i32>) -> PyResult<()> {
        self.state.get(py)?.borrow_mut().priority = value.unwrap_or(0);
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

    /// "prepare", "check", "idle" or "fork".
    #[getter]
    fn kind(&self) -> &'static str {
        self.kind.name()
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
        Ok(format!("<{} active={} ref={}>", self.kind.name(), st.active, st.keeps_alive))
    }
}
