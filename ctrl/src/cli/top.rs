//! `fvs top`: a live terminal view (ratatui over crossterm) of the counters `fvs stats` and
//! `fvs service show --stats` return, refreshed every second: per-core Mpps and drops, per
//! service new connections a second and open connections, the top drop reasons. `q` quits.
//! The rates come from the difference of two samples; what is drawn is a plain function of
//! them ([`TopView`]), tested without a terminal.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::Line;
use ratatui::widgets::{Block, Paragraph, Row, Table};
use ratatui::Frame;

use crate::client;
use crate::proto::{Request, ServiceInfo, StatsInfo};

pub(super) const TOP_HELP: &str = "\
Example:
  fvs top

Every second: per worker core the packets received and sent (Mpps and packets a second) and
dropped a second; per service its new connections a second, open connections (active:
established TCP or UDP; inactive: other TCP states) and packets a second in and out; the
drop reasons of the last second, most first, with their totals. q (or Esc, Ctrl-C) quits.";

const REFRESH: Duration = Duration::from_secs(1);
/// Drop reasons shown at most.
const TOP_DROPS: usize = 8;

/// The counters of one moment.
pub(super) struct Sample {
    pub(super) at: Instant,
    pub(super) stats: StatsInfo,
    pub(super) services: Vec<ServiceInfo>,
}

/// What the screen shows: rates over the last interval, gauges as sampled.
#[derive(Debug, Clone, PartialEq, Default)]
pub(super) struct TopView {
    pub(super) interval_s: f64,
    /// (core, lcore, rx pps, tx pps, drops a second).
    pub(super) cores: Vec<(u32, u32, f64, f64, f64)>,
    /// (`tcp 192.0.2.100:80`, mode, conns a second, active, inactive, in pps, out pps).
    pub(super) services: Vec<(String, String, f64, u64, u64, f64, f64)>,
    /// (reason, a second, total), busiest first; reasons with a total only.
    pub(super) drops: Vec<(String, f64, u64)>,
}

fn rate(now: u64, before: u64, secs: f64) -> f64 {
    now.saturating_sub(before) as f64 / secs
}

impl TopView {
    /// Rates from `before` to `now` (with no `before`, zero rates and the gauges).
    pub(super) fn new(before: Option<&Sample>, now: &Sample) -> TopView {
        let secs = before.map_or(0.0, |b| now.at.duration_since(b.at).as_secs_f64());
        let per_s = |n: u64, b: u64| if secs > 0.0 { rate(n, b, secs) } else { 0.0 };
        let counter = |c: &BTreeMap<String, u64>, name: &str| c.get(name).copied().unwrap_or(0);
        let drops_of =
            |c: &BTreeMap<String, u64>| c.iter().filter(|(k, _)| k.starts_with("drop_")).map(|(_, v)| v).sum();
        let cores = now
            .stats
            .cores
            .iter()
            .map(|c| {
                let old = before.and_then(|b| b.stats.cores.iter().find(|o| o.core == c.core));
                let was = |name: &str| old.map_or(counter(&c.counters, name), |o| counter(&o.counters, name));
                let dropped: u64 = drops_of(&c.counters);
                let dropped_before: u64 = old.map_or(dropped, |o| drops_of(&o.counters));
                (
                    c.core,
                    c.lcore,
                    per_s(counter(&c.counters, "rx_packets"), was("rx_packets")),
                    per_s(counter(&c.counters, "tx_packets"), was("tx_packets")),
                    per_s(dropped, dropped_before),
                )
            })
            .collect();
        let services = now
            .services
            .iter()
            .map(|s| {
                let old = before.and_then(|b| {
                    b.services.iter().find(|o| (o.protocol, o.vip, o.port) == (s.protocol, s.vip, s.port))
                });
                let stats = s.stats.unwrap_or_default();
                let was = old.and_then(|o| o.stats).unwrap_or(stats);
                let active = s.backends.iter().map(|b| b.active_conns).sum();
                let inactive = s.backends.iter().map(|b| b.inactive_conns).sum();
                (
                    format!("{} {}", s.protocol.as_str(), std::net::SocketAddr::new(s.vip, s.port)),
                    s.mode.as_str().to_string(),
                    per_s(stats.conns, was.conns),
                    active,
                    inactive,
                    per_s(stats.in_packets, was.in_packets),
                    per_s(stats.out_packets, was.out_packets),
                )
            })
            .collect();
        let total_before = before.map(|b| &b.stats.total);
        let mut drops: Vec<(String, f64, u64)> = now
            .stats
            .total
            .iter()
            .filter_map(|(k, v)| {
                let reason = k.strip_prefix("drop_")?;
                let was = total_before.map_or(*v, |t| counter(t, k));
                (*v > 0).then(|| (reason.to_string(), per_s(*v, was), *v))
            })
            .collect();
        drops.sort_by(|a, b| b.1.total_cmp(&a.1).then(b.2.cmp(&a.2)));
        drops.truncate(TOP_DROPS);
        TopView { interval_s: secs, cores, services, drops }
    }
}

/// `1234567.0` -> `1.23M`, `4560.0` -> `4.56k`, `12.0` -> `12`.
fn si(v: f64) -> String {
    if v >= 1e6 {
        format!("{:.2}M", v / 1e6)
    } else if v >= 1e4 {
        format!("{:.1}k", v / 1e3)
    } else if v >= 1e3 {
        format!("{:.2}k", v / 1e3)
    } else {
        format!("{v:.0}")
    }
}

fn draw(frame: &mut Frame, view: &TopView, socket: &Path, error: Option<&str>) {
    let bold = Style::default().add_modifier(Modifier::BOLD);
    let [head, cores, services, drops] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(view.cores.len().max(1) as u16 + 3),
        Constraint::Length(view.services.len().max(1) as u16 + 3),
        Constraint::Min(3),
    ])
    .areas(frame.area());
    let title = match error {
        Some(e) => format!("fvs top  {}  {e}", socket.display()),
        None => format!("fvs top  {}  every {:.1} s  (q quits)", socket.display(), REFRESH.as_secs_f64()),
    };
    frame.render_widget(Paragraph::new(Line::styled(title, bold)), head);

    let rows = view.cores.iter().map(|(core, lcore, rx, tx, dropped)| {
        Row::new([
            core.to_string(),
            lcore.to_string(),
            format!("{:.4}", rx / 1e6),
            format!("{:.4}", tx / 1e6),
            si(*rx),
            si(*tx),
            si(*dropped),
        ])
    });
    let table = Table::new(rows, [Constraint::Length(6); 2].into_iter().chain([Constraint::Length(10); 5]))
        .header(Row::new(["core", "lcore", "rx Mpps", "tx Mpps", "rx pps", "tx pps", "drops/s"]).style(bold))
        .block(Block::bordered().title(" cores "));
    frame.render_widget(table, cores);

    let rows = view.services.iter().map(|(name, mode, cps, active, inactive, inp, outp)| {
        Row::new([name.clone(), mode.clone(), si(*cps), active.to_string(), inactive.to_string(), si(*inp), si(*outp)])
    });
    let widths = [Constraint::Length(26), Constraint::Length(8)].into_iter().chain([Constraint::Length(10); 5]);
    let table = Table::new(rows, widths)
        .header(Row::new(["service", "mode", "conns/s", "active", "inactive", "in pps", "out pps"]).style(bold))
        .block(Block::bordered().title(" services "));
    frame.render_widget(table, services);

    let rows =
        view.drops.iter().map(|(reason, per_s, total)| Row::new([reason.clone(), si(*per_s), total.to_string()]));
    let table = Table::new(rows, [Constraint::Length(26), Constraint::Length(10), Constraint::Length(14)])
        .header(Row::new(["drop reason", "per s", "total"]).style(bold))
        .block(Block::bordered().title(" drops "));
    frame.render_widget(table, drops);
}

fn sample(socket: &Path) -> Result<Sample, String> {
    let stats: StatsInfo = client::call(socket, &Request::Stats).map_err(|e| e.to_string())?.into_data()?;
    let services: Vec<ServiceInfo> =
        client::call(socket, &Request::ServiceShow { stats: true }).map_err(|e| e.to_string())?.into_data()?;
    Ok(Sample { at: Instant::now(), stats, services })
}

/// Runs the view until q; 0 then, 1 when the terminal or the first sample fails.
pub(super) fn run(socket: &Path, err: &mut dyn Write) -> i32 {
    // Fail before taking over the terminal when the daemon is not there.
    let mut last = match sample(socket) {
        Ok(s) => s,
        Err(e) => {
            let _ = writeln!(err, "fvs: {e}");
            return 1;
        }
    };
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            let _ = writeln!(err, "fvs top: cannot use the terminal: {e}");
            return 1;
        }
    };
    let mut view = TopView::new(None, &last);
    let mut error: Option<String> = None;
    let mut next = Instant::now() + REFRESH;
    let result = loop {
        if let Err(e) = terminal.draw(|f| draw(f, &view, socket, error.as_deref())) {
            break Err(format!("cannot draw: {e}"));
        }
        let wait = next.saturating_duration_since(Instant::now());
        match event::poll(wait) {
            Ok(true) => match event::read() {
                Ok(Event::Key(k)) if k.kind == KeyEventKind::Press => {
                    let ctrl_c = k.code == KeyCode::Char('c') && k.modifiers.contains(KeyModifiers::CONTROL);
                    if matches!(k.code, KeyCode::Char('q') | KeyCode::Esc) || ctrl_c {
                        break Ok(());
                    }
                }
                Ok(_) => {}
                Err(e) => break Err(format!("cannot read the terminal: {e}")),
            },
            Ok(false) => {}
            Err(e) => break Err(format!("cannot read the terminal: {e}")),
        }
        if Instant::now() >= next {
            next += REFRESH;
            match sample(socket) {
                Ok(now) => {
                    view = TopView::new(Some(&last), &now);
                    last = now;
                    error = None;
                }
                // Keep the last view and say why it is not moving; the daemon may come back.
                Err(e) => error = Some(e),
            }
        }
    };
    ratatui::restore();
    match result {
        Ok(()) => 0,
        Err(e) => {
            let _ = writeln!(err, "fvs top: {e}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::lb::{ForwardMode, Protocol, ServiceConfig, ServiceKey};
    use crate::proto::{BackendInfo, CoreStats, TrafficStats};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    fn sample(at: Instant, rx: u64, drops: u64, conns: u64, active: u64) -> Sample {
        let counters: BTreeMap<String, u64> =
            [("rx_packets", rx), ("tx_packets", rx / 2), ("drop_no_service", drops), ("drop_no_route", 0)]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect();
        let stats = StatsInfo {
            cores: vec![CoreStats { core: 0, lcore: 1, counters: counters.clone() }],
            total: counters,
            config: None,
        };
        let key = ServiceKey { protocol: Protocol::Tcp, vip: "192.0.2.100".parse().unwrap(), port: 80 };
        let mut cfg = ServiceConfig::new(key);
        cfg.mode = ForwardMode::Fullnat;
        let backend = BackendInfo {
            addr: "198.51.100.11".parse().unwrap(),
            port: 8080,
            weight: 1,
            state: crate::config::lb::BackendState::Active,
            active_conns: active,
            inactive_conns: 1,
            stats: None,
            handshake: None,
            health: None,
        };
        let traffic = TrafficStats { conns, in_packets: rx, out_packets: rx / 2, ..Default::default() };
        Sample { at, stats, services: vec![ServiceInfo::new(&cfg, vec![backend], Some(traffic))] }
    }

    #[test]
    fn rates_come_from_two_samples() {
        let t = Instant::now();
        let before = sample(t, 1_000, 10, 5, 2);
        let now = sample(t + Duration::from_secs(2), 3_001_000, 50, 405, 7);
        let first = TopView::new(None, &before);
        assert_eq!(first.cores, [(0, 1, 0.0, 0.0, 0.0)]);
        let v = TopView::new(Some(&before), &now);
        assert_eq!(v.cores, [(0, 1, 1_500_000.0, 750_000.0, 20.0)]);
        assert_eq!(v.services[0].0, "tcp 192.0.2.100:80");
        assert_eq!(v.services[0].1, "fullnat");
        assert_eq!((v.services[0].2, v.services[0].3, v.services[0].4), (200.0, 7, 1));
        assert_eq!(v.drops, [("no_service".to_string(), 20.0, 50)], "reasons never counted are left out");
    }

    #[test]
    fn the_screen_shows_cores_services_and_drops() {
        let t = Instant::now();
        let v = TopView::new(Some(&sample(t, 0, 0, 0, 0)), &sample(t + Duration::from_secs(1), 2_500_000, 7, 120, 3));
        let mut terminal = Terminal::new(TestBackend::new(100, 20)).unwrap();
        terminal.draw(|f| draw(f, &v, Path::new("/run/ferrovs/ferrovs.sock"), None)).unwrap();
        let screen: String = terminal
            .backend()
            .buffer()
            .content()
            .chunks(100)
            .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
            .collect();
        for want in ["core", "2.5000", "2.50M", "tcp 192.0.2.100:80", "fullnat", "120", "no_service", "(q quits)"] {
            assert!(screen.contains(want), "{want}\n{screen}");
        }
        assert_eq!(si(999.0), "999");
        assert_eq!(si(45_600.0), "45.6k");
    }
}
