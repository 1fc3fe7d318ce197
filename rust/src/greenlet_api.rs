//! greenlet's C API, reached through the `greenlet._C_API` capsule.
//!
//! The hub's hottest operations are "put the current greenlet on the ready queue and switch to
//! the hub" and "switch back into a waiting greenlet". Going through Python attribute lookups
//! and bound methods for each of them would cost more than the switch itself, so the loop calls
//! greenlet's own C functions, exactly as gevent's Cython hub does.
//!
//! The capsule is a table of `void*` laid out by `greenlet.h` (`PyGreenlet_API_pointers`). Only
//! the entries the loop needs are read; the table is stable since greenlet 1.0 (the header says
//! so) and verdigris requires greenlet >= 3.

use std::ffi::{c_void, CStr};
use std::os::raw::c_int;
use std::sync::OnceLock;

use pyo3::exceptions::PyRuntimeError;
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

const TYPE_NUM: usize = 0;
const GET_CURRENT_NUM: usize = 4;
const THROW_NUM: usize = 5;
const SWITCH_NUM: usize = 6;
const ACTIVE_NUM: usize = 10;
const API_POINTERS: usize = 12;

type GetCurrentFn = unsafe extern "C" fn() -> *mut ffi::PyObject;
type SwitchFn = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut ffi::PyObject,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;
type ThrowFn = unsafe extern "C" fn(
    *mut ffi::PyObject,
    *mut ffi::PyObject,
    *mut ffi::PyObject,
    *mut ffi::PyObject,
) -> *mut ffi::PyObject;
type ActiveFn = unsafe extern "C" fn(*mut ffi::PyObject) -> c_int;

/// The entries of greenlet's C API table that the loop uses.
pub struct GreenletApi {
    greenlet_type: *mut ffi::PyTypeObject,
    get_current: GetCurrentFn,
    switch: SwitchFn,
    throw: ThrowFn,
    active: ActiveFn,
}

// SAFETY: the table holds function pointers and a static type object owned by the greenlet
// extension module, which is never unloaded; all of them are only called with the GIL held.
unsafe impl Send for GreenletApi {}
unsafe impl Sync for GreenletApi {}

static API: OnceLock<GreenletApi> = OnceLock::new();

/// Loads the capsule once per process. Called at module import, so a missing or broken
/// greenlet fails `import verdigris._core` with a clear error instead of later, mid-switch.
pub fn init(py: Python<'_>) -> PyResult<&'static GreenletApi> {
    if let Some(api) = API.get() {
        return Ok(api);
    }
    py.import("greenlet")?;
    let name: &CStr = c"greenlet._C_API";
    let table = PyCapsule::import_pointer(py, name)?.as_ptr() as *const *mut c_void;
    // SAFETY: the capsule named greenlet._C_API holds a table of API_POINTERS pointers (greenlet.h);
    // we read each slot once and check none is null before transmuting to its documented signature.
    let api = unsafe {
        let slot = |i: usize| -> PyResult<*mut c_void> {
            debug_assert!(i < API_POINTERS);
            let p = *table.add(i);
            if p.is_null() {
                Err(PyRuntimeError::new_err(format!("greenlet C API slot {i} is null")))
            } else {
                Ok(p)
            }
        };
        GreenletApi {
            greenlet_type: slot(TYPE_NUM)? as *mut ffi::PyTypeObject,
            get_current: std::mem::transmute::<*mut c_void, GetCurrentFn>(slot(GET_CURRENT_NUM)?),
            switch: std::mem::transmute::<*mut c_void, SwitchFn>(slot(SWITCH_NUM)?),
            throw: std::mem::transmute::<*mut c_void, ThrowFn>(slot(THROW_NUM)?),
            active: std::mem::transmute::<*mut c_void, ActiveFn>(slot(ACTIVE_NUM)?),
        }
    };
    Ok(API.get_or_init(|| api))
}

/// The table, once `init` has run (module import guarantees it).
pub fn api() -> &'static GreenletApi {
    API.get().expect("verdigris._core imported without greenlet's C API")
}

impl GreenletApi {
    /// `greenlet.getcurrent()`.
    pub fn current<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        // SAFETY: GIL held (py); PyGreenlet_GetCurrent returns a new reference or NULL with an error.
        unsafe { Bound::from_owned_ptr_or_err(py, (self.get_current)()) }
    }

    /// Is `obj` a greenlet (any subclass)?
    pub fn is_greenlet(&self, obj: &Bound<'_, PyAny>) -> bool {
        // SAFETY: obj is a live object and greenlet_type a static type object.
        unsafe { ffi::PyObject_TypeCheck(obj.as_ptr(), self.greenlet_type) != 0 }
    }

    /// Is `glet` started and not yet dead?
    pub fn is_active(&self, glet: &Bound<'_, PyAny>) -> bool {
        debug_assert!(self.is_greenlet(glet));
        // SAFETY: glet is a greenlet (callers check), GIL held.
        unsafe { (self.active)(glet.as_ptr()) != 0 }
    }

    /// `glet.switch(*args)`; `args` must be a tuple. Returns what is switched back to us.
    pub fn switch<'py>(
        &self,
        glet: &Bound<'py, PyAny>,
        args: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        debug_assert!(self.is_greenlet(glet));
        // SAFETY: glet is a greenlet, args a tuple, kwargs NULL is allowed; returns a new
        // reference or NULL with the exception set (e.g. one thrown into the caller meanwhile).
        unsafe {
            let r = (self.switch)(glet.as_ptr(), args.as_ptr(), std::ptr::null_mut());
            Bound::from_owned_ptr_or_err(glet.py(), r)
        }
    }

    /// `glet.throw(exc)`: `exc` is an exception instance, or a class to instantiate.
    pub fn throw<'py>(
        &self,
        glet: &Bound<'py, PyAny>,
        exc: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        debug_assert!(self.is_greenlet(glet));
        let py = glet.py();
        // SAFETY: arguments are live objects; PyGreenlet_Throw borrows them (typ, val, tb with
        // val/tb possibly None) and returns a new reference or NULL with an exception set.
        unsafe {
            let none = ffi::Py_None();
            let r = if ffi::PyType_Check(exc.as_ptr()) != 0 {
                (self.throw)(glet.as_ptr(), exc.as_ptr(), none, none)
            } else {
                let typ = exc.get_type();
                (self.throw)(glet.as_ptr(), typ.as_ptr(), exc.as_ptr(), none)
            };
            Bound::from_owned_ptr_or_err(py, r)
        }
    }
}
