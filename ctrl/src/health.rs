//! Backend health: what the active checks ([`probe`], run by [`runner`] on one async
//! runtime) and passive detection (the workers' per-core `syn_failures` counts, summed here)
//! say about each backend, turned into up/down verdicts with rise/fall and backoff. The
//! board is owned by the control thread, which applies each verdict change to the control
//! state as one snapshot publication. No I/O here: unit-tested as is.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use crate::config::{Check, PassiveConfig, ServiceConfig};
use crate::lbstate::BackendId;
use crate::proto::HealthInfo;

pub mod keepalived;
pub mod probe;
pub mod runner;

/// A change of a backend's verdict, to apply and log once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub id: BackendId,
    pub down: bool,
    pub reason: String,
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeReport {
    pub id: BackendId,
    pub ok: bool,
    /// What was seen: `HTTP 200`, `connection refused`, `timeout after 1000 ms`.
    pub reason: String,
}

#[derive(Debug, Clone)]
struct Passive {
    config: PassiveConfig,
    /// (when, cumulative failures summed over the cores) samples within the window.
    samples: VecDeque<(Instant, u64)>,
    /// Held down until then.
    until: Option<Instant>,
    /// Failures counted in all, as last summed.
    total: u64,
}

#[derive(Debug, Clone)]
struct Entry {
    check: Option<Check>,
    /// Active verdict: down, and the run of equal results that led there.
    active_down: bool,
    ok_run: u32,
    fail_run: u32,
    last: Option<(bool, String, Instant)>,
    passive: Option<Passive>,
    /// The verdict (active or passive down) and since when.
    down: bool,
    changed: Instant,
    /// Why it last changed.
    why: String,
}

impl Entry {
    fn new(check: Option<Check>, passive: Option<PassiveConfig>, now: Instant) -> Entry {
        Entry {
            check,
            active_down: false,
            ok_run: 0,
            fail_run: 0,
            last: None,
            passive: passive.map(|config| Passive { config, samples: VecDeque::new(), until: None, total: 0 }),
            down: false,
            changed: now,
            why: "not checked yet".into(),
        }
    }

    fn passive_down(&self) -> bool {
        self.passive.as_ref().is_some_and(|p| p.until.is_some())
    }

    /// Recomputes the verdict; a transition when it changed.
    fn settle(&mut self, id: BackendId, why: String, now: Instant) -> Option<Transition> {
        let down = self.active_down || self.passive_down();
        if down == self.down {
            return None;
        }
        self.down = down;
        self.changed = now;
        self.why = why.clone();
        Some(Transition { id, down, reason: why })
    }
}

/// Every checked backend's health, kept by the control thread.
#[derive(Default)]
pub struct HealthBoard {
    entries: HashMap<BackendId, Entry>,
}

/// The backends to watch: each with its active check (if any) and its service's passive
/// settings (if any), from the running services.
pub fn targets(services: &[ServiceConfig]) -> Vec<(BackendId, Option<Check>, Option<PassiveConfig>)> {
    let mut out = Vec::new();
    for s in services {
        for b in &s.backends {
            let addr = std::net::SocketAddr::new(b.addr, b.port);
            let check = crate::config::resolve(s.health.as_deref(), b.health.as_deref(), addr);
            if check.is_some() || s.passive.is_some() {
                out.push(((s.key(), b.addr, b.port), check, s.passive));
            }
        }
    }
    out
}

impl HealthBoard {
    /// Watches exactly `targets`: new ones start up (as keepalived's checkers do), changed
    /// checks start over, the others keep their verdict. Returns the backends no longer
    /// watched that were down (they must come up: nothing will ever say so otherwise).
    pub fn sync(
        &mut self,
        targets: &[(BackendId, Option<Check>, Option<PassiveConfig>)],
        now: Instant,
    ) -> Vec<Transition> {
        let mut out = Vec::new();
        let wanted: HashMap<&BackendId, usize> = targets.iter().enumerate().map(|(i, t)| (&t.0, i)).collect();
        self.entries.retain(|id, e| {
            let keep = wanted.contains_key(id);
            if !keep && e.down {
                out.push(Transition { id: *id, down: false, reason: "no longer checked".into() });
            }
            keep
        });
        for (id, check, passive) in targets {
            match self.entries.get_mut(id) {
                Some(e) if e.check == *check && e.passive.as_ref().map(|p| p.config) == *passive => {}
                Some(e) => {
                    let was_down = e.down;
                    *e = Entry::new(check.clone(), *passive, now);
                    if was_down {
                        e.changed = now;
                        out.push(Transition { id: *id, down: false, reason: "check changed".into() });
                    }
                }
                None => {
                    self.entries.insert(*id, Entry::new(check.clone(), *passive, now));
                }
            }
        }
        out
    }

    /// The active checks to run.
    pub fn checks(&self) -> Vec<(BackendId, Check)> {
        let mut v: Vec<(BackendId, Check)> =
            self.entries.iter().filter_map(|(id, e)| Some((*id, e.check.clone()?))).collect();
        v.sort_by_key(|(id, _)| *id);
        v
    }

    /// One probe's result: `fall` failures in a row take an up backend down, `rise`
    /// successes in a row bring a down one up.
    pub fn probe(&mut self, report: ProbeReport, now: Instant) -> Option<Transition> {
        let e = self.entries.get_mut(&report.id)?;
        let check = e.check.as_ref()?;
        let (rise, fall) = (check.rise, check.fall);
        let what = check.kind.as_str();
        if report.ok {
            e.ok_run += 1;
            e.fail_run = 0;
            if e.active_down && e.ok_run >= rise {
                e.active_down = false;
            }
        } else {
            e.fail_run += 1;
            e.ok_run = 0;
            if !e.active_down && e.fail_run >= fall {
                e.active_down = true;
            }
        }
        let why = if report.ok {
            format!("{what} check passed {} time(s): {}", e.ok_run, report.reason)
        } else {
            format!("{what} check failed {} time(s): {}", e.fail_run, report.reason)
        };
        e.last = Some((report.ok, report.reason, now));
        e.settle(report.id, why, now)
    }

    /// A new sum of a backend's failed new connections over the cores: `failures` within
    /// `window_ms` take it down for `backoff_ms`.
    pub fn passive_sample(&mut self, id: BackendId, total: u64, now: Instant) -> Option<Transition> {
        let e = self.entries.get_mut(&id)?;
        let p = e.passive.as_mut()?;
        let window = Duration::from_millis(u64::from(p.config.window_ms));
        // A counter that went backwards was reset (the backend's slot changed): start over.
        if total < p.total {
            p.samples.clear();
        }
        p.total = total;
        if p.until.is_some() {
            return None;
        }
        while p.samples.front().is_some_and(|(t, _)| now.duration_since(*t) > window) {
            p.samples.pop_front();
        }
        p.samples.push_back((now, total));
        let base = p.samples.front().map_or(total, |s| s.1);
        let failed = total - base;
        if failed < u64::from(p.config.failures) {
            return None;
        }
        p.until = Some(now + Duration::from_millis(u64::from(p.config.backoff_ms)));
        p.samples.clear();
        let why = format!(
            "passive: {failed} failed new connections within {} ms (limit {}); out for {} ms",
            p.config.window_ms, p.config.failures, p.config.backoff_ms
        );
        e.settle(id, why, now)
    }

    /// Ends the passive backoffs that are over: those backends are admitted again (or stay
    /// down while their active check says so).
    pub fn tick(&mut self, now: Instant) -> Vec<Transition> {
        let mut out = Vec::new();
        for (id, e) in &mut self.entries {
            let Some(p) = e.passive.as_mut() else { continue };
            if p.until.is_some_and(|u| now >= u) {
                p.until = None;
                let backoff = p.config.backoff_ms;
                if let Some(t) = e.settle(*id, format!("passive: backoff of {backoff} ms over, admitted again"), now) {
                    out.push(t);
                }
            }
        }
        out
    }

    /// Whether passive detection watches any backend (the control thread then samples).
    pub fn has_passive(&self) -> bool {
        self.entries.values().any(|e| e.passive.is_some())
    }

    /// The backends passive detection watches.
    pub fn passive_ids(&self) -> Vec<BackendId> {
        self.entries.iter().filter(|(_, e)| e.passive.is_some()).map(|(id, _)| *id).collect()
    }

    /// What `service show` and the metrics say about a backend; None when unchecked.
    pub fn info(&self, id: &BackendId, now: Instant) -> Option<HealthInfo> {
        let e = self.entries.get(id)?;
        Some(HealthInfo {
            up: !e.down,
            check: e.check.as_ref().map(|c| c.to_string()),
            last_ok: e.last.as_ref().map(|l| l.0),
            last: e.last.as_ref().map(|l| l.1.clone()),
            last_ms_ago: e.last.as_ref().map(|l| now.duration_since(l.2).as_millis() as u64),
            since_ms: now.duration_since(e.changed).as_millis() as u64,
            reason: e.why.clone(),
            passive_down: e.passive_down(),
            syn_failures: e.passive.as_ref().map(|p| p.total),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, CheckKind, HealthSpec, Protocol, ServiceKey};

    fn id(last: u8) -> BackendId {
        let key = ServiceKey { protocol: Protocol::Tcp, vip: "192.0.2.100".parse().unwrap(), port: 80 };
        (key, std::net::IpAddr::V4(std::net::Ipv4Addr::new(198, 51, 100, last)), 8080)
    }

    fn check(rise: u32, fall: u32) -> Check {
        let spec = HealthSpec { check: Some(CheckKind::Tcp), rise: Some(rise), fall: Some(fall), ..Default::default() };
        resolve(Some(&spec), None, "198.51.100.11:8080".parse().unwrap()).unwrap()
    }

    fn report(id: BackendId, ok: bool) -> ProbeReport {
        ProbeReport { id, ok, reason: if ok { "connected".into() } else { "connection refused".into() } }
    }

    #[test]
    fn fall_failures_take_it_down_and_rise_successes_bring_it_back() {
        let mut board = HealthBoard::default();
        let t0 = Instant::now();
        assert!(board.sync(&[(id(11), Some(check(2, 3)), None)], t0).is_empty());
        assert!(board.info(&id(11), t0).unwrap().up, "a new backend starts up");
        assert_eq!(board.probe(report(id(11), false), t0), None);
        assert_eq!(board.probe(report(id(11), false), t0), None);
        // A success between failures starts the count over.
        assert_eq!(board.probe(report(id(11), true), t0), None);
        assert_eq!(board.probe(report(id(11), false), t0), None);
        assert_eq!(board.probe(report(id(11), false), t0), None);
        let t = board.probe(report(id(11), false), t0).unwrap();
        assert!(t.down);
        assert_eq!(t.reason, "tcp check failed 3 time(s): connection refused");
        assert_eq!(board.probe(report(id(11), false), t0), None, "logged once");
        assert_eq!(board.probe(report(id(11), true), t0), None);
        let up = board.probe(report(id(11), true), t0 + Duration::from_secs(3)).unwrap();
        assert!(!up.down);
        let info = board.info(&id(11), t0 + Duration::from_secs(5)).unwrap();
        assert_eq!((info.up, info.since_ms, info.last_ok), (true, 2000, Some(true)));
        assert_eq!(info.last.as_deref(), Some("connected"));
    }

    #[test]
    fn a_backend_no_longer_checked_comes_up() {
        let mut board = HealthBoard::default();
        let t0 = Instant::now();
        board.sync(&[(id(11), Some(check(1, 1)), None)], t0);
        assert!(board.probe(report(id(11), false), t0).unwrap().down);
        let t = board.sync(&[], t0);
        assert_eq!(t, vec![Transition { id: id(11), down: false, reason: "no longer checked".into() }]);
        assert!(board.checks().is_empty());
        // Unknown backends' reports are ignored.
        assert_eq!(board.probe(report(id(12), false), t0), None);
    }

    #[test]
    fn passive_failures_within_the_window_back_off_then_readmit() {
        let mut board = HealthBoard::default();
        let t0 = Instant::now();
        let p = PassiveConfig { failures: 3, window_ms: 1000, backoff_ms: 2000 };
        board.sync(&[(id(11), None, Some(p))], t0);
        let ms = |n| t0 + Duration::from_millis(n);
        assert_eq!(board.passive_sample(id(11), 0, ms(0)), None);
        assert_eq!(board.passive_sample(id(11), 2, ms(500)), None);
        // Two more, but the first two are out of the window by now.
        assert_eq!(board.passive_sample(id(11), 3, ms(1600)), None);
        assert_eq!(board.passive_sample(id(11), 4, ms(1700)), None);
        let down = board.passive_sample(id(11), 6, ms(1800)).unwrap();
        assert!(down.down, "{down:?}");
        assert!(down.reason.starts_with("passive: 3 failed new connections within 1000 ms"), "{}", down.reason);
        assert!(board.tick(ms(3000)).is_empty());
        let up = board.tick(ms(3800));
        assert_eq!(up.len(), 1);
        assert!(!up[0].down);
        assert_eq!(board.info(&id(11), ms(3800)).unwrap().syn_failures, Some(6));
    }

    #[test]
    fn passive_and_active_both_must_be_up() {
        let mut board = HealthBoard::default();
        let t0 = Instant::now();
        let p = PassiveConfig { failures: 1, window_ms: 1000, backoff_ms: 100 };
        board.sync(&[(id(11), Some(check(1, 1)), Some(p))], t0);
        board.passive_sample(id(11), 0, t0);
        assert!(board.passive_sample(id(11), 1, t0).unwrap().down);
        // The active check failing meanwhile keeps it down when the backoff ends.
        assert_eq!(board.probe(report(id(11), false), t0), None);
        assert!(board.tick(t0 + Duration::from_millis(200)).is_empty());
        assert!(!board.probe(report(id(11), true), t0).unwrap().down);
    }
}
