//! Exceptions the loop raises, and the mapping of OS errors to Python's.
//!
//! gevent's exception classes live in the pure-Python `verdigris.exceptions` (so they can
//! subclass what gevent's do and be pickled by name); the loop imports them lazily.

use pyo3::exceptions::PyOSError;
use pyo3::PyErr;

pyo3::import_exception!(verdigris.exceptions, BlockingSwitchOutError);
pyo3::import_exception!(verdigris.exceptions, InvalidSwitchError);

/// What a greenlet waiting on an fd gets when another greenlet closes it (gevent's
/// `cancel_wait_ex`).
pub fn cancel_wait_error() -> PyErr {
    PyOSError::new_err((libc::EBADF, "File descriptor was closed in another greenlet"))
}
