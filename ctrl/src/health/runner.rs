//! The health runtime: one thread running a current-thread tokio runtime, on which every
//! active check is one task (a timer and a probe future). Thousands of backends cost
//! thousands of small tasks, not threads; probes wait on sockets and timers, not CPU, so one
//! thread is plenty, and the control thread never blocks on a probe. The control thread hands
//! it the full list of checks after every change and reads the results from a channel.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use tokio::sync::mpsc;

use super::probe::{self, Tls};
use super::ProbeReport;
use crate::config::Check;
use crate::lbstate::BackendId;

/// The running health runtime: send it the checks, read the reports.
pub struct Runner {
    checks: mpsc::UnboundedSender<Vec<(BackendId, Check)>>,
    pub reports: Receiver<ProbeReport>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Runner {
    /// Starts the thread `fvs-health` and its runtime.
    pub fn start() -> Result<Runner, String> {
        let (checks_tx, checks_rx) = mpsc::unbounded_channel();
        let (report_tx, report_rx) = crossbeam_channel::unbounded();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(|e| format!("health checks: cannot start the async runtime: {e}"))?;
        let thread = std::thread::Builder::new()
            .name("fvs-health".into())
            .spawn(move || runtime.block_on(serve(checks_rx, report_tx)))
            .map_err(|e| format!("health checks: cannot start their thread: {e}"))?;
        Ok(Runner { checks: checks_tx, reports: report_rx, thread: Some(thread) })
    }

    /// Runs exactly these checks from now on: new ones start, changed ones restart, gone ones
    /// stop; unchanged ones keep their rhythm.
    pub fn set_checks(&self, checks: Vec<(BackendId, Check)>) {
        let _ = self.checks.send(checks);
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        // Closing the channel ends `serve`, and with the runtime every task.
        let (closed, _) = mpsc::unbounded_channel();
        drop(std::mem::replace(&mut self.checks, closed));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(mut lists: mpsc::UnboundedReceiver<Vec<(BackendId, Check)>>, reports: Sender<ProbeReport>) {
    let tls = Tls::new();
    let mut running: HashMap<BackendId, (Check, tokio::task::JoinHandle<()>)> = HashMap::new();
    while let Some(list) = lists.recv().await {
        let wanted: HashMap<BackendId, Check> = list.into_iter().collect();
        running.retain(|id, (check, task)| {
            let keep = wanted.get(id) == Some(check);
            if !keep {
                task.abort();
            }
            keep
        });
        for (id, check) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            let task = tokio::spawn(check_loop(id, check.clone(), tls.clone(), reports.clone()));
            running.insert(id, (check, task));
        }
    }
    for (_, (_, task)) in running {
        task.abort();
    }
}

/// One backend's checks, every `interval` from a start spread over the first interval (so
/// a thousand backends are not probed in the same millisecond).
async fn check_loop(id: BackendId, check: Check, tls: Tls, reports: Sender<ProbeReport>) {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    id.hash(&mut h);
    let interval_ms = check.interval.as_millis().max(1) as u64;
    tokio::time::sleep(Duration::from_millis(h.finish() % interval_ms)).await;
    let mut ticks = tokio::time::interval(check.interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let (ok, reason) = match probe::run(&check, &tls).await {
            Ok(seen) => (true, seen),
            Err(why) => (false, why),
        };
        if reports.send(ProbeReport { id, ok, reason }).is_err() {
            return;
        }
    }
}
