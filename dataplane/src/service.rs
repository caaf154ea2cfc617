//! Virtual services as a worker reads them: built by the control plane into the snapshot,
//! never changed after. Backends, services and local addresses carry a *slot* (an index into
//! per-core arrays: active-connection counts, scheduler state, port pools, counters) and a
//! *generation*: a slot is reused for something else only with a new generation, so per-core
//! state and connections made for the old occupant are told apart without any message.

use std::net::Ipv4Addr;
use std::sync::Arc;

use crate::conn::Timeouts;
use crate::sched::{Candidate, HashTable, SchedKind};

/// How a service forwards (see the config's `mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FwdMode {
    Nat,
    FullNat,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendState {
    Active,
    /// No new connections; existing ones and persistent clients stay.
    Draining,
    /// No new connections; persistence to it is ignored.
    Inhibited,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backend {
    pub addr: Ipv4Addr,
    pub port: u16,
    pub weight: u32,
    pub state: BackendState,
    pub slot: u16,
    pub gen: u32,
}

/// A FullNAT source address of a service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Laddr {
    pub addr: Ipv4Addr,
    pub slot: u16,
    pub gen: u32,
}

#[derive(Clone, Debug)]
pub struct Service {
    pub slot: u16,
    pub gen: u32,
    pub vip: Ipv4Addr,
    pub port: u16,
    /// IP protocol number (6 or 17).
    pub proto: u8,
    pub sched: SchedKind,
    pub mode: FwdMode,
    /// 0: no persistence.
    pub persistence_ms: u32,
    /// Connections of a backend removed from this service are reset rather than drained.
    pub reset_on_removal: bool,
    pub backends: Vec<Backend>,
    /// The scheduler's view of `backends`, same order.
    pub candidates: Vec<Candidate>,
    /// Built for `sh` and `mh` only; shared between snapshots while the backends stay.
    pub table: Option<Arc<HashTable>>,
    pub laddrs: Vec<Laddr>,
}

/// What a backend slot holds now. Connections remember (slot, gen) of their backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct BackendSlot {
    pub gen: u32,
    /// False once the backend was removed (until the slot is reused).
    pub live: bool,
    /// For a removed backend: its connections are reset at their next packet.
    pub reset: bool,
}

/// The fixed sizes of per-core load-balancing state (set at start; changing them needs a
/// restart because every core allocates its arrays once).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LbLimits {
    pub conn_capacity: u32,
    pub persistence_capacity: u32,
    pub max_backends: u16,
    pub max_services: u16,
    pub max_laddrs: u16,
    pub lport_min: u16,
    pub lport_max: u16,
}

impl Default for LbLimits {
    fn default() -> Self {
        LbLimits {
            conn_capacity: 1 << 16,
            persistence_capacity: 1 << 12,
            max_backends: 256,
            max_services: 256,
            max_laddrs: 16,
            lport_min: 1024,
            lport_max: 65535,
        }
    }
}

/// All services of a snapshot, indexed for the per-packet lookup.
#[derive(Clone, Debug, Default)]
pub struct Services {
    pub list: Vec<Service>,
    /// (vip, port, proto) packed, sorted, with the index into `list`.
    index: Vec<(u64, u16)>,
    /// Sorted VIPs: a packet to a VIP on a port no service uses is dropped as such.
    vips: Vec<Ipv4Addr>,
    /// By backend slot.
    pub backend_slots: Vec<BackendSlot>,
    pub timeouts: Timeouts,
}

#[inline]
fn pack(vip: Ipv4Addr, port: u16, proto: u8) -> u64 {
    (u64::from(u32::from(vip)) << 24) | (u64::from(port) << 8) | u64::from(proto)
}

impl Services {
    pub fn new(list: Vec<Service>, backend_slots: Vec<BackendSlot>, timeouts: Timeouts) -> Services {
        let mut index: Vec<(u64, u16)> =
            list.iter().enumerate().map(|(i, s)| (pack(s.vip, s.port, s.proto), i as u16)).collect();
        index.sort_unstable();
        let mut vips: Vec<Ipv4Addr> = list.iter().map(|s| s.vip).collect();
        vips.sort_unstable();
        vips.dedup();
        Services { list, index, vips, backend_slots, timeouts }
    }

    #[inline]
    pub fn lookup(&self, vip: Ipv4Addr, port: u16, proto: u8) -> Option<&Service> {
        let key = pack(vip, port, proto);
        let i = self.index.binary_search_by_key(&key, |e| e.0).ok()?;
        self.list.get(usize::from(self.index[i].1))
    }

    #[inline]
    pub fn is_vip(&self, addr: Ipv4Addr) -> bool {
        self.vips.binary_search(&addr).is_ok()
    }

    /// What the backend slot holds now (a default, not-live record for an unknown slot).
    #[inline]
    pub fn backend_slot(&self, slot: u16) -> BackendSlot {
        self.backend_slots.get(usize::from(slot)).copied().unwrap_or_default()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }
}
