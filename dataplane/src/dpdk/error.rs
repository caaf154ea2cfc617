//! The error every fallible DPDK call returns. The bottom of `dpdk/`: it imports nothing
//! from its siblings.

use std::ffi::CStr;
use std::fmt;

/// A failed DPDK call: which call, on what, and DPDK's own words for the error code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub call: String,
    pub code: i32,
}

impl DpdkError {
    /// `code` is a negative errno as ethdev returns, or a positive rte_errno.
    pub(crate) fn new(call: impl Into<String>, code: i32) -> DpdkError {
        DpdkError { call: call.into(), code: code.abs() }
    }

    /// For calls that report through rte_errno (rte_eal_init, mempool creation, ...).
    pub(crate) fn from_errno(call: impl Into<String>) -> DpdkError {
        // SAFETY: reads this thread's rte_errno through a C helper; no preconditions.
        let code = unsafe { dpdk_sys::fvs_rte_errno() };
        DpdkError::new(call, code)
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // SAFETY: rte_strerror returns a pointer to a static or thread-local NUL-terminated
        // string for any value.
        let text = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(self.code)) };
        write!(f, "{} failed: {} (errno {})", self.call, text.to_string_lossy(), self.code)
    }
}

impl std::error::Error for DpdkError {}
