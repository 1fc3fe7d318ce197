//! The native half of `verdigris.Timeout`: arming and disarming without Python frames.
//!
//! `with Timeout(seconds):` is on the hot path of almost every blocking call with a deadline,
//! and most timeouts are cancelled before they fire. The Python class `verdigris.Timeout`
//! subclasses [`TimeoutBase`] and adds only what is not hot (`start_new`, `__str__`, ...). The
//! timer itself is a fused wait in the loop ([`Loop::arm_throw`]), so a timeout owns no watcher
//! object at all.

use pyo3::exceptions::{PyAssertionError, PyBaseException};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString, PyTuple};

use crate::event_loop::{thread_loop, Loop};
use crate::greenlet_api;

/// Base class of `verdigris.Timeout` (a `BaseException`).
#[pyclass(extends = PyBaseException, subclass, module = "verdigris._core")]
pub struct TimeoutBase {
    /// What was given as `seconds` (None: never fires).
    #[pyo3(get, set)]
    seconds: Py<PyAny>,
    /// What to raise: None (this timeout), False (silent), a string, a class or an instance.
    #[pyo3(get, set)]
    exception: Py<PyAny>,
    keeps_alive: bool,
    token: Option<u64>,
    event_loop: Option<Py<Loop>>,
}

impl TimeoutBase {
    fn is_pending(&self, py: Python<'_>) -> PyResult<bool> {
        match (&self.token, &self.event_loop) {
            (Some(token), Some(lp)) => lp.get().timeout_armed(py, *token),
            _ => Ok(false),
        }
    }

    fn disarm(&mut self, py: Python<'_>) -> PyResult<()> {
        if let (Some(token), Some(lp)) = (self.token.take(), &self.event_loop) {
            lp.get().timeout_disarm(py, token)?;
        }
        Ok(())
    }

    fn arm(slf: &Bound<'_, Self>) -> PyResult<()> {
        let py = slf.py();
        let (seconds, throws, keeps_alive) = {
            let this = slf.borrow();
            if this.is_pending(py)? {
                return Err(PyAssertionError::new_err(format!(
                    "{} is already started; to restart it, cancel it first",
                    slf.repr()?
                )));
            }
            let seconds = this.seconds.bind(py);
            if seconds.is_none() {
                return Ok(());
            }
            let seconds: f64 = seconds.extract()?;
            let exception = this.exception.bind(py);
            let throws = if exception.is_none()
                || exception.is_instance_of::<PyString>()
                || exception.is(pyo3::types::PyBool::new(py, false))
            {
                slf.clone().into_any().unbind()
            } else {
                exception.clone().unbind()
            };
            (seconds, throws, this.keeps_alive)
        };
        let lp = match slf.borrow().event_loop.as_ref() {
            Some(lp) => lp.clone_ref(py),
            None => thread_loop(py)?,
        };
        let current = greenlet_api::api().current(py)?;
        let token = lp.get().timeout_arm(py, seconds, current, throws, keeps_alive)?;
        let mut this = slf.borrow_mut();
        this.token = Some(token);
        this.event_loop = Some(lp);
        Ok(())
    }
}

#[pymethods]
impl TimeoutBase {
    #[new]
    #[pyo3(signature = (*_args, **_kwargs))]
    fn new(py: Python<'_>, _args: &Bound<'_, PyTuple>, _kwargs: Option<&Bound<'_, PyDict>>) -> Self {
        TimeoutBase { seconds: py.None(), exception: py.None(), keeps_alive: true, token: None, event_loop: None }
    }

    #[pyo3(signature = (seconds = None, exception = None, r#ref = true, priority = -1, _one_shot = false))]
    fn __init__(
        &mut self,
        py: Python<'_>,
        seconds: Option<Py<PyAny>>,
        exception: Option<Py<PyAny>>,
        r#ref: bool,
        priority: i32,
        _one_shot: bool,
    ) {
        let _ = priority; // accepted for gevent compatibility; the wheel has no priorities
        self.seconds = seconds.unwrap_or_else(|| py.None());
        self.exception = exception.unwrap_or_else(|| py.None());
        self.keeps_alive = r#ref;
    }

    /// Arms the timeout for the current greenlet (AssertionError if it is already armed).
    fn start(slf: &Bound<'_, Self>) -> PyResult<()> {
        TimeoutBase::arm(slf)
    }

    /// True while armed, or fired and not yet delivered.
    #[getter]
    fn pending(&self, py: Python<'_>) -> PyResult<bool> {
        self.is_pending(py)
    }

    /// Disarms the timeout if armed; it can be started again.
    fn cancel(&mut self, py: Python<'_>) -> PyResult<()> {
        self.disarm(py)
    }

    /// Disarms the timeout (gevent also frees its timer; here there is none to free).
    fn close(&mut self, py: Python<'_>) -> PyResult<()> {
        self.disarm(py)
    }

    fn __enter__(slf: &Bound<'_, Self>) -> PyResult<Py<Self>> {
        let armed = slf.borrow().is_pending(slf.py())?;
        if !armed {
            TimeoutBase::arm(slf)?;
        }
        Ok(slf.clone().unbind())
    }

    /// Disarms; swallows the timeout's own exception when it is silent (`exception=False`).
    #[pyo3(signature = (_typ = None, value = None, _tb = None))]
    fn __exit__(
        slf: &Bound<'_, Self>,
        _typ: Option<&Bound<'_, PyAny>>,
        value: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let py = slf.py();
        let mut this = slf.borrow_mut();
        this.disarm(py)?;
        let silent = this.exception.bind(py).is(pyo3::types::PyBool::new(py, false));
        Ok(silent && value.is_some_and(|v| v.is(slf)))
    }
}
