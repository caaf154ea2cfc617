//! What ferrovs tells systemd when it runs as a `Type=notify` service (dist/ferrovs.service):
//! `READY=1` once ports, workers and the admin API run, `WATCHDOG=1` from the control thread at
//! half the `WatchdogSec` systemd asks for, `STOPPING=1` on SIGINT/SIGTERM. Outside systemd
//! (`NOTIFY_SOCKET` unset) every call does nothing.

use std::time::{Duration, Instant};

use sd_notify::NotifyState;
use tracing::warn;

pub struct Systemd {
    /// How often to ping the watchdog: half of `WATCHDOG_USEC`, None when there is none.
    watchdog_every: Option<Duration>,
    last_ping: Instant,
}

impl Systemd {
    /// Reads `NOTIFY_SOCKET` and `WATCHDOG_USEC` as systemd set them (left in the environment:
    /// nothing ferrovs starts reads them).
    pub fn from_env() -> Systemd {
        let mut usec = 0;
        let watchdog = sd_notify::watchdog_enabled(false, &mut usec);
        Systemd { watchdog_every: watchdog.then(|| Duration::from_micros(usec / 2)), last_ping: Instant::now() }
    }

    pub fn watchdog_every(&self) -> Option<Duration> {
        self.watchdog_every
    }

    fn notify(&self, states: &[NotifyState]) {
        if let Err(e) = sd_notify::notify(false, states) {
            warn!(error = %e, "cannot notify systemd");
        }
    }

    /// Ports and workers run and the API listens.
    pub fn ready(&mut self, status: &str) {
        self.notify(&[NotifyState::Ready, NotifyState::Status(status)]);
        self.last_ping = Instant::now();
    }

    /// Called on every turn of the control loop: pings the watchdog when it is due, so a
    /// control thread stuck for a whole `WatchdogSec` gets ferrovs restarted.
    pub fn tick(&mut self) {
        let Some(every) = self.watchdog_every else { return };
        if self.last_ping.elapsed() >= every {
            self.notify(&[NotifyState::Watchdog]);
            self.last_ping = Instant::now();
        }
    }

    pub fn stopping(&self) {
        self.notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}
