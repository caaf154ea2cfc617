//! ferrovs' own commands on DPDK's telemetry socket (`dpdk-telemetry.py` shows them beside
//! ethdev's). DPDK calls the callback on its telemetry thread; it reads only what the control
//! thread last [`publish`]ed (a mutex-held copy, refreshed about once a second), never the
//! workers' state. Dict keys may hold only A-Z a-z 0-9 `_` `/`: others become `_`.

use std::collections::BTreeMap;
use std::ffi::{c_char, c_int, CStr, CString};

use parking_lot::Mutex;

use super::error::DpdkError;

/// One value of a command's dict.
#[derive(Clone, Debug, PartialEq)]
pub enum TelValue {
    U64(u64),
    Str(String),
}

/// DPDK keeps at most this many entries in one dict (RTE_TEL_MAX_DICT_ENTRIES).
pub const MAX_ENTRIES: usize = dpdk_sys::RTE_TEL_MAX_DICT_ENTRIES as usize;

/// The answers of each registered command, as last published.
static ANSWERS: Mutex<BTreeMap<String, Vec<(CString, TelValue)>>> = Mutex::new(BTreeMap::new());

/// A key as DPDK accepts it: invalid characters replaced, cut to the string limit, no NUL.
pub fn key(name: &str) -> String {
    let max = dpdk_sys::RTE_TEL_MAX_STRING_LEN as usize - 1;
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '/' { c } else { '_' }).take(max).collect()
}

/// Registers `cmd` (e.g. `/ferrovs/stats`); its answer is empty until the first [`publish`].
pub fn register(cmd: &str, help: &str) -> Result<(), DpdkError> {
    let bad = |what: &str| DpdkError::new(format!("telemetry command {cmd:?}: {what} has a NUL byte"), 22);
    let c_cmd = CString::new(cmd).map_err(|_| bad("the name"))?;
    let c_help = CString::new(help).map_err(|_| bad("the help"))?;
    ANSWERS.lock().entry(cmd.to_string()).or_default();
    // SAFETY: both strings are valid NUL-terminated C strings; DPDK copies them
    // (strlcpy into its command table) before returning. The callback is a plain function
    // that lives as long as the process.
    let ret = unsafe { dpdk_sys::rte_telemetry_register_cmd(c_cmd.as_ptr(), Some(answer), c_help.as_ptr()) };
    if ret < 0 {
        return Err(DpdkError::new(format!("rte_telemetry_register_cmd({cmd})"), -ret));
    }
    Ok(())
}

/// Replaces `cmd`'s answer (keys go through [`key`]; entries past [`MAX_ENTRIES`] are left out).
pub fn publish(cmd: &str, entries: Vec<(String, TelValue)>) {
    let entries = entries
        .into_iter()
        .take(MAX_ENTRIES)
        .filter_map(|(k, v)| {
            let v = match v {
                TelValue::Str(s) => TelValue::Str(s.replace('\0', " ")),
                other => other,
            };
            Some((CString::new(key(&k)).ok()?, v))
        })
        .collect();
    ANSWERS.lock().insert(cmd.to_string(), entries);
}

/// DPDK's callback for every ferrovs command: the command's last published dict.
unsafe extern "C" fn answer(cmd: *const c_char, _params: *const c_char, data: *mut dpdk_sys::rte_tel_data) -> c_int {
    // SAFETY: DPDK passes the command it matched, a NUL-terminated string it owns for the
    // duration of the call.
    let cmd = unsafe { CStr::from_ptr(cmd) }.to_string_lossy();
    let answers = ANSWERS.lock();
    // SAFETY: `data` is the valid, exclusively ours rte_tel_data DPDK hands the callback.
    unsafe { dpdk_sys::rte_tel_data_start_dict(data) };
    let Some(entries) = answers.get(cmd.as_ref()) else { return 0 };
    for (k, v) in entries {
        // SAFETY: `data` as above, started as a dict; `k` is a valid C string with only
        // characters DPDK accepts (see `key`), copied by DPDK; the string value likewise.
        // Errors (a too-long string) leave the entry out, which is all DPDK can do too.
        unsafe {
            match v {
                TelValue::U64(n) => {
                    dpdk_sys::rte_tel_data_add_dict_u64(data, k.as_ptr(), *n);
                }
                TelValue::Str(s) => {
                    if let Ok(s) = CString::new(s.as_str()) {
                        dpdk_sys::rte_tel_data_add_dict_string(data, k.as_ptr(), s.as_ptr());
                    }
                }
            }
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_keep_only_what_dpdk_accepts() {
        assert_eq!(key("tcp/192.0.2.100:8080/in_packets"), "tcp/192_0_2_100_8080/in_packets");
        assert_eq!(key(&"x".repeat(300)).len(), dpdk_sys::RTE_TEL_MAX_STRING_LEN as usize - 1);
    }
}
