//! Where the daemon's control thread hands its counters each second: the scrape endpoint's
//! shared view and, with `eal.telemetry`, the `/ferrovs/...` telemetry commands.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dataplane::dpdk::telemetry::{self, TelValue};

use crossbeam_channel::{bounded, Receiver};

use super::http::RefreshRequest;
use super::{MetricsView, SharedView, TELEMETRY_COMMANDS};
use crate::config::Config;

/// How old the numbers a telemetry client sees may be (a scrape asks for fresh ones).
pub const REFRESH: Duration = Duration::from_secs(1);

pub struct Exporter {
    view: SharedView,
    /// Scrapes asking for a fresh view, answered by the next `publish`.
    refresh: Option<Receiver<RefreshRequest>>,
    waiting: Vec<RefreshRequest>,
    telemetry: bool,
    enabled: bool,
    next: Instant,
    _server: Option<std::thread::JoinHandle<()>>,
}

impl Exporter {
    /// Starts what `config` asks for: the endpoint (`metrics.listen`) and the telemetry
    /// commands (`eal.telemetry`). Call after the EAL is up.
    pub fn start(config: &Config, stop: Arc<AtomicBool>) -> Result<Exporter, String> {
        let view = SharedView::default();
        let (refresh_tx, refresh_rx) = bounded(4);
        let server = match config.metrics.listen_addr() {
            Some(addr) => {
                let server = super::http::spawn(addr, view.clone(), Some(refresh_tx), stop)?;
                tracing::info!(%addr, "metrics: serving GET /metrics");
                Some(server)
            }
            None => None,
        };
        if config.eal.telemetry {
            for (cmd, help) in TELEMETRY_COMMANDS {
                telemetry::register(cmd, help).map_err(|e| format!("eal.telemetry: {e}"))?;
            }
        }
        let enabled = server.is_some() || config.eal.telemetry;
        Ok(Exporter {
            view,
            refresh: server.is_some().then_some(refresh_rx),
            waiting: Vec::new(),
            telemetry: config.eal.telemetry,
            enabled,
            next: Instant::now(),
            _server: server,
        })
    }

    /// Nothing to export (start-up failed before the exporter could start).
    pub fn disabled() -> Exporter {
        Exporter {
            view: SharedView::default(),
            refresh: None,
            waiting: Vec::new(),
            telemetry: false,
            enabled: false,
            next: Instant::now(),
            _server: None,
        }
    }

    /// True when a refresh is due: a scrape asked, or a second passed (never when nothing
    /// reads the view).
    pub fn due(&mut self) -> bool {
        if let Some(refresh) = &self.refresh {
            self.waiting.extend(refresh.try_iter());
        }
        self.enabled && (!self.waiting.is_empty() || Instant::now() >= self.next)
    }

    /// Replaces what readers see with `view`.
    pub fn publish(&mut self, view: MetricsView) {
        self.next = Instant::now() + REFRESH;
        if self.telemetry {
            for ((cmd, _), dict) in TELEMETRY_COMMANDS.iter().zip(super::telemetry_dicts(&view)) {
                telemetry::publish(cmd, dict.into_iter().map(|(k, v)| (k, TelValue::U64(v))).collect());
            }
        }
        *self.view.lock() = Arc::new(view);
        for done in self.waiting.drain(..) {
            let _ = done.try_send(());
        }
    }
}
