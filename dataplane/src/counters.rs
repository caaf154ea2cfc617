//! Per-core counters: written by one worker, read by the control plane.
//!
//! A counter is an `AtomicU64` updated with a relaxed load and store, never a read-modify-
//! write: its core is the only writer, so nothing is lost, and on x86 it compiles to plain
//! moves. Each core's block is cache-line aligned so cores never share a line.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    #[inline(always)]
    pub fn add(&self, n: u64) {
        self.0.store(self.0.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }
    #[inline(always)]
    pub fn inc(&self) {
        self.add(1)
    }
    /// For gauges and resets (still only ever written by the owning core).
    #[inline(always)]
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

macro_rules! enum_with_names {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)* }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum $name { $($(#[$vmeta])* $variant,)* }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant,)*];
            pub const COUNT: usize = Self::ALL.len();
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)* }
            }
        }
    };
}

enum_with_names! {
    /// Why a frame was dropped. Each has its own counter, named `drop_<name>`.
    pub enum DropReason {
        /// Shorter than its headers claim, or a bad version or length field.
        MalformedEthernet = "malformed_ethernet",
        MalformedArp = "malformed_arp",
        MalformedIpv4 = "malformed_ipv4",
        MalformedIpv6 = "malformed_ipv6",
        MalformedIcmp = "malformed_icmp",
        BadIpv4Checksum = "bad_ipv4_checksum",
        BadIcmpChecksum = "bad_icmp_checksum",
        /// Received on a port the snapshot does not know (should not happen).
        UnknownPort = "unknown_port",
        /// Unicast to another MAC (the port is promiscuous).
        OtherMac = "other_mac",
        UnsupportedEthertype = "unsupported_ethertype",
        /// ARP for an address this box does not own on that port.
        ArpNotForUs = "arp_not_for_us",
        /// Neighbour solicitation for an address this box does not own on that port.
        NdNotForUs = "nd_not_for_us",
        /// ARP whose sender MAC, or neighbour discovery whose link-layer address option, is
        /// one no host has (all zero, broadcast or multicast): not learned, not answered.
        BadSenderMac = "bad_sender_mac",
        /// A source address no reply can go to (unspecified, broadcast, multicast).
        BadSource = "bad_source",
        /// IP destination is not an address of this box (no forwarding for it).
        IpNotForUs = "ip_not_for_us",
        /// To one of our addresses, but nothing here serves that protocol.
        UnsupportedProtocol = "unsupported_protocol",
        /// ICMP to us that is not an echo request (replies, errors, ...).
        IcmpNotEcho = "icmp_not_echo",
        /// Fragments are not reassembled.
        Fragment = "fragment",
        /// Neighbour discovery with a hop limit other than 255 (RFC 4861 section 7.1).
        NdBadHopLimit = "nd_bad_hop_limit",
        NoRoute = "no_route",
        /// The packets waiting for this neighbour already fill its queue.
        NeighQueueFull = "neigh_queue_full",
        /// A neighbour did not answer `max_probes` requests: its queued packets are dropped.
        NeighUnresolved = "neigh_unresolved",
        NeighTableFull = "neigh_table_full",
        /// No mbuf for a generated frame (ARP request, neighbour solicitation).
        NoBuffer = "no_buffer",
        /// The NIC's tx queue did not take it.
        TxFull = "tx_full",
        /// TCP/UDP to a VIP or a connection whose header is cut short.
        MalformedL4 = "malformed_l4",
        /// To a VIP, on a port or protocol no service of that VIP uses.
        NoService = "no_service",
        /// TCP to a service that is neither a SYN nor part of a tracked connection.
        NoConnection = "no_connection",
        /// A new connection found no schedulable backend.
        NoBackend = "no_backend",
        /// The connection table is full: new connections are refused, tracked ones go on.
        ConnTableFull = "conn_table_full",
        /// A SYN found this core's half-open connections at `connections.half_open_capacity`
        /// (a SYN flood, or backends that do not answer): refused, the table keeps room for
        /// everything else.
        HalfOpenFull = "half_open_full",
        /// A new connection from a source in the global deny list or its service's (counted
        /// per rule too: `fvs acl show`).
        AclDenied = "acl_denied",
        /// An ACK to a SYN-proxied service that is no connection's and carries no valid SYN
        /// cookie (a forged or stale one, or a flood of ACKs).
        SynCookieInvalid = "syn_cookie_invalid",
        /// A client's packet of a SYN-proxied connection before its backend completed the
        /// handshake with us (the client sends it again).
        SynProxyPending = "syn_proxy_pending",
        /// A new connection to a service with a `client_address` on a core that keeps no
        /// client-address state yet (it has not synced the snapshot that added the service).
        ClientAddrUnavailable = "client_addr_unavailable",
        /// A new connection from a source outside its service's allow list.
        AclNotAllowed = "acl_not_allowed",
        /// Over its service's `limits.conns_per_s` (this core's share).
        ServiceRateLimited = "service_rate_limited",
        /// Over its service's `limits.source_conns_per_s` for its client address.
        SourceRateLimited = "source_rate_limited",
        /// Every usable backend of the service holds its `max_conns` (this core's share).
        BackendsFull = "backends_full",
        /// The new connection's reply tuple is already tracked (two VIPs NATing one client
        /// port to the same backend).
        ConnKeyExists = "conn_key_exists",
        /// No FullNAT local port left on this core.
        LocalPortsExhausted = "local_ports_exhausted",
        /// A forwarded packet's TTL ran out.
        TtlExpired = "ttl_expired",
        /// A packet of a connection whose backend was removed with `reset` (a RST answers TCP).
        BackendRemoved = "backend_removed",
        /// TUN: the encapsulated packet would not fit the egress MTU (with policy `icmp` and
        /// DF set, the client was told the size that fits, unless rate-limited).
        TunnelTooBig = "tunnel_too_big",
        /// Longer than the egress port's MTU (ferrovs does not fragment): a forwarded packet
        /// (NAT, FullNAT, DR, SNAT) whose sender was told the size that fits when it had DF
        /// set (unless rate-limited), or a packet of the box's own (echo reply, translated
        /// ICMP error).
        TooBig = "too_big",
        /// DR: the backend's route is not a directly connected network (routes changed since
        /// the service was accepted).
        DrBackendNotConnected = "dr_backend_not_connected",
        /// Nothing to put as a generated packet's source: the egress port has no IPv4 address.
        NoSourceAddress = "no_source_address",
        /// Encapsulation needs more headroom than the buffer has.
        NoHeadroom = "no_headroom",
        /// The ring to the core that owns the packet's connection was full.
        HandoffFull = "handoff_full",
        /// For the port's kernel interface, over this core's rate for it (`kernel.rate_pps`).
        KernelRateLimited = "kernel_rate_limited",
    }
}

enum_with_names! {
    /// Events worth counting that are not drops.
    pub enum Event {
        RxPackets = "rx_packets",
        RxBytes = "rx_bytes",
        TxPackets = "tx_packets",
        TxBytes = "tx_bytes",
        ArpRequestsIn = "arp_requests_in",
        ArpRepliesIn = "arp_replies_in",
        ArpRepliesOut = "arp_replies_out",
        ArpRequestsOut = "arp_requests_out",
        NdSolicitsIn = "nd_solicits_in",
        NdAdvertsIn = "nd_adverts_in",
        NdAdvertsOut = "nd_adverts_out",
        NdSolicitsOut = "nd_solicits_out",
        IcmpEchoRequestsIn = "icmp_echo_requests_in",
        IcmpEchoRepliesOut = "icmp_echo_replies_out",
        /// Packets held while their next hop resolved, then sent.
        NeighQueuedSent = "neigh_queued_sent",
        NeighLearned = "neigh_learned",
        NeighExpired = "neigh_expired",
        /// Load balancing: connections made, ended by timeout, replaced by a new SYN on the
        /// same tuple (connection reuse), reset because their backend was removed.
        ConnsCreated = "conns_created",
        ConnsExpired = "conns_expired",
        ConnsReused = "conns_reused",
        ConnsReset = "conns_reset",
        /// Of the connections made, those opened mid-flow by a packet other than a SYN (DR/TUN
        /// services with `pickup`: a connection another balancer began).
        ConnsPickedUp = "conns_picked_up",
        /// SYN proxy: SYN-ACKs with a cookie sent for SYNs to proxied services (no state kept),
        /// connections opened by a valid cookie, and backend handshakes completed by us.
        SynCookiesSent = "syn_cookies_sent",
        SynCookiesValid = "syn_cookies_valid",
        SynProxyBackendHandshakes = "syn_proxy_backend_handshakes",
        /// `syn_proxy: auto`: 1 while the core answers the SYNs of auto services with cookies
        /// (a gauge: summed over cores, how many are engaged), and how many times it engaged.
        SynProxyAutoEngaged = "syn_proxy_auto_engaged",
        SynProxyAutoEngagements = "syn_proxy_auto_engagements",
        /// Half-open or finished (TIME_WAIT, CLOSE) TCP connections or UDP flows removed,
        /// oldest first, to make room in a full table for a new connection (established TCP
        /// connections are never evicted).
        ConnsEvicted = "conns_evicted",
        /// New connections the scheduler's choice could not take (at its `max_conns`) that
        /// went to the next backend with room.
        BackendFullSkips = "backend_full_skips",
        /// New connections sent to a client's remembered backend, and records evicted early.
        PersistenceHits = "persistence_hits",
        PersistenceEvictions = "persistence_evictions",
        /// FullNAT/SNAT TCP local ports handed out within `connections.lport_quiet_s` of their
        /// release, because no quiet port was left (more local addresses would avoid it).
        LportReusedEarly = "lport_reused_early",
        /// Client address to FullNAT backends: segments toward a backend that carried the
        /// PROXY header or the TOA option; of those, PROXY headers sent alone (the client's
        /// segment would not fit with it: its payload comes again); and segments that went
        /// without TOA for want of option space or MTU.
        ClientAddrSent = "client_addr_sent",
        ClientAddrHeaderAlone = "client_addr_header_alone",
        ClientAddrToaNoRoom = "client_addr_toa_no_room",
        /// Packets forwarded client to backend (in) and backend to client (out).
        LbInPackets = "lb_in_packets",
        LbOutPackets = "lb_out_packets",
        /// ICMP errors about a tracked connection, translated and forwarded.
        IcmpErrorsTranslated = "icmp_errors_translated",
        TcpResetsSent = "tcp_resets_sent",
        /// ICMP fragmentation-needed sent to the sender of a packet that did not fit the
        /// egress MTU (once encapsulated, for TUN), and those the per-core rate limit held
        /// back (the packet is dropped and counted either way).
        IcmpFragNeededSent = "icmp_frag_needed_sent",
        IcmpFragNeededRateLimited = "icmp_frag_needed_rate_limited",
        /// ICMPv6 packet too big sent to the sender of an IPv6 packet that did not fit the
        /// egress MTU (the rate limit is the one above, shared).
        Icmp6PacketTooBigSent = "icmp6_packet_too_big_sent",
        /// SNAT: packets of outbound connections, leaving (out) and replies coming back (in).
        SnatOutPackets = "snat_out_packets",
        SnatInPackets = "snat_in_packets",
        /// Packets this core received for a connection another core owns, passed to that core
        /// over a ring (NAT; FullNAT/SNAT replies on a port without flow rules or RSS
        /// steering), and packets it took from other cores' rings.
        HandedOff = "handed_off",
        HandedIn = "handed_in",
        /// Frames passed to a port's kernel interface (the exception path), and frames the
        /// kernel sent that went out of the port.
        ToKernel = "to_kernel",
        FromKernel = "from_kernel",
        /// Burst-boundary snapshot switches.
        SnapshotSwitches = "snapshot_switches",
        /// Poll-loop iterations, and those that received nothing (idle share).
        Polls = "polls",
        IdlePolls = "idle_polls",
    }
}

/// A NIC's own counters for one port (what `rte_eth_stats_get` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct PortStats {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// Dropped by the NIC: no free rx descriptor (the worker did not keep up).
    pub rx_missed: u64,
    pub rx_errors: u64,
    pub tx_errors: u64,
    /// Dropped by the NIC: no mbuf to receive into.
    pub rx_nombuf: u64,
}

/// Port ids below this have per-port exception-path counters and a kernel interface
/// (DPDK's own limit, RTE_MAX_ETHPORTS, is 32 in its default build).
pub const KERNEL_PORT_IDS: usize = 64;

/// One core's exception-path counters for one port: frames to its kernel interface, frames
/// from it, and frames over the rate.
#[derive(Default)]
pub struct KernelCounters {
    pub to_kernel: Counter,
    pub from_kernel: Counter,
    pub rate_limited: Counter,
}

/// One core's counters.
#[repr(align(64))]
pub struct CoreCounters {
    events: [Counter; Event::COUNT],
    drops: [Counter; DropReason::COUNT],
    kernel: [KernelCounters; KERNEL_PORT_IDS],
}

impl Default for CoreCounters {
    fn default() -> Self {
        CoreCounters {
            events: std::array::from_fn(|_| Counter::default()),
            drops: std::array::from_fn(|_| Counter::default()),
            kernel: std::array::from_fn(|_| KernelCounters::default()),
        }
    }
}

impl CoreCounters {
    #[inline(always)]
    pub fn event(&self, e: Event) -> &Counter {
        &self.events[e as usize]
    }
    #[inline(always)]
    pub fn drop_reason(&self, r: DropReason) -> &Counter {
        &self.drops[r as usize]
    }
    /// The exception-path counters of port `port` (None past [`KERNEL_PORT_IDS`]).
    #[inline(always)]
    pub fn kernel(&self, port: u16) -> Option<&KernelCounters> {
        self.kernel.get(usize::from(port))
    }
    /// Sum of all drop counters.
    pub fn drops_total(&self) -> u64 {
        self.drops.iter().map(Counter::get).sum()
    }
    /// Every counter as (name, value): events by name, drops as `drop_<reason>`.
    pub fn snapshot(&self) -> Vec<(String, u64)> {
        let mut out: Vec<(String, u64)> =
            Event::ALL.iter().map(|e| (e.as_str().to_string(), self.event(*e).get())).collect();
        out.extend(DropReason::ALL.iter().map(|r| (format!("drop_{}", r.as_str()), self.drop_reason(*r).get())));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_count_and_name() {
        let c = CoreCounters::default();
        c.event(Event::RxPackets).add(3);
        c.drop_reason(DropReason::NoRoute).inc();
        c.drop_reason(DropReason::NoRoute).inc();
        let snap = c.snapshot();
        assert!(snap.contains(&("rx_packets".to_string(), 3)));
        assert!(snap.contains(&("drop_no_route".to_string(), 2)));
        assert_eq!(c.drops_total(), 2);
        assert_eq!(snap.len(), Event::COUNT + DropReason::COUNT);
    }
}
