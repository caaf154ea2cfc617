//! The Prometheus/OpenMetrics exposition (`metrics.listen`). The control thread builds a
//! [`MetricsView`] from what it already sums for `fvs stats`, `fvs link show --stats` and `fvs
//! service show --stats` (relaxed loads of the per-core counters, the ports' hardware
//! counters): when a scrape asks (so Prometheus sees current numbers) and every second for
//! DPDK's telemetry commands (`/ferrovs/...`). Encoding happens on the scrape's thread; no
//! worker is asked or waited for.

#[cfg(feature = "dpdk")]
pub mod export;
pub mod http;

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use crate::proto::{ConfigStats, LinkInfo, ServiceInfo, StatsInfo, TrafficStats};

/// What a scrape reports: the daemon's counters as of the last refresh.
#[derive(Debug, Clone, Default)]
pub struct MetricsView {
    /// Per-core counters (events and `drop_<reason>`), as `fvs stats` shows them.
    pub stats: StatsInfo,
    /// The ports with their hardware counters.
    pub links: Vec<LinkInfo>,
    /// The services with their and their backends' traffic.
    pub services: Vec<ServiceInfo>,
}

/// The latest view, shared by the control thread (writer) and the scrape/telemetry readers.
pub type SharedView = Arc<Mutex<Arc<MetricsView>>>;

/// Per-core counters exported under a name of their own; every other event is
/// `ferrovs_core_events_total{event=...}`, every `drop_*` is `ferrovs_core_drops_total{reason=...}`.
/// The one per-core "event" that is a gauge.
const AUTO_ENGAGED: &str = "syn_proxy_auto_engaged";

const CORE_COUNTERS: [(&str, &str, &str); 4] = [
    ("rx_packets", "core_rx_packets", "Packets received by the core from its rx queues"),
    ("tx_packets", "core_tx_packets", "Packets the core sent on its tx queues"),
    ("rx_bytes", "core_rx", "Bytes received by the core"),
    ("tx_bytes", "core_tx", "Bytes the core sent"),
];

/// Encodes `view` as OpenMetrics text (ends with `# EOF`).
pub fn encode(view: &MetricsView) -> String {
    let mut registry = Registry::with_prefix("ferrovs");
    registry.register_collector(Box::new(ViewCollector(Arc::new(view.clone()))));
    let mut out = String::new();
    // Writing into a String cannot fail; the collector's only errors are the writer's.
    prometheus_client::encoding::text::encode(&mut out, &registry).expect("encoding into a String");
    out
}

/// The same exposition in Prometheus' classic text format (0.0.4), for clients that do not
/// ask for OpenMetrics (curl, `promtool check metrics`): a counter's HELP and TYPE name its
/// samples' `_total` name, and there is no `# UNIT` or `# EOF`.
pub fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: std::collections::HashSet<&str> =
        openmetrics.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter")).collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "].into_iter().find_map(|p| Some((p, line.strip_prefix(p)?)));
        match meta {
            Some((prefix, rest)) => {
                let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
                let suffix = if counters.contains(name) { "_total" } else { "" };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out
}

#[derive(Debug)]
struct ViewCollector(Arc<MetricsView>);

type Labels = Vec<(&'static str, String)>;

/// One metric family: its samples' labels and values.
fn family<V: Copy>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, V)>,
    write: impl Fn(&mut prometheus_client::encoding::MetricEncoder, V) -> Result<(), std::fmt::Error>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, unit.as_ref(), kind)?;
    for (labels, value) in samples {
        if labels.is_empty() {
            // A family without labels: `name_total 3`, not `name_total{} 3`.
            write(&mut metric, value)?;
        } else {
            write(&mut metric.encode_family(&labels)?, value)?;
        }
    }
    Ok(())
}

fn counters(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    unit: Option<Unit>,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, unit, MetricType::Counter, samples, |m, v| m.encode_counter::<(), u64, u64>(&v, None))
}

fn gauges(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, i64)>,
) -> Result<(), std::fmt::Error> {
    family(encoder, name, help, None, MetricType::Gauge, samples, |m, v| m.encode_gauge(&v))
}

fn service_labels(s: &ServiceInfo) -> Labels {
    vec![("protocol", s.protocol.as_str().to_string()), ("vip", s.vip.to_string()), ("port", s.port.to_string())]
}

/// Traffic of services or backends: connections, packets and bytes by direction.
fn traffic(
    encoder: &mut DescriptorEncoder,
    what: &str,
    rows: &[(Labels, TrafficStats)],
) -> Result<(), std::fmt::Error> {
    let with = |labels: &Labels, direction: &str| {
        let mut l = labels.clone();
        l.push(("direction", direction.to_string()));
        l
    };
    counters(
        encoder,
        &format!("{what}_connections"),
        &format!("Connections the {what} was given"),
        None,
        rows.iter().map(|(l, t)| (l.clone(), t.conns)),
    )?;
    counters(
        encoder,
        &format!("{what}_packets"),
        &format!("Packets of the {what}'s connections; direction in is client to backend"),
        None,
        rows.iter().flat_map(|(l, t)| [(with(l, "in"), t.in_packets), (with(l, "out"), t.out_packets)]),
    )?;
    counters(
        encoder,
        what,
        &format!("Bytes of the {what}'s connections; direction in is client to backend"),
        Some(Unit::Bytes),
        rows.iter().flat_map(|(l, t)| [(with(l, "in"), t.in_bytes), (with(l, "out"), t.out_bytes)]),
    )
}

fn encode_config(encoder: &mut DescriptorEncoder, c: &ConfigStats) -> Result<(), std::fmt::Error> {
    counters(
        encoder,
        "config_publications",
        "Config snapshots published to the workers",
        None,
        [(vec![], c.published)],
    )?;
    counters(
        encoder,
        "config_publications_not_visible",
        "Publications not used by every worker within the timeout (not in the delay histogram)",
        None,
        [(vec![], c.not_visible)],
    )?;
    // ConfigStats' buckets count delays below each bound; the encoder sums them into
    // Prometheus' cumulative `le` buckets (a delay of exactly a bound lands one bucket up).
    // f64::MAX is the encoder's `+Inf`.
    let buckets: Vec<(f64, u64)> =
        c.visible_buckets.iter().map(|b| (b.below_us.map_or(f64::MAX, |us| us as f64 / 1e6), b.count)).collect();
    let mut metric = encoder.encode_descriptor(
        "config_visible_delay",
        "Time from a publication until every worker used it",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    metric.encode_histogram::<()>(c.visible_sum_us as f64 / 1e6, c.visible(), &buckets, None)
}

/// `backend_handshake_seconds`: per backend with a histogram (NAT and FullNAT TCP services),
/// the time from the client's SYN forwarded to the backend's SYN-ACK. The buckets' bounds are
/// inclusive, as Prometheus' `le`; the encoder makes them cumulative.
fn encode_handshakes(
    encoder: &mut DescriptorEncoder,
    backends: &[(Labels, &crate::proto::BackendInfo)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        "backend_handshake",
        "Time from the client's SYN forwarded to the backend until its SYN-ACK (NAT and FullNAT)",
        Some(&Unit::Seconds),
        MetricType::Histogram,
    )?;
    for (labels, b) in backends {
        let Some(h) = &b.handshake else { continue };
        let buckets: Vec<(f64, u64)> =
            h.buckets.iter().map(|b| (b.le_us.map_or(f64::MAX, |us| us as f64 / 1e6), b.count)).collect();
        metric.encode_family(labels)?.encode_histogram::<()>(h.sum_us as f64 / 1e6, h.count, &buckets, None)?;
    }
    Ok(())
}

impl Collector for ViewCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let view = &self.0;
        let core_labels = |c: &crate::proto::CoreStats| -> Labels {
            vec![("core", c.core.to_string()), ("lcore", c.lcore.to_string())]
        };
        let cores = &view.stats.cores;
        for (key, name, help) in CORE_COUNTERS {
            let unit = key.ends_with("_bytes").then_some(Unit::Bytes);
            let samples = cores.iter().map(|c| (core_labels(c), c.counters.get(key).copied().unwrap_or(0)));
            counters(&mut encoder, name, help, unit, samples)?;
        }
        counters(
            &mut encoder,
            "core_drops",
            "Packets the core dropped, by reason",
            None,
            cores.iter().flat_map(|c| {
                c.counters.iter().filter_map(move |(k, v)| {
                    let reason = k.strip_prefix("drop_")?;
                    let mut l = core_labels(c);
                    l.push(("reason", reason.to_string()));
                    Some((l, *v))
                })
            }),
        )?;
        counters(
            &mut encoder,
            "core_events",
            "Other per-core events (ARP/ND, ICMP, connections created/expired, hand-offs, polls...)",
            None,
            cores.iter().flat_map(|c| {
                c.counters
                    .iter()
                    .filter(|(k, _)| {
                        !k.starts_with("drop_")
                            && !CORE_COUNTERS.iter().any(|(key, ..)| key == k)
                            && k.as_str() != AUTO_ENGAGED
                    })
                    .map(move |(k, v)| {
                        let mut l = core_labels(c);
                        l.push(("event", k.clone()));
                        (l, *v)
                    })
            }),
        )?;

        gauges(
            &mut encoder,
            "core_syn_proxy_auto_engaged",
            "1 while the core answers the SYNs of syn_proxy: auto services with cookies",
            cores.iter().map(|c| (core_labels(c), c.counters.get(AUTO_ENGAGED).copied().unwrap_or(0) as i64)),
        )?;

        let ports: Vec<(Labels, dataplane::counters::PortStats)> =
            view.links.iter().filter_map(|l| Some((vec![("port", l.name.clone())], l.stats?))).collect();
        type PortField = (&'static str, &'static str, Option<Unit>, fn(&dataplane::counters::PortStats) -> u64);
        let port_fields: [PortField; 8] = [
            ("port_rx_packets", "Packets the port received (NIC counter)", None, |s| s.rx_packets),
            ("port_tx_packets", "Packets the port sent (NIC counter)", None, |s| s.tx_packets),
            ("port_rx", "Bytes the port received", Some(Unit::Bytes), |s| s.rx_bytes),
            ("port_tx", "Bytes the port sent", Some(Unit::Bytes), |s| s.tx_bytes),
            ("port_rx_missed", "Packets the NIC dropped because the rx queues were full", None, |s| s.rx_missed),
            ("port_rx_errors", "Erroneous packets received", None, |s| s.rx_errors),
            ("port_tx_errors", "Packets the NIC failed to send", None, |s| s.tx_errors),
            ("port_rx_nombuf", "Receive failures for want of an mbuf", None, |s| s.rx_nombuf),
        ];
        for (name, help, unit, field) in port_fields {
            counters(&mut encoder, name, help, unit, ports.iter().map(|(l, s)| (l.clone(), field(s))))?;
        }

        let services: Vec<(Labels, TrafficStats)> =
            view.services.iter().map(|s| (service_labels(s), s.stats.unwrap_or_default())).collect();
        traffic(&mut encoder, "service", &services)?;
        let backends: Vec<(Labels, &crate::proto::BackendInfo)> = view
            .services
            .iter()
            .flat_map(|s| {
                s.backends.iter().map(move |b| {
                    let mut l = service_labels(s);
                    l.push(("backend", std::net::SocketAddr::new(b.addr, b.port).to_string()));
                    (l, b)
                })
            })
            .collect();
        let backend_traffic: Vec<(Labels, TrafficStats)> =
            backends.iter().map(|(l, b)| (l.clone(), b.stats.unwrap_or_default())).collect();
        traffic(&mut encoder, "backend", &backend_traffic)?;
        gauges(
            &mut encoder,
            "backend_open_connections",
            "Open connections of the backend by state: active (TCP established, live UDP) or inactive (other TCP states)",
            backends.iter().flat_map(|(l, b)| {
                let with = |state: &str| {
                    let mut l = l.clone();
                    l.push(("state", state.to_string()));
                    l
                };
                [(with("active"), b.active_conns as i64), (with("inactive"), b.inactive_conns as i64)]
            }),
        )?;
        gauges(
            &mut encoder,
            "backend_weight",
            "The backend's configured weight",
            backends.iter().map(|(l, b)| (l.clone(), i64::from(b.weight))),
        )?;
        encode_handshakes(&mut encoder, &backends)?;
        gauges(
            &mut encoder,
            "backend_up",
            "1 when the backend's health checks (active or passive) find it up, 0 when down; only checked backends",
            backends.iter().filter_map(|(l, b)| Some((l.clone(), i64::from(b.health.as_ref()?.up)))),
        )?;
        if let Some(c) = &view.stats.config {
            encode_config(&mut encoder, c)?;
        }
        Ok(())
    }
}

/// The `/ferrovs/...` telemetry commands and their help.
pub const TELEMETRY_COMMANDS: [(&str, &str); 3] = [
    ("/ferrovs/stats", "ferrovs: packet, event and drop counters summed over the workers. Takes no parameters."),
    (
        "/ferrovs/services",
        "ferrovs: per service connections, packets and bytes (in = client to backend). Takes no parameters.",
    ),
    ("/ferrovs/conns", "ferrovs: connections summary: open (active, inactive), created, expired. Takes no parameters."),
];

/// The dicts of the telemetry commands for `view`, in `TELEMETRY_COMMANDS` order: flat
/// name -> number maps (DPDK 22.11 nests only arrays), service keys as `tcp/VIP/PORT/...`.
pub fn telemetry_dicts(view: &MetricsView) -> [Vec<(String, u64)>; 3] {
    let stats = view.stats.total.iter().map(|(k, v)| (k.clone(), *v)).collect();
    let mut services = Vec::new();
    let (mut active, mut inactive) = (0, 0);
    for s in &view.services {
        let id = format!("{}/{}/{}", s.protocol.as_str(), s.vip, s.port);
        let t = s.stats.unwrap_or_default();
        let (a, i) = s.backends.iter().fold((0, 0), |(a, i), b| (a + b.active_conns, i + b.inactive_conns));
        active += a;
        inactive += i;
        for (field, v) in [
            ("conns", t.conns),
            ("active_conns", a),
            ("inactive_conns", i),
            ("in_packets", t.in_packets),
            ("out_packets", t.out_packets),
            ("in_bytes", t.in_bytes),
            ("out_bytes", t.out_bytes),
        ] {
            services.push((format!("{id}/{field}"), v));
        }
    }
    let total = |k: &str| view.stats.total.get(k).copied().unwrap_or(0);
    let conns = vec![
        ("active".to_string(), active),
        ("inactive".to_string(), inactive),
        ("created".to_string(), total("conns_created")),
        ("expired".to_string(), total("conns_expired")),
        ("reset".to_string(), total("conns_reset")),
    ];
    [stats, services, conns]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::{BackendInfo, CoreStats};

    fn view() -> MetricsView {
        let config = crate::config::Config::from_yaml(
            "ports: [ { name: dp0, device: net_null0 } ]\naddresses: [ { port: dp0, addr: 192.0.2.1/24 } ]\nservices:\n  - { vip: 192.0.2.100, port: 80, protocol: tcp, backends: [ { addr: 192.0.2.11, port: 8080 } ] }\n",
            "t.yaml",
        )
        .unwrap();
        let traffic = TrafficStats { conns: 3, in_packets: 10, out_packets: 9, in_bytes: 1000, out_bytes: 900 };
        let backend = BackendInfo {
            addr: "192.0.2.11".parse().unwrap(),
            port: 8080,
            weight: 1,
            state: Default::default(),
            active_conns: 2,
            inactive_conns: 1,
            stats: Some(traffic),
            handshake: Some(crate::proto::HandshakeStats {
                count: 3,
                sum_us: 1_150,
                buckets: [(Some(100), 1), (Some(250), 0), (Some(1_000), 2), (None, 0)]
                    .into_iter()
                    .map(|(le_us, count)| crate::proto::HandshakeBucket { le_us, count })
                    .collect(),
            }),
            health: None,
        };
        let service = ServiceInfo::new(&config.services[0], vec![backend], Some(traffic));
        let counters =
            [("rx_packets", 20), ("tx_bytes", 1900), ("drop_no_service", 4), ("conns_created", 3), (AUTO_ENGAGED, 1)]
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect();
        let mut config_stats = ConfigStats::new(std::time::Duration::from_secs(2));
        config_stats.record(Some(std::time::Duration::from_micros(50)));
        config_stats.record(Some(std::time::Duration::from_micros(5)));
        MetricsView {
            stats: StatsInfo {
                cores: vec![CoreStats { core: 0, lcore: 1, counters }],
                total: [("conns_created".to_string(), 3)].into_iter().collect(),
                config: Some(config_stats),
            },
            links: vec![],
            services: vec![service],
        }
    }

    #[test]
    fn exposition_names_labels_and_values() {
        let text = encode(&view());
        for line in [
            "ferrovs_core_rx_packets_total{core=\"0\",lcore=\"1\"} 20",
            "ferrovs_core_tx_bytes_total{core=\"0\",lcore=\"1\"} 1900",
            "ferrovs_core_drops_total{core=\"0\",lcore=\"1\",reason=\"no_service\"} 4",
            "ferrovs_core_events_total{core=\"0\",lcore=\"1\",event=\"conns_created\"} 3",
            "ferrovs_core_syn_proxy_auto_engaged{core=\"0\",lcore=\"1\"} 1",
            "ferrovs_service_connections_total{protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\"} 3",
            "ferrovs_service_packets_total{protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",direction=\"in\"} 10",
            "ferrovs_service_bytes_total{protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",direction=\"out\"} 900",
            "ferrovs_backend_open_connections{protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",backend=\"192.0.2.11:8080\",state=\"inactive\"} 1",
            "ferrovs_backend_handshake_seconds_bucket{le=\"0.0001\",protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",backend=\"192.0.2.11:8080\"} 1",
            "ferrovs_backend_handshake_seconds_bucket{le=\"0.001\",protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",backend=\"192.0.2.11:8080\"} 3",
            "ferrovs_backend_handshake_seconds_bucket{le=\"+Inf\",protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",backend=\"192.0.2.11:8080\"} 3",
            "ferrovs_backend_handshake_seconds_count{protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",backend=\"192.0.2.11:8080\"} 3",
            "ferrovs_backend_handshake_seconds_sum{protocol=\"tcp\",vip=\"192.0.2.100\",port=\"80\",backend=\"192.0.2.11:8080\"} 0.00115",
            "ferrovs_config_publications_total 2",
            "ferrovs_config_visible_delay_seconds_bucket{le=\"0.00001\"} 1",
            "ferrovs_config_visible_delay_seconds_bucket{le=\"0.0001\"} 2",
            "ferrovs_config_visible_delay_seconds_bucket{le=\"+Inf\"} 2",
            "ferrovs_config_visible_delay_seconds_count 2",
        ] {
            assert!(text.lines().any(|l| l == line), "no line {line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
        let classic = to_prometheus_text(&text);
        assert!(classic.contains("\n# TYPE ferrovs_core_drops_total counter\n"), "{classic}");
        assert!(classic.contains("\n# TYPE ferrovs_core_syn_proxy_auto_engaged gauge\n"), "{classic}");
        assert!(!text.contains("event=\"syn_proxy_auto_engaged\""), "a gauge, not an event");
        assert!(classic.contains("\n# TYPE ferrovs_backend_open_connections gauge\n"), "{classic}");
        assert!(!classic.contains("# EOF") && !classic.contains("# UNIT"), "{classic}");
        if let Ok(path) = std::env::var("FVS_DUMP_METRICS") {
            std::fs::write(path, &classic).unwrap();
        }
    }

    #[test]
    fn telemetry_dicts_sum_services() {
        let [stats, services, conns] = telemetry_dicts(&view());
        assert_eq!(stats, vec![("conns_created".to_string(), 3)]);
        assert!(services.contains(&("tcp/192.0.2.100/80/in_packets".to_string(), 10)));
        assert_eq!(&conns[..3], &[("active".into(), 2), ("inactive".into(), 1), ("created".into(), 3)]);
    }
}
