//! EAL start-up and clean-up, lcore launch, the TSC clock.

use std::ffi::{c_int, c_void, CString};

use super::error::DpdkError;

/// The initialised EAL. Exactly one per process: DPDK cannot be initialised twice.
/// Dropping it runs `rte_eal_cleanup` (after ports are closed and lcores have returned).
pub struct Eal {
    _private: (),
}

impl Eal {
    /// Runs `rte_eal_init` with `args` (args[0] is the program name). Pins the calling thread
    /// to the main lcore: threads spawned afterwards inherit that affinity.
    pub fn init(args: &[String]) -> Result<Eal, DpdkError> {
        let owned: Vec<CString> = args
            .iter()
            .map(|a| {
                CString::new(a.as_str()).map_err(|_| DpdkError::new(format!("EAL argument {a:?} has a NUL byte"), 22))
            })
            .collect::<Result<_, _>>()?;
        // rte_eal_init may permute argv and keeps pointers into it: leak the strings so they
        // live as long as the process, as C programs' argv does.
        let mut argv: Vec<*mut std::ffi::c_char> = owned.into_iter().map(CString::into_raw).collect();
        let argc = argv.len() as c_int;
        let argv_ptr = argv.as_mut_ptr();
        std::mem::forget(argv);
        // SAFETY: argv holds argc valid NUL-terminated strings that are never freed; the EAL
        // is initialised once (the caller owns the only Eal).
        let ret = unsafe { dpdk_sys::rte_eal_init(argc, argv_ptr) };
        if ret < 0 {
            return Err(DpdkError::from_errno("rte_eal_init"));
        }
        Ok(Eal { _private: () })
    }

    /// The NUMA socket of an lcore.
    pub fn lcore_socket(&self, lcore: u32) -> u32 {
        // SAFETY: valid after rte_eal_init for any lcore id (returns 0 when unknown).
        unsafe { dpdk_sys::rte_lcore_to_socket_id(lcore) }
    }

    /// Where this EAL keeps its runtime files (/var/run/dpdk/PREFIX for root).
    pub fn runtime_dir(&self) -> std::path::PathBuf {
        // SAFETY: returns a pointer to a NUL-terminated string inside the EAL's static config,
        // valid after rte_eal_init; it is copied before the Eal can be dropped.
        let dir = unsafe { std::ffi::CStr::from_ptr(dpdk_sys::rte_eal_get_runtime_dir()) };
        std::path::PathBuf::from(dir.to_string_lossy().into_owned())
    }
}

impl Drop for Eal {
    fn drop(&mut self) {
        let runtime_dir = self.runtime_dir();
        // SAFETY: called once, after every user of DPDK resources has finished (the daemon
        // drops the Eal last).
        unsafe { dpdk_sys::rte_eal_cleanup() };
        // DPDK makes its runtime directory even with --in-memory and leaves it behind: empty
        // then, with the shared config, hugepage info and telemetry socket otherwise.
        let prefix = runtime_dir.file_name().map(|p| p.to_string_lossy().into_owned());
        let _ = std::fs::remove_dir_all(&runtime_dir);
        if let Some(prefix) = prefix {
            remove_hugepage_files(&prefix);
        }
    }
}

/// Removes `PREFIXmap_N`, the hugepage files an EAL without --in-memory (eal.pdump) leaves in
/// every hugetlbfs mount: the prefix is this process's alone, nothing else uses them.
fn remove_hugepage_files(prefix: &str) {
    let Ok(mounts) = std::fs::read_to_string("/proc/mounts") else { return };
    let stem = format!("{prefix}map_");
    for dir in mounts.lines().filter_map(|l| {
        let mut f = l.split_whitespace();
        let (mount, kind) = (f.nth(1)?, f.next()?);
        (kind == "hugetlbfs").then_some(mount)
    }) {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().starts_with(&stem) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// Reads the CPU's timestamp counter.
#[inline(always)]
pub fn rdtsc() -> u64 {
    // SAFETY: reads the TSC; no memory is touched.
    unsafe { dpdk_sys::rte_rdtsc() }
}

/// TSC ticks per second, as the EAL measured them.
pub fn tsc_hz() -> u64 {
    // SAFETY: valid after rte_eal_init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

unsafe extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by `launch`, handed to exactly one lcore.
    let job: Box<Job> = unsafe { Box::from_raw(arg.cast::<Job>()) };
    job()
}

/// Runs `job` on worker lcore `lcore` (not the main one). Its return value is what
/// [`wait_lcore`] gives back.
pub fn launch(lcore: u32, job: impl FnOnce() -> i32 + Send + 'static) -> Result<(), DpdkError> {
    let job: Box<Job> = Box::new(Box::new(job));
    let arg = Box::into_raw(job).cast::<c_void>();
    // SAFETY: trampoline takes back ownership of `arg` exactly once when the lcore runs it.
    let ret = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if ret != 0 {
        // SAFETY: the launch failed, so the lcore never took `arg`: reclaim it here.
        drop(unsafe { Box::from_raw(arg.cast::<Job>()) });
        return Err(DpdkError::new(format!("rte_eal_remote_launch(lcore {lcore})"), ret));
    }
    Ok(())
}

/// Waits for the job on `lcore` to return and gives its return value.
pub fn wait_lcore(lcore: u32) -> i32 {
    // SAFETY: called from the main lcore, as DPDK requires.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// Starts the pdump server, so the stock `dpdk-dumpcap` (a secondary process of the same
/// --file-prefix) can capture on our ports. Needs shared hugepage memory (not --in-memory).
pub fn pdump_init() -> Result<(), DpdkError> {
    // SAFETY: called once after rte_eal_init on the main thread; it registers a multi-process
    // action and reads only the EAL's config.
    let ret = unsafe { dpdk_sys::rte_pdump_init() };
    if ret < 0 {
        return Err(DpdkError::from_errno("rte_pdump_init"));
    }
    Ok(())
}

/// Stops the pdump server (before rte_eal_cleanup).
pub fn pdump_uninit() {
    // SAFETY: undoes pdump_init's registration; harmless if it was never called.
    unsafe { dpdk_sys::rte_pdump_uninit() };
}
