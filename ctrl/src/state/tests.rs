//! The control state without DPDK: every refusal leaves the whole state as it was, and random
//! request sequences agree with a model of the config lists.

use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;
use serde_json::json;

use super::*;
use dataplane::net::Prefix;
use dataplane::wire::IpProtocol;

use crate::config::ServiceKey;

/// Two ports, a static route, a DR and a FullNAT service and a SNAT rule; the two local
/// addresses (192.0.2.60 and 192.0.2.50) fill `max_laddrs`.
const BASE: &str = "\
eal: { hugepages: false }
workers: { lcores: [1] }
ports:
  - { name: dp0, device: net_null0 }
  - { name: dp1, device: net_null1 }
addresses:
  - { port: dp0, addr: 192.0.2.1/24 }
  - { port: dp1, addr: 198.51.100.1/24 }
routes:
  - { prefix: 203.0.113.0/24, via: 198.51.100.254 }
connections: { max_laddrs: 2 }
services:
  - { vip: 192.0.2.100, port: 80, protocol: tcp, mode: dr, backends: [{ addr: 192.0.2.11, port: 80 }] }
  - { vip: 192.0.2.100, port: 443, protocol: tcp, mode: fullnat, laddrs: [192.0.2.60],
      backends: [{ addr: 198.51.100.10, port: 8443 }] }
snat:
  - { source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.50] }
";

fn ports() -> Vec<PortFacts> {
    (0..2u8)
        .map(|i| PortFacts { id: u16::from(i), name: format!("dp{i}"), mac: MacAddr([2, 0, 0, 0, 0, i]), mtu: 1500 })
        .collect()
}

fn state_from(yaml: &str) -> ControlState {
    let config = Config::from_yaml(yaml, "base.yaml").unwrap();
    ControlState::new(config, ports()).unwrap().0
}

/// A request as `fvs` sends it.
fn req(value: serde_json::Value) -> Request {
    serde_json::from_value(value.clone()).unwrap_or_else(|e| panic!("{value}: {e}"))
}

fn accept(s: &mut ControlState, request: Request) -> Option<Box<Snapshot>> {
    let what = format!("{request:?}");
    match s.handle(request) {
        Outcome::Done { response: Response::Ok(_), publish, .. } => publish,
        other => panic!("{what} was not accepted: {other:?}"),
    }
}

/// Refused with a message containing `want`, and the state is exactly as before.
fn refused(s: &mut ControlState, request: Request, want: &str) -> Result<(), String> {
    let before = s.dump();
    let what = format!("{request:?}");
    match s.handle(request) {
        Outcome::Refused(m) if m.contains(want) => {}
        Outcome::Refused(m) => return Err(format!("{what}: {m:?} does not say {want:?}")),
        other => return Err(format!("{what} was not refused: {other:?}")),
    }
    if s.dump() != before {
        return Err(format!("{what} was refused but changed the state"));
    }
    Ok(())
}

fn assert_refused(s: &mut ControlState, request: Request, want: &str) {
    if let Err(e) = refused(s, request, want) {
        panic!("{e}");
    }
}

fn dr() -> serde_json::Value {
    json!({ "protocol": "tcp", "vip": "192.0.2.100", "port": 80 })
}

fn fullnat() -> serde_json::Value {
    json!({ "protocol": "tcp", "vip": "192.0.2.100", "port": 443 })
}

/// The bug this module fixes: `fvs apply` wrote the new addresses, routes and timeouts into
/// the running config before building the services, which can still fail.
#[test]
fn apply_refused_while_building_changes_nothing() {
    let mut s = state_from(BASE);
    // 192.0.2.50 keeps its slot for the life of the process, so 192.0.2.51 needs a third.
    let next = BASE
        .replace("addresses: [192.0.2.50]", "addresses: [192.0.2.51]")
        .replace("connections: { max_laddrs: 2 }", "connections: { max_laddrs: 2, timeouts: { udp: 7 } }")
        .replace(
            "  - { port: dp1, addr: 198.51.100.1/24 }\n",
            "  - { port: dp1, addr: 198.51.100.1/24 }\n  - { port: dp1, addr: 2001:db8:1::1/64 }\n",
        );
    assert!(next.contains("2001:db8:1::1/64") && next.contains("udp: 7") && next.contains("[192.0.2.51]"));
    Config::from_yaml(&next, "next.yaml").expect("the new config is valid on its own");
    assert_refused(
        &mut s,
        req(json!({ "op": "apply", "source": "next.yaml", "yaml": next })),
        "next.yaml: more than 2 local addresses (connections.max_laddrs)",
    );
    // And a later apply of the running config still finds nothing to change.
    match s.handle(req(json!({ "op": "apply", "source": "base.yaml", "yaml": BASE }))) {
        Outcome::Done { response, publish: None, .. } => {
            assert_eq!(response.into_data::<ApplyResult>().unwrap().changes, Vec::<String>::new())
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_change_refused_for_each_reason_changes_nothing() {
    let mut s = state_from(BASE);
    let cases: Vec<(serde_json::Value, &str)> = vec![
        // Addresses and routes.
        (json!({ "op": "addr_add", "port": "dp9", "addr": "192.0.2.9/24" }), "no port named 'dp9'"),
        (json!({ "op": "addr_add", "port": "dp0", "addr": "192.0.2.1/24" }), "192.0.2.1 is already an address of port dp0"),
        (json!({ "op": "addr_add", "port": "dp0", "addr": "192.0.2.0/24" }), "192.0.2.0/24"),
        (json!({ "op": "addr_del", "port": "dp0", "addr": "192.0.2.77/24" }), "no address 192.0.2.77/24 on port dp0"),
        (
            json!({ "op": "addr_del", "port": "dp0", "addr": "192.0.2.1/24" }),
            "service tcp 192.0.2.100:80 is in dr mode and backend 192.0.2.11 is not on a directly connected network",
        ),
        (json!({ "op": "addr_del", "port": "dp1", "addr": "198.51.100.1/24" }), "198.51.100.254"),
        (
            json!({ "op": "route_add", "route": { "prefix": "203.0.113.0/24", "via": "198.51.100.1" } }),
            "198.51.100.1 is ferrovs's own address on port dp1",
        ),
        (
            json!({ "op": "route_add", "route": { "prefix": "203.0.113.0/24", "via": "198.51.100.253" } }),
            "203.0.113.0/24",
        ),
        (
            json!({ "op": "route_add", "route": { "prefix": "2001:db8:5::/48", "via": "2001:db8:9::1" } }),
            "next hop 2001:db8:9::1 is not in any connected network",
        ),
        (json!({ "op": "route_del", "prefix": "2001:db8:5::/48" }), "no static route to 2001:db8:5::/48"),
        // Services.
        (
            json!({ "op": "service_add", "service": { "vip": "192.0.2.100", "port": 80, "protocol": "tcp" } }),
            "service tcp 192.0.2.100:80 already exists",
        ),
        (
            json!({ "op": "service_add", "service": { "vip": "192.0.2.100", "port": 8443, "protocol": "tcp",
                "tunnel": { "encap": "gue" } } }),
            "service tcp 192.0.2.100:8443 is in nat mode; tunnel settings are only used in tun mode",
        ),
        (
            json!({ "op": "service_add", "service": { "vip": "192.0.2.101", "port": 80, "protocol": "tcp",
                "mode": "fullnat", "laddrs": ["192.0.2.61"] } }),
            "connections.max_laddrs allows 2",
        ),
        (
            json!({ "op": "service_set", "key": { "protocol": "udp", "vip": "192.0.2.100", "port": 80 },
                "set": { "persistence_s": 5 } }),
            "no service udp 192.0.2.100:80",
        ),
        (json!({ "op": "service_set", "key": dr(), "set": {} }), "nothing to change"),
        (
            json!({ "op": "service_set", "key": dr(), "set": { "gue_port": 6080 } }),
            "service tcp 192.0.2.100:80 is in dr mode; tunnel settings are only used in tun mode",
        ),
        (
            json!({ "op": "service_set", "key": dr(), "set": { "mode": "tun", "encap": "gue", "gue_port": 0 } }),
            "port 0 is not a GUE port",
        ),
        (
            json!({ "op": "service_del", "key": { "protocol": "tcp", "vip": "192.0.2.199", "port": 80 } }),
            "no service tcp 192.0.2.199:80",
        ),
        // Backends.
        (
            json!({ "op": "backend_add", "service": { "protocol": "tcp", "vip": "192.0.2.199", "port": 80 },
                "backend": { "addr": "192.0.2.12", "port": 80 } }),
            "no service tcp 192.0.2.199:80",
        ),
        (
            json!({ "op": "backend_add", "service": dr(), "backend": { "addr": "192.0.2.11", "port": 80 } }),
            "backend 192.0.2.11:80 is already in service tcp 192.0.2.100:80",
        ),
        (
            json!({ "op": "backend_add", "service": dr(), "backend": { "addr": "203.0.113.9", "port": 80 } }),
            "backend 203.0.113.9 is not on a directly connected network",
        ),
        (
            json!({ "op": "backend_add", "service": dr(), "backend": { "addr": "192.0.2.12", "port": 8080 } }),
            "dr mode, which cannot change ports: backend port must be 80",
        ),
        (
            json!({ "op": "backend_set", "service": dr(), "addr": "192.0.2.12", "port": 80, "weight": 3 }),
            "no backend 192.0.2.12:80 in service tcp 192.0.2.100:80",
        ),
        (json!({ "op": "backend_set", "service": dr(), "addr": "192.0.2.11", "port": 80 }), "nothing to change"),
        (
            json!({ "op": "backend_del", "service": dr(), "addr": "192.0.2.12", "port": 80 }),
            "no backend 192.0.2.12:80 in service tcp 192.0.2.100:80",
        ),
        // Local addresses.
        (
            json!({ "op": "laddr_add", "service": fullnat(), "addr": "192.0.2.60" }),
            "192.0.2.60 is already a local address of service tcp 192.0.2.100:443",
        ),
        (
            json!({ "op": "laddr_add", "service": fullnat(), "addr": "192.0.2.61" }),
            "connections.max_laddrs allows 2",
        ),
        (
            json!({ "op": "laddr_del", "service": fullnat(), "addr": "192.0.2.61" }),
            "192.0.2.61 is not a local address of service tcp 192.0.2.100:443",
        ),
        // SNAT.
        (
            json!({ "op": "snat_add", "rule": { "source": "198.51.100.5/24", "out_port": "dp0",
                "addresses": ["192.0.2.50"] } }),
            "198.51.100.5/24 has host bits set, did you mean 198.51.100.0/24?",
        ),
        (
            json!({ "op": "snat_add", "rule": { "source": "198.51.100.0/24", "out_port": "dp0",
                "addresses": ["192.0.2.50"] } }),
            "SNAT rule source 198.51.100.0/24 out-port dp0 already exists",
        ),
        (
            json!({ "op": "snat_add", "rule": { "source": "203.0.113.0/24", "out_port": "dp0",
                "addresses": ["192.0.2.100"] } }),
            "SNAT address 192.0.2.100 is also a VIP",
        ),
        (
            json!({ "op": "snat_add", "rule": { "source": "203.0.113.0/24", "out_port": "dp9",
                "addresses": ["192.0.2.50"] } }),
            "no port named 'dp9' (ports are: dp0, dp1)",
        ),
        (
            json!({ "op": "snat_del", "source": "203.0.113.0/24", "out_port": "dp0" }),
            "no SNAT rule source 203.0.113.0/24 out-port dp0",
        ),
        // Apply.
        (json!({ "op": "apply", "source": "bad.yaml", "yaml": "eal:\n  hugepages: false\nworkers:\n  lcores: [1]: 2\n" }), "line 4"),
        (
            json!({ "op": "apply", "source": "mtu.yaml", "yaml": BASE.replace("device: net_null1 }", "device: net_null1, mtu: 9000 }") }),
            "mtu.yaml: ports differ from the running config and can only change with a restart of ferrovs; nothing was applied",
        ),
    ];
    let failures: Vec<String> = cases.into_iter().filter_map(|(r, want)| refused(&mut s, req(r), want).err()).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // A local address's slot outlives it, so building can refuse what validation accepted.
    accept(&mut s, req(json!({ "op": "snat_del", "source": "198.51.100.0/24", "out_port": "dp0" })));
    let before = s.dump();
    assert_refused(
        &mut s,
        req(json!({ "op": "laddr_add", "service": fullnat(), "addr": "192.0.2.61" })),
        "more than 2 local addresses (connections.max_laddrs)",
    );
    assert_eq!(s.dump(), before);
}

#[test]
fn changes_publish_what_they_built() {
    let mut s = state_from(BASE);
    let snap = accept(&mut s, req(json!({ "op": "addr_add", "port": "dp1", "addr": "2001:db8:1::1/64" }))).unwrap();
    assert!(snap.addresses().contains(&LocalAddr { port: 1, prefix: "2001:db8:1::1/64".parse().unwrap() }));
    // An L3 change publishes the services as they were.
    assert!(Arc::ptr_eq(&snap.services, &s.services));
    let snap = accept(
        &mut s,
        req(json!({ "op": "backend_add", "service": fullnat(), "backend": { "addr": "198.51.100.11", "port": 8443 } })),
    )
    .unwrap();
    let service = snap.services.lookup(Ipv4Addr::new(192, 0, 2, 100), 443, IpProtocol::TCP).unwrap();
    assert_eq!(
        service.backends.iter().map(|b| (b.addr, b.port)).collect::<Vec<_>>(),
        [(Ipv4Addr::new(198, 51, 100, 10), 8443), (Ipv4Addr::new(198, 51, 100, 11), 8443)]
    );
    assert!(matches!(s.handle(Request::AddrShow), Outcome::Done { publish: None, .. }));
    assert!(matches!(s.handle(Request::NeighShow), Outcome::NotMine(Request::NeighShow)));
}

fn vips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|s| s.parse().unwrap()).collect()
}

/// A VIP is announced while one of its services has a backend that takes new connections
/// (active, weight > 0), and withdrawn when none has or the service goes.
#[test]
fn announced_vips_follow_usable_backends() {
    let mut s = state_from(BASE);
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100"]));
    let web = json!({ "protocol": "tcp", "vip": "192.0.2.101", "port": 80 });
    accept(
        &mut s,
        req(
            json!({ "op": "service_add", "service": { "vip": "192.0.2.101", "port": 80, "protocol": "tcp", "mode": "dr" } }),
        ),
    );
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100"]), "no backend yet");
    accept(
        &mut s,
        req(json!({ "op": "backend_add", "service": web, "backend": { "addr": "192.0.2.11", "port": 80 } })),
    );
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100", "192.0.2.101"]));
    let set = |weight: Option<u32>, state: Option<&str>| {
        req(
            json!({ "op": "backend_set", "service": web, "addr": "192.0.2.11", "port": 80, "weight": weight, "state": state }),
        )
    };
    accept(&mut s, set(Some(0), None));
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100"]), "weight 0");
    accept(&mut s, set(Some(1), Some("draining")));
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100"]), "draining");
    accept(&mut s, set(None, Some("inhibited")));
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100"]), "inhibited (a failed health check)");
    accept(&mut s, set(None, Some("active")));
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100", "192.0.2.101"]));
    // A refused change keeps the set (and everything else).
    assert_refused(&mut s, set(Some(70000), None), "70000 is out of range");
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100", "192.0.2.101"]));
    accept(&mut s, req(json!({ "op": "service_del", "key": web })));
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100"]), "service deleted");
    // One service of a VIP without a usable backend does not withdraw the VIP the other serves.
    accept(&mut s, req(json!({ "op": "backend_set", "service": dr(), "addr": "192.0.2.11", "port": 80, "weight": 0 })));
    assert_eq!(s.announced_vips(), vips(&["192.0.2.100"]), "the fullnat service still has one");
    accept(&mut s, req(json!({ "op": "backend_del", "service": fullnat(), "addr": "198.51.100.10", "port": 8443 })));
    assert_eq!(s.announced_vips(), vips(&[]));
}

/// Pickup: built into the workers' service for `mh` in DR by default, refused where it
/// cannot work, dropped with a change to a mode that has no use for it.
#[test]
fn pickup_is_built_refused_and_cleared() {
    let mut s = state_from(BASE);
    let built = |s: &ControlState, port: u16| {
        s.services.lookup(Ipv4Addr::new(192, 0, 2, 100), port, IpProtocol::TCP).unwrap().pickup
    };
    assert!(!built(&s, 80), "dr with wlc: off by default");
    accept(&mut s, req(json!({ "op": "service_set", "key": dr(), "set": { "scheduler": "mh" } })));
    assert!(built(&s, 80), "dr with mh: on by default");
    accept(&mut s, req(json!({ "op": "service_set", "key": dr(), "set": { "pickup": false } })));
    assert!(!built(&s, 80));
    assert_refused(
        &mut s,
        req(json!({ "op": "service_set", "key": fullnat(), "set": { "pickup": true } })),
        "service tcp 192.0.2.100:443 is in fullnat mode; mid-flow pickup is only for dr and tun",
    );
    accept(&mut s, req(json!({ "op": "service_set", "key": dr(), "set": { "pickup": true } })));
    assert!(built(&s, 80));
    // To nat: the setting means nothing there and goes, so the change is not refused for it.
    accept(&mut s, req(json!({ "op": "service_set", "key": dr(), "set": { "mode": "nat" } })));
    assert_eq!(s.config().services[0].pickup, None);
    assert!(!built(&s, 80));
}

/// Two balancers started from the same config build the same Maglev table, whatever each
/// did before (slots, generations and edits differ): the same flow gets the same backend.
#[test]
fn balancers_from_one_config_build_the_same_maglev_table() {
    let yaml = BASE.replace(
        "mode: dr, backends: [{ addr: 192.0.2.11, port: 80 }] }",
        "mode: dr, scheduler: mh, maglev_size: 251, backends: [{ addr: 192.0.2.11, port: 80 }, { addr: 192.0.2.12, port: 80 }, { addr: 192.0.2.13, port: 80 }] }",
    );
    assert!(yaml.contains("maglev_size: 251"));
    let a = state_from(&yaml);
    // B got there by edits: other slots and generations for the same backends.
    let mut b = state_from(BASE);
    accept(
        &mut b,
        req(
            json!({ "op": "apply", "source": "other.yaml", "yaml": BASE.replace("192.0.2.11, port: 80", "192.0.2.19, port: 80") }),
        ),
    );
    accept(&mut b, req(json!({ "op": "apply", "source": "same.yaml", "yaml": yaml })));
    let svc = |s: &ControlState| s.services.lookup(Ipv4Addr::new(192, 0, 2, 100), 80, IpProtocol::TCP).unwrap().clone();
    let (sa, sb) = (svc(&a), svc(&b));
    assert!(sa.pickup && sb.pickup);
    assert_ne!(
        sa.backends.iter().map(|x| (x.slot, x.gen)).collect::<Vec<_>>(),
        sb.backends.iter().map(|x| (x.slot, x.gen)).collect::<Vec<_>>(),
        "the balancers' slots differ"
    );
    let (ta, tb) = (sa.table.unwrap(), sb.table.unwrap());
    let mut picked = BTreeSet::new();
    for client in 0..=255u8 {
        let hash = dataplane::sched::source_hash_v4(Ipv4Addr::new(203, 0, 113, client));
        let (ia, ib) = (ta.lookup(hash).unwrap(), tb.lookup(hash).unwrap());
        assert_eq!(sa.backends[usize::from(ia)].addr, sb.backends[usize::from(ib)].addr, "client 203.0.113.{client}");
        picked.insert(ia);
    }
    assert_eq!(picked.len(), 3, "every backend gets clients");
}

// ---------------------------------------------------------------------------------------
// Random request sequences against a model

/// A service in the model: its key, backends and local addresses, in order.
type ModelService = (ServiceKey, Vec<(IpAddr, u16)>, Vec<IpAddr>);

/// What the config lists must be after the accepted requests.
#[derive(Clone, Debug, PartialEq)]
struct Model {
    addresses: Vec<(String, Prefix)>,
    routes: Vec<Prefix>,
    services: Vec<ModelService>,
    snat: Vec<(Prefix, String, Vec<IpAddr>)>,
}

impl Model {
    fn of(c: &Config) -> Model {
        Model {
            addresses: c.addresses.iter().map(|a| (a.port.clone(), a.addr)).collect(),
            routes: c.routes.iter().map(|r| r.prefix).collect(),
            services: c
                .services
                .iter()
                .map(|s| (s.key(), s.backends.iter().map(|b| (b.addr, b.port)).collect(), s.laddrs.clone()))
                .collect(),
            snat: c.snat.iter().map(|r| (r.source, r.out_port.clone(), r.addresses.clone())).collect(),
        }
    }

    fn service(&mut self, key: ServiceKey) -> Option<&mut ModelService> {
        self.services.iter_mut().find(|s| s.0 == key)
    }

    /// The model after `op` if the state accepts it; None if the state must refuse it (it
    /// names something missing or already there). Validation may refuse more.
    fn after(&self, op: &Op) -> Option<Model> {
        let mut m = self.clone();
        match op {
            Op::AddrAdd(port, addr) => {
                if m.addresses.iter().any(|a| a.1.addr() == addr.addr()) || port == "dp9" {
                    return None;
                }
                m.addresses.push((port.clone(), *addr));
            }
            Op::AddrDel(port, addr) => {
                let i = m.addresses.iter().position(|a| a.0 == *port && a.1 == *addr)?;
                m.addresses.remove(i);
            }
            Op::RouteAdd(prefix, _) => m.routes.push(*prefix),
            Op::RouteDel(prefix) => {
                let i = m.routes.iter().position(|r| r.network() == prefix.network())?;
                m.routes.remove(i);
            }
            Op::ServiceAdd(key, _, laddrs) => {
                if m.service(*key).is_some() {
                    return None;
                }
                m.services.push((*key, Vec::new(), laddrs.clone()));
            }
            Op::ServiceDel(key) => {
                m.service(*key)?;
                m.services.retain(|s| s.0 != *key);
            }
            Op::BackendAdd(key, backend) => {
                let s = m.service(*key)?;
                if s.1.contains(backend) {
                    return None;
                }
                s.1.push(*backend);
            }
            Op::BackendDel(key, backend) => {
                let s = m.service(*key)?;
                let i = s.1.iter().position(|b| b == backend)?;
                s.1.remove(i);
            }
            Op::LaddrAdd(key, addr) => {
                let s = m.service(*key)?;
                if s.2.contains(addr) {
                    return None;
                }
                s.2.push(*addr);
            }
            Op::LaddrDel(key, addr) => {
                let s = m.service(*key)?;
                let i = s.2.iter().position(|a| a == addr)?;
                s.2.remove(i);
            }
            Op::SnatAdd(source, port, addr) => {
                if m.snat.iter().any(|r| r.0 == *source && r.1 == *port) {
                    return None;
                }
                m.snat.push((*source, port.clone(), vec![*addr]));
            }
            Op::SnatDel(source, port) => {
                let i = m.snat.iter().position(|r| r.0 == *source && r.1 == *port)?;
                m.snat.remove(i);
            }
        }
        Some(m)
    }
}

#[derive(Clone, Debug)]
enum Op {
    AddrAdd(String, Prefix),
    AddrDel(String, Prefix),
    RouteAdd(Prefix, IpAddr),
    RouteDel(Prefix),
    ServiceAdd(ServiceKey, &'static str, Vec<IpAddr>),
    ServiceDel(ServiceKey),
    BackendAdd(ServiceKey, (IpAddr, u16)),
    BackendDel(ServiceKey, (IpAddr, u16)),
    LaddrAdd(ServiceKey, IpAddr),
    LaddrDel(ServiceKey, IpAddr),
    SnatAdd(Prefix, String, IpAddr),
    SnatDel(Prefix, String),
}

impl Op {
    fn request(&self) -> Request {
        let key = |k: &ServiceKey| serde_json::to_value(k).unwrap();
        req(match self {
            Op::AddrAdd(port, addr) => json!({ "op": "addr_add", "port": port, "addr": addr }),
            Op::AddrDel(port, addr) => json!({ "op": "addr_del", "port": port, "addr": addr }),
            Op::RouteAdd(prefix, via) => json!({ "op": "route_add", "route": { "prefix": prefix, "via": via } }),
            Op::RouteDel(prefix) => json!({ "op": "route_del", "prefix": prefix }),
            Op::ServiceAdd(k, mode, laddrs) => json!({ "op": "service_add", "service": {
                "vip": k.vip, "port": k.port, "protocol": "tcp", "mode": mode, "laddrs": laddrs } }),
            Op::ServiceDel(k) => json!({ "op": "service_del", "key": key(k) }),
            Op::BackendAdd(k, (addr, port)) => {
                json!({ "op": "backend_add", "service": key(k), "backend": { "addr": addr, "port": port } })
            }
            Op::BackendDel(k, (addr, port)) => {
                json!({ "op": "backend_del", "service": key(k), "addr": addr, "port": port })
            }
            Op::LaddrAdd(k, addr) => json!({ "op": "laddr_add", "service": key(k), "addr": addr }),
            Op::LaddrDel(k, addr) => json!({ "op": "laddr_del", "service": key(k), "addr": addr }),
            Op::SnatAdd(source, port, addr) => {
                json!({ "op": "snat_add", "rule": { "source": source, "out_port": port, "addresses": [addr] } })
            }
            Op::SnatDel(source, port) => json!({ "op": "snat_del", "source": source, "out_port": port }),
        })
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn op() -> impl Strategy<Value = Op> {
    let prefix = |s: &str| -> Prefix { s.parse().unwrap() };
    let ports = prop::sample::select(vec!["dp0", "dp1", "dp9"]).prop_map(String::from);
    let addrs = prop::sample::select(vec![
        prefix("192.0.2.1/24"),
        prefix("192.0.2.2/24"),
        prefix("198.51.100.1/24"),
        prefix("203.0.113.1/24"),
        prefix("2001:db8:1::1/64"),
    ]);
    let routes =
        prop::sample::select(vec![prefix("203.0.113.0/24"), prefix("203.0.113.0/25"), prefix("2001:db8:5::/48")]);
    let vias = prop::sample::select(vec![ip("198.51.100.254"), ip("192.0.2.254"), ip("2001:db8:1::fe")]);
    let keys = prop::sample::select(vec![(ip("192.0.2.100"), 80), (ip("192.0.2.100"), 443), (ip("192.0.2.101"), 80)])
        .prop_map(|(vip, port)| ServiceKey { protocol: crate::config::Protocol::Tcp, vip, port });
    let modes = prop::sample::select(vec!["nat", "fullnat", "dr"]);
    let laddrs = prop::sample::select(vec![ip("192.0.2.60"), ip("192.0.2.61"), ip("192.0.2.62"), ip("192.0.2.50")]);
    let backends =
        prop::sample::select(vec![(ip("192.0.2.11"), 80), (ip("198.51.100.10"), 80), (ip("198.51.100.11"), 8080)]);
    let sources = prop::sample::select(vec![prefix("198.51.100.0/24"), prefix("203.0.113.0/24")]);
    prop_oneof![
        (ports.clone(), addrs.clone()).prop_map(|(p, a)| Op::AddrAdd(p, a)),
        (ports.clone(), addrs).prop_map(|(p, a)| Op::AddrDel(p, a)),
        (routes.clone(), vias).prop_map(|(r, v)| Op::RouteAdd(r, v)),
        routes.prop_map(Op::RouteDel),
        (keys.clone(), modes, prop::collection::vec(laddrs.clone(), 0..2)).prop_map(|(k, m, l)| Op::ServiceAdd(
            k,
            m,
            if m == "fullnat" { l } else { Vec::new() }
        )),
        keys.clone().prop_map(Op::ServiceDel),
        (keys.clone(), backends.clone()).prop_map(|(k, b)| Op::BackendAdd(k, b)),
        (keys.clone(), backends).prop_map(|(k, b)| Op::BackendDel(k, b)),
        (keys.clone(), laddrs.clone()).prop_map(|(k, a)| Op::LaddrAdd(k, a)),
        (keys, laddrs.clone()).prop_map(|(k, a)| Op::LaddrDel(k, a)),
        (sources.clone(), ports.clone(), laddrs).prop_map(|(s, p, a)| Op::SnatAdd(s, p, a)),
        (sources, ports).prop_map(|(s, p)| Op::SnatDel(s, p)),
    ]
}

fn v4(ip: IpAddr) -> Ipv4Addr {
    match ip {
        IpAddr::V4(a) => a,
        IpAddr::V6(_) => panic!("services here are IPv4"),
    }
}

/// The published snapshot holds exactly the model's addresses, services and SNAT rules.
fn check_published(snap: &Snapshot, model: &Model) {
    let id = |name: &str| ports().iter().find(|p| p.name == name).map(|p| p.id).unwrap();
    let addrs: Vec<LocalAddr> = model.addresses.iter().map(|(p, a)| LocalAddr { port: id(p), prefix: *a }).collect();
    assert_eq!(snap.addresses(), addrs.as_slice());
    for vip in ["192.0.2.100", "192.0.2.101"] {
        for port in [80, 443] {
            let key = ServiceKey { protocol: crate::config::Protocol::Tcp, vip: ip(vip), port };
            let want = model.services.iter().find(|s| s.0 == key);
            let got = snap.services.lookup(v4(ip(vip)), port, IpProtocol::TCP);
            assert_eq!(got.is_some(), want.is_some(), "{key}");
            if let (Some(got), Some(want)) = (got, want) {
                let backends: Vec<(IpAddr, u16)> = got.backends.iter().map(|b| (IpAddr::V4(b.addr), b.port)).collect();
                assert_eq!(backends, want.1, "{key}");
                let laddrs: Vec<IpAddr> = got.laddrs.iter().map(|l| IpAddr::V4(l.addr)).collect();
                assert_eq!(laddrs, want.2, "{key}");
            }
        }
    }
    let snat: Vec<(Ipv4Addr, u8, u16)> =
        snap.services.snat.iter().map(|r| (r.prefix, r.prefix_len, r.out_port)).collect();
    let want: Vec<(Ipv4Addr, u8, u16)> =
        model.snat.iter().map(|(s, p, _)| (v4(s.network().addr()), s.len(), id(p))).collect();
    assert_eq!(snat, want);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn random_requests_agree_with_the_model(ops in prop::collection::vec(op(), 1..40)) {
        let mut s = state_from(BASE);
        let mut model = Model::of(s.config());
        for op in &ops {
            let before = s.dump();
            let expected = model.after(op);
            match s.handle(op.request()) {
                Outcome::Done { response, publish, .. } => {
                    prop_assert_eq!(response, Response::ok(&()), "{:?}", op);
                    let next = expected.ok_or_else(|| TestCaseError::fail(format!("{op:?} accepted; the model refuses it")))?;
                    model = next;
                    let snap = publish.ok_or_else(|| TestCaseError::fail(format!("{op:?} published nothing")))?;
                    check_published(&snap, &model);
                }
                Outcome::Refused(message) => {
                    prop_assert!(!message.is_empty());
                    prop_assert_eq!(&s.dump(), &before, "{:?} refused ({}) but changed the state", op, message);
                }
                Outcome::NotMine(r) => prop_assert!(false, "{:?} not handled: {:?}", op, r),
            }
            prop_assert_eq!(&Model::of(s.config()), &model, "after {:?}", op);
        }
        // The last snapshot is the one the state would build now.
        check_published(&s.snapshot(), &model);
    }
}

/// The kernel interface of dp0 follows its addresses; dp1 has none.
#[test]
fn address_changes_on_a_port_with_a_kernel_interface_are_reported() {
    let yaml = BASE.replace(
        "  - { name: dp0, device: net_null0 }",
        "  - { name: dp0, device: net_null0, kernel: { name: fvs-dp0 } }",
    );
    let mut s = state_from(&yaml);
    let change = |addr: &str, add| KernelAddrChange {
        port: "dp0".into(),
        kernel: "fvs-dp0".into(),
        addr: addr.parse().unwrap(),
        add,
    };
    assert_eq!(s.kernel_addrs(), vec![change("192.0.2.1/24", true)], "what start-up sets");
    let kernel_of = |s: &mut ControlState, request| match s.handle(request) {
        Outcome::Done { response: Response::Ok(_), kernel, .. } => kernel,
        other => panic!("not accepted: {other:?}"),
    };
    let add = req(json!({"op": "addr_add", "port": "dp0", "addr": "2001:db8::1/64"}));
    assert_eq!(kernel_of(&mut s, add), vec![change("2001:db8::1/64", true)]);
    let add1 = req(json!({"op": "addr_add", "port": "dp1", "addr": "2001:db8:1::1/64"}));
    assert_eq!(kernel_of(&mut s, add1), vec![], "dp1 has no kernel interface");
    let del = req(json!({"op": "addr_del", "port": "dp0", "addr": "2001:db8::1/64"}));
    assert_eq!(kernel_of(&mut s, del), vec![change("2001:db8::1/64", false)]);
    // A refused change reports nothing (there is no Done).
    let dup = req(json!({"op": "addr_add", "port": "dp0", "addr": "192.0.2.1/24"}));
    assert!(matches!(s.handle(dup), Outcome::Refused(_)));
    // apply: removals first, then additions; services alone change no address.
    let applied = yaml.replace("{ port: dp0, addr: 192.0.2.1/24 }", "{ port: dp0, addr: 192.0.2.2/24 }");
    let apply = Request::Apply { source: "new.yaml".into(), yaml: applied };
    assert_eq!(kernel_of(&mut s, apply), vec![change("192.0.2.1/24", false), change("192.0.2.2/24", true)]);
    let svc = req(json!({ "op": "service_del", "key": { "protocol": "tcp", "vip": "192.0.2.100", "port": 80 } }));
    assert_eq!(kernel_of(&mut s, svc), vec![]);
}

/// Issue 17: the global deny list and a service's lists change with `fvs apply`; the workers'
/// guard follows, `acl show` counts per rule and keeps the counts while the rules stay.
#[test]
fn access_lists_apply_publish_and_show() {
    let mut s = state_from(BASE);
    let with_lists = BASE
        .replace("connections: { max_laddrs: 2 }", "connections: { max_laddrs: 2 }\ndeny: [ 203.0.113.0/24 ]")
        .replace(
            "mode: dr, backends",
            "mode: dr, allow: [ 198.51.100.0/24 ], limits: { source_conns_per_s: 10 }, backends",
        );
    let apply = |yaml: &str| req(json!({ "op": "apply", "source": "acl.yaml", "yaml": yaml }));
    let snap = accept(&mut s, apply(&with_lists)).expect("published");
    let guard = &snap.services.guard;
    assert_eq!(guard.deny.lookup(Ipv4Addr::new(203, 0, 113, 9)), Some(0));
    let dr_svc = snap.services.lookup(Ipv4Addr::new(192, 0, 2, 100), 80, IpProtocol::TCP).unwrap();
    let g = guard.service(dr_svc.slot, dr_svc.gen).expect("the dr service's settings");
    assert_eq!((g.allow_miss_rule, g.source_conns_per_s), (2, 10));
    guard.counters.hit(0, 0);
    guard.counters.hit(2, 0);
    let show = |s: &mut ControlState| match s.handle(Request::AclShow) {
        Outcome::Done { response, publish: None, .. } => response.into_data::<Vec<crate::acl::AclInfo>>().unwrap(),
        other => panic!("{other:?}"),
    };
    let drops: Vec<u64> = show(&mut s).iter().map(|r| r.drops).collect();
    assert_eq!(drops, [1, 0, 1]);
    // Another change that keeps the rules keeps their counts.
    let more = with_lists.replace("{ addr: 192.0.2.11, port: 80 }", "{ addr: 192.0.2.11, port: 80, max_conns: 5 }");
    accept(&mut s, apply(&more)).expect("published");
    assert_eq!(show(&mut s).iter().map(|r| r.drops).collect::<Vec<_>>(), [1, 0, 1]);
    // An IPv6 entry is refused, naming where.
    let v6 = with_lists.replace("deny: [ 203.0.113.0/24 ]", "deny: [ 2001:db8::/32 ]");
    assert_refused(&mut s, apply(&v6), "deny[0]: 2001:db8::/32: IPv6 prefixes are not supported yet");
}
