//! The standard snapshot of the pipeline tests (two ports, addresses, a static route) and
//! the builders of its load-balancing services.

use std::net::Ipv4Addr;
use std::sync::Arc;

use super::frames::{ip4, OUR_MAC, OUR_MAC1};
use crate::conn::Timeouts;
use crate::l3::{Route, RouteOrigin};
use crate::sched::{Candidate, SchedKind};
use crate::service::{Backend, BackendSlot, BackendState, FwdMode, Laddr, Service, Services, Tunnel};
use crate::snapshot::{LocalAddr, PortL3, Snapshot};
use crate::wire::IpProtocol;

/// The address of the service `service` builds.
pub const VIP: &str = "192.0.2.100";

/// dp0 = 192.0.2.1/24 + 2001:db8:1::1/64; dp1 = 198.51.100.1/24; 203.0.113.0/24 via 192.0.2.2.
pub fn snapshot() -> Snapshot {
    snapshot_with_mtus([1500, 1500])
}

/// `snapshot()` with these MTUs for dp0 and dp1.
pub fn snapshot_with_mtus(mtus: [u16; 2]) -> Snapshot {
    let port = |name: &str, mac, mtu| PortL3 { name: name.into(), mac, mtu, kernel: None };
    let la = |p, s: &str| LocalAddr { port: p, prefix: s.parse().unwrap() };
    Snapshot::build(
        vec![(0, port("dp0", OUR_MAC, mtus[0])), (1, port("dp1", OUR_MAC1, mtus[1]))],
        vec![la(0, "192.0.2.1/24"), la(0, "2001:db8:1::1/64"), la(1, "198.51.100.1/24")],
        vec![Route {
            prefix: "203.0.113.0/24".parse().unwrap(),
            via: Some("192.0.2.2".parse().unwrap()),
            port: 0,
            origin: RouteOrigin::Static,
        }],
    )
}

/// Backend `n` (198.51.100.10+n, port 8080) in backend slot `slot`.
pub fn backend(n: u8, slot: u16) -> Backend {
    Backend {
        addr: Ipv4Addr::new(198, 51, 100, 10 + n),
        port: 8080,
        weight: 1,
        state: BackendState::Active,
        slot,
        gen: 100 + u32::from(slot),
    }
}

/// What `service` builds: one service on VIP:80.
pub struct Spec {
    pub proto: IpProtocol,
    pub mode: FwdMode,
    pub tunnel: Tunnel,
    pub persistence_ms: u32,
    pub reset: bool,
    pub backends: Vec<Backend>,
}

/// The service `spec` describes, in service slot 0 on VIP:80 (FullNAT with local address
/// 198.51.100.1).
pub fn service(spec: &Spec) -> Service {
    let laddrs = match spec.mode {
        FwdMode::FullNat => vec![Laddr { addr: ip4("198.51.100.1"), slot: 0, gen: 1 }],
        FwdMode::Nat | FwdMode::Dr | FwdMode::Tun | FwdMode::Nat64 => vec![],
    };
    Service {
        slot: 0,
        gen: 1,
        vip: ip4(VIP),
        port: 80,
        proto: spec.proto,
        sched: SchedKind::Rr,
        mode: spec.mode,
        tunnel: spec.tunnel,
        persistence_ms: spec.persistence_ms,
        reset_on_removal: spec.reset,
        reset_when_all_down: false,
        pickup: false,
        syn_proxy: crate::service::SynProxy::Off,
        client_address: Default::default(),
        candidates: spec
            .backends
            .iter()
            .map(|b| Candidate { weight: b.weight, schedulable: b.state == BackendState::Active })
            .collect(),
        backends: spec.backends.clone(),
        table: None,
        laddrs,
    }
}

/// `spec`'s service with its backend slots live, and `removed` (slot, gen, reset) dead.
pub fn services(spec: &Spec, removed: &[(u16, u32, bool)]) -> Arc<Services> {
    let mut slots = vec![BackendSlot::default(); 16];
    for b in &spec.backends {
        slots[usize::from(b.slot)] = BackendSlot { gen: b.gen, live: true, reset: false, tunnel: spec.tunnel };
    }
    for &(slot, gen, reset) in removed {
        slots[usize::from(slot)] = BackendSlot { gen, live: false, reset, ..Default::default() };
    }
    let timeouts = Timeouts { udp_ms: 5_000, established_ms: 60_000, ..Timeouts::default() };
    Arc::new(Services::new(vec![service(spec)], slots, timeouts))
}
