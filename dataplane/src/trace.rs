//! `fvs trace`: what the pipeline decided for the next packets matching a filter.
//!
//! The control thread arms a trace on every worker through its mailbox ([`TraceArm`]: an id,
//! a [`TraceFilter`], how many packets at most, and the sending end of a bounded channel of
//! its own for that core). While armed, the core handles frames one at a time (no batching);
//! for each frame the filter matches it notes what it knew before (the packet, its
//! connection, its counters), runs the frame through the very same pipeline with a tx sink
//! that notes what leaves, and notes what changed: the connection (found, created, reused,
//! ended, its state), the counters that moved (events, drop reasons) and the frames sent
//! (port, MACs, headers as rewritten). The result is a fixed-size `Copy` [`TraceRecord`],
//! pushed with `try_send` into the core's bounded channel (an array allocated by the
//! control thread; no allocation and no lock in the worker, as the control thread only ever
//! polls it). [`TraceRecord::describe`] turns a record into text, on the control thread.
//!
//! While no trace is armed the data path pays one load and branch per burst: whether
//! `CoreCtx::trace` holds anything.

use std::net::{IpAddr, Ipv4Addr};

use crossbeam_channel::Sender;

use crate::conn::{Conn, ConnFlags, ConnKey, Dir};
use crate::counters::{CoreCounters, DropReason, Event};
use crate::net::MacAddr;
use crate::sched::SchedKind;
use crate::service::FwdMode;
use crate::snapshot::Snapshot;
use crate::wire::{IpProtocol, TcpFlags};

/// Frames sent while one traced packet was handled that a record keeps (more are counted).
pub const MAX_OUTPUTS: usize = 4;
/// Counted events and drop reasons a record keeps.
pub const MAX_EVENTS: usize = 8;
pub const MAX_DROPS: usize = 4;

const ETH_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;

/// Which packets a trace follows: every given field must match (none given: every frame).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceFilter {
    /// The IPv4 source or destination (of the outer header).
    pub addr: Option<Ipv4Addr>,
    /// The TCP/UDP source or destination port.
    pub port: Option<u16>,
    /// The IP protocol.
    pub proto: Option<IpProtocol>,
}

impl TraceFilter {
    /// Whether the frame (Ethernet on) is one to trace. A frame whose headers do not go as
    /// far as a field the filter names does not match.
    pub fn matches(&self, frame: &[u8]) -> bool {
        if *self == TraceFilter::default() {
            return true;
        }
        let Some(ip) = FrameView::of(frame).ip else { return false };
        self.addr.is_none_or(|a| ip.src == a || ip.dst == a)
            && self.proto.is_none_or(|p| ip.proto == p.0)
            && self.port.is_none_or(|p| ip.ports.is_some_and(|(s, d)| s == p || d == p))
    }
}

/// What a worker gets to start tracing.
#[derive(Clone, Debug)]
pub struct TraceArm {
    pub id: u64,
    pub filter: TraceFilter,
    /// Records this core sends at most; then it stops tracing by itself.
    pub max: u32,
    /// This core's channel to the control thread (bounded, polled with `try_recv` only).
    pub records: Sender<TraceRecord>,
}

/// An armed trace on one core.
pub(crate) struct Tracer {
    arm: TraceArm,
    sent: u32,
}

impl Tracer {
    pub(crate) fn new(arm: TraceArm) -> Tracer {
        Tracer { arm, sent: 0 }
    }

    pub(crate) fn id(&self) -> u64 {
        self.arm.id
    }

    #[inline]
    pub(crate) fn wants(&self, frame: &[u8]) -> bool {
        self.arm.filter.matches(frame)
    }

    /// Sends a record; returns true once this core has sent all it may (a record the
    /// channel has no room for counts too: the control thread has stopped reading).
    pub(crate) fn send(&mut self, mut record: TraceRecord) -> bool {
        record.trace = self.arm.id;
        let _ = self.arm.records.try_send(record);
        self.sent += 1;
        self.sent >= self.arm.max
    }
}

/// The headers of a frame, as far as they go; nothing is validated beyond lengths.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FrameView {
    pub len: u32,
    pub dst_mac: MacAddr,
    pub src_mac: MacAddr,
    pub ethertype: u16,
    pub ip: Option<Ipv4View>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4View {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub proto: u8,
    pub ttl: u8,
    /// TCP/UDP ports, when the header is there (and not a later fragment).
    pub ports: Option<(u16, u16)>,
    pub tcp_flags: u8,
    /// A TCP or UDP header shorter than its minimum (20, 8 bytes).
    pub l4_short: bool,
    /// IPIP: the inner packet's addresses and ports.
    pub inner: Option<InnerView>,
}

/// The packet inside an IPIP one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerView {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub ports: Option<(u16, u16)>,
}

/// IPv4 addresses, protocol and ports of an IP packet (no Ethernet header), as far as they go.
fn ipv4_view(p: &[u8]) -> Option<Ipv4View> {
    if p.len() < 20 || p[0] >> 4 != 4 {
        return None;
    }
    let ihl = usize::from(p[0] & 0xf) * 4;
    let addr = |at: usize| Ipv4Addr::new(p[at], p[at + 1], p[at + 2], p[at + 3]);
    let (proto, first_fragment) = (p[9], p[6] & 0x1f == 0 && p[7] == 0);
    let l4 = p.get(ihl..).filter(|_| ihl >= 20 && first_fragment).unwrap_or(&[]);
    let with_ports = proto == IpProtocol::TCP.0 || proto == IpProtocol::UDP.0;
    let ports =
        (with_ports && l4.len() >= 4).then(|| (u16::from_be_bytes([l4[0], l4[1]]), u16::from_be_bytes([l4[2], l4[3]])));
    let tcp_flags = if proto == IpProtocol::TCP.0 { l4.get(13).copied().unwrap_or(0) } else { 0 };
    let l4_min = if proto == IpProtocol::TCP.0 { 20 } else { 8 };
    let l4_short = with_ports && first_fragment && l4.len() < l4_min;
    let inner = if proto == IpProtocol::IPIP.0 {
        ipv4_view(l4).map(|i| InnerView { src: i.src, dst: i.dst, ports: i.ports })
    } else {
        None
    };
    Some(Ipv4View { src: addr(12), dst: addr(16), proto, ttl: p[8], ports, tcp_flags, l4_short, inner })
}

impl FrameView {
    pub fn of(frame: &[u8]) -> FrameView {
        let mut v = FrameView { len: frame.len() as u32, ..FrameView::default() };
        let Some(eth) = frame.get(..ETH_LEN) else { return v };
        v.dst_mac = MacAddr(eth[0..6].try_into().unwrap_or_default());
        v.src_mac = MacAddr(eth[6..12].try_into().unwrap_or_default());
        v.ethertype = u16::from_be_bytes([eth[12], eth[13]]);
        if v.ethertype == ETHERTYPE_IPV4 {
            v.ip = ipv4_view(&frame[ETH_LEN..]);
        }
        v
    }

    /// The connection-table key of a TCP/UDP packet.
    pub fn key(&self) -> Option<ConnKey> {
        let ip = self.ip?;
        let (sport, dport) = ip.ports?;
        Some(ConnKey { src: ip.src, dst: ip.dst, sport, dport, proto: IpProtocol(ip.proto) })
    }
}

/// What a traced packet is, before anything is decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Class {
    Arp,
    Ipv6,
    OtherEthertype,
    /// Too short for the Ethernet or IPv4 header it claims.
    Malformed,
    /// Of a tracked connection, in this direction.
    Connection(Dir),
    /// TCP/UDP to a service, no connection yet.
    ToService,
    /// To a VIP, on a port or protocol none of its services uses.
    ToVipNoService,
    /// To one of the box's addresses (interface, VIP or local address), not a service's.
    ToLocal,
    /// To an address that is not the box's: SNAT's, or no one's.
    NotLocal,
}

/// A service as a record keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServiceView {
    pub vip: Ipv4Addr,
    pub port: u16,
    pub proto: IpProtocol,
    pub sched: SchedKind,
    pub mode: FwdMode,
}

/// A frame that left while a traced packet was handled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Output {
    /// Out of a port; `next_hop`: the address its MAC was resolved for (per the routes).
    Port { port: u16, frame: FrameView, next_hop: Option<IpAddr> },
    /// To a port's kernel interface.
    Kernel { port: u16, frame: FrameView },
    /// To the core that owns its connection.
    HandOff { core: u32 },
}

/// What one core decided for one traced packet.
#[derive(Clone, Copy, Debug)]
pub struct TraceRecord {
    pub trace: u64,
    pub core: u32,
    pub now_ms: u64,
    /// Passed to this core by another that received it.
    pub handed_in: bool,
    pub rx_port: u16,
    pub packet: FrameView,
    pub class: Class,
    /// The service of a new connection's tuple or of the connection's.
    pub service: Option<ServiceView>,
    pub conn_before: Option<(Dir, Conn)>,
    pub conn_after: Option<(Dir, Conn)>,
    /// Counters that moved (but rx/tx and the loop's own), and by how much.
    pub events: [Option<(Event, u32)>; MAX_EVENTS],
    pub drops: [Option<(DropReason, u32)>; MAX_DROPS],
    pub outputs: [Option<Output>; MAX_OUTPUTS],
    /// Frames sent beyond `MAX_OUTPUTS`.
    pub more_outputs: u32,
}

/// Events that move for every frame or every loop: not decisions about the packet.
fn is_routine(e: Event) -> bool {
    matches!(
        e,
        Event::RxPackets
            | Event::RxBytes
            | Event::TxPackets
            | Event::TxBytes
            | Event::HandedIn
            | Event::SnapshotSwitches
            | Event::Polls
            | Event::IdlePolls
    )
}

/// A core's counters at one moment (on the stack: the trace path allocates nothing).
pub(crate) struct CounterValues {
    events: [u64; Event::COUNT],
    drops: [u64; DropReason::COUNT],
}

impl CounterValues {
    pub(crate) fn of(c: &CoreCounters) -> CounterValues {
        CounterValues {
            events: std::array::from_fn(|i| c.event(Event::ALL[i]).get()),
            drops: std::array::from_fn(|i| c.drop_reason(DropReason::ALL[i]).get()),
        }
    }
}

/// Records the frames a traced packet's handling sends, and passes them on.
pub(crate) struct Recorder<'a, T> {
    pub(crate) inner: &'a mut T,
    pub(crate) outputs: [Option<Output>; MAX_OUTPUTS],
    pub(crate) n: usize,
}

impl<'a, T> Recorder<'a, T> {
    pub(crate) fn new(inner: &'a mut T) -> Self {
        Recorder { inner, outputs: [None; MAX_OUTPUTS], n: 0 }
    }

    fn note(&mut self, output: Output) {
        if let Some(slot) = self.outputs.get_mut(self.n) {
            *slot = Some(output);
        }
        self.n += 1;
    }
}

impl<F: crate::pipeline::Frame, T: crate::pipeline::TxSink<F>> crate::pipeline::TxSink<F> for Recorder<'_, T> {
    fn send(&mut self, port: u16, frame: F) {
        self.note(Output::Port { port, frame: FrameView::of(frame.data()), next_hop: None });
        self.inner.send(port, frame)
    }

    fn hand_off(&mut self, core: u32, frame: F) -> Result<(), F> {
        self.inner.hand_off(core, frame)?;
        self.note(Output::HandOff { core });
        Ok(())
    }

    fn send_to_kernel(&mut self, port: u16, frame: F) {
        self.note(Output::Kernel { port, frame: FrameView::of(frame.data()) });
        self.inner.send_to_kernel(port, frame)
    }
}

/// What the record of a packet says before it is handled.
pub(crate) struct Before {
    pub(crate) packet: FrameView,
    pub(crate) rx_port: u16,
    pub(crate) conn: Option<(Dir, Conn)>,
    pub(crate) counters: CounterValues,
}

/// The record of a packet from what was known before and after it was handled.
#[allow(clippy::too_many_arguments)]
pub(crate) fn record(
    snap: &Snapshot,
    core: u32,
    now_ms: u64,
    handed_in: bool,
    before: &Before,
    conn_after: Option<(Dir, Conn)>,
    counters: &CoreCounters,
    mut outputs: [Option<Output>; MAX_OUTPUTS],
    n_outputs: usize,
) -> TraceRecord {
    let packet = before.packet;
    let mut events = [None; MAX_EVENTS];
    let moved = Event::ALL.iter().filter(|e| !is_routine(**e)).filter_map(|e| {
        let delta = counters.event(*e).get().wrapping_sub(before.counters.events[*e as usize]);
        (delta != 0).then_some((*e, delta as u32))
    });
    for (slot, e) in events.iter_mut().zip(moved) {
        *slot = Some(e);
    }
    let mut drops = [None; MAX_DROPS];
    let dropped = DropReason::ALL.iter().filter_map(|r| {
        let delta = counters.drop_reason(*r).get().wrapping_sub(before.counters.drops[*r as usize]);
        (delta != 0).then_some((*r, delta as u32))
    });
    for (slot, d) in drops.iter_mut().zip(dropped) {
        *slot = Some(d);
    }
    let conn = conn_after.or(before.conn).map(|(_, c)| c);
    // The address each frame's MAC was resolved for: the route's next hop towards its IPv4
    // destination (DR: the backend itself, the frame still being addressed to the VIP).
    for out in outputs.iter_mut().flatten() {
        if let Output::Port { frame, next_hop, .. } = out {
            let dr_backend = conn.filter(|c| c.flags.contains(ConnFlags::DR)).map(|c| c.backend);
            let towards = dr_backend.or(frame.ip.map(|ip| ip.dst));
            *next_hop = towards.and_then(|dst| {
                let dst = IpAddr::V4(dst);
                snap.routes.lookup(dst).map(|r| if dr_backend.is_some() { dst } else { r.next_hop(dst) })
            });
        }
    }
    let service = conn
        .filter(|c| !c.flags.contains(ConnFlags::SNAT))
        .and_then(|c| snap.services.lookup(c.vip, c.vport, c.proto))
        .or_else(|| packet.key().and_then(|k| snap.services.lookup(k.dst, k.dport, k.proto)))
        .map(|s| ServiceView { vip: s.vip, port: s.port, proto: s.proto, sched: s.sched, mode: s.mode });
    TraceRecord {
        trace: 0,
        core,
        now_ms,
        handed_in,
        rx_port: before.rx_port,
        packet,
        class: classify(snap, &packet, before.conn),
        service,
        conn_before: before.conn,
        conn_after,
        events,
        drops,
        outputs,
        more_outputs: n_outputs.saturating_sub(MAX_OUTPUTS) as u32,
    }
}

fn classify(snap: &Snapshot, packet: &FrameView, conn: Option<(Dir, Conn)>) -> Class {
    match packet.ethertype {
        _ if packet.len < ETH_LEN as u32 => return Class::Malformed,
        ETHERTYPE_IPV4 => {}
        ETHERTYPE_ARP => return Class::Arp,
        ETHERTYPE_IPV6 => return Class::Ipv6,
        _ => return Class::OtherEthertype,
    }
    let Some(ip) = packet.ip else { return Class::Malformed };
    if let Some((dir, _)) = conn {
        return Class::Connection(dir);
    }
    if let Some(k) = packet.key() {
        if snap.services.lookup(k.dst, k.dport, k.proto).is_some() {
            return Class::ToService;
        }
    }
    if snap.services.is_vip(ip.dst) && !snap.is_interface_addr(IpAddr::V4(ip.dst)) {
        return Class::ToVipNoService;
    }
    if snap.is_local(IpAddr::V4(ip.dst)) {
        Class::ToLocal
    } else {
        Class::NotLocal
    }
}

/// A record in words: a line for the packet, then (step, detail) pairs, then the verdict.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceText {
    pub packet: String,
    pub steps: Vec<(&'static str, String)>,
    pub verdict: String,
}

fn proto_name(p: u8) -> String {
    match IpProtocol(p) {
        IpProtocol::TCP => "tcp".into(),
        IpProtocol::UDP => "udp".into(),
        IpProtocol::ICMP => "icmp".into(),
        IpProtocol::IPIP => "ipip".into(),
        _ => format!("proto {p}"),
    }
}

fn mode_name(m: FwdMode) -> &'static str {
    match m {
        FwdMode::Nat => "nat",
        FwdMode::FullNat => "fullnat",
        FwdMode::Dr => "dr",
        FwdMode::Tun => "tun",
        FwdMode::Nat64 => "nat64",
    }
}

fn tcp_flags_text(flags: u8) -> String {
    let f = TcpFlags::from_bits_retain(flags);
    let names =
        [(TcpFlags::SYN, 'S'), (TcpFlags::FIN, 'F'), (TcpFlags::RST, 'R'), (TcpFlags::PSH, 'P'), (TcpFlags::ACK, '.')];
    names.iter().filter(|(b, _)| f.contains(*b)).map(|(_, c)| *c).collect()
}

/// `tcp 192.0.2.2:40000 > 192.0.2.100:80 [S]`, as far as the headers go.
fn ip_text(ip: &Ipv4View) -> String {
    let mut s = match ip.ports {
        Some((sp, dp)) => format!("{} {}:{sp} > {}:{dp}", proto_name(ip.proto), ip.src, ip.dst),
        None => format!("{} {} > {}", proto_name(ip.proto), ip.src, ip.dst),
    };
    if ip.l4_short {
        s.push_str(" (header cut short)");
    } else if ip.proto == IpProtocol::TCP.0 && ip.ports.is_some() {
        s.push_str(&format!(" [{}]", tcp_flags_text(ip.tcp_flags)));
    }
    if let Some(InnerView { src, dst, ports }) = ip.inner {
        match ports {
            Some((sp, dp)) => s.push_str(&format!(" inside: {src}:{sp} > {dst}:{dp}")),
            None => s.push_str(&format!(" inside: {src} > {dst}")),
        }
    }
    s
}

fn frame_text(f: &FrameView) -> String {
    match (f.ethertype, f.ip) {
        (_, Some(ip)) => ip_text(&ip),
        (ETHERTYPE_IPV4, None) => "ipv4, headers cut short".into(),
        (ETHERTYPE_ARP, _) => "arp".into(),
        (ETHERTYPE_IPV6, _) => "ipv6".into(),
        (t, _) => format!("ethertype 0x{t:04x}"),
    }
}

fn conn_text(c: &Conn) -> String {
    let mode = if c.flags.contains(ConnFlags::SNAT) {
        "snat"
    } else if c.flags.contains(ConnFlags::FULLNAT) {
        "fullnat"
    } else if c.flags.contains(ConnFlags::DR) {
        "dr"
    } else if c.flags.contains(ConnFlags::TUN) {
        "tun"
    } else {
        "nat"
    };
    let local =
        if c.flags.contains(ConnFlags::FULLNAT) { format!(" local {}:{}", c.laddr, c.lport) } else { String::new() };
    format!("{mode} {}:{} > {}:{}{local} backend {}:{}", c.client, c.cport, c.vip, c.vport, c.backend, c.bport)
}

impl TraceRecord {
    /// The record in words; `port_name` names a DPDK port id.
    pub fn describe(&self, port_name: &dyn Fn(u16) -> String) -> TraceText {
        let from = if self.handed_in {
            format!("core {} (handed in)", self.core)
        } else {
            format!("core {} {}", self.core, port_name(self.rx_port))
        };
        let packet = format!("{from}: {} ({} bytes)", frame_text(&self.packet), self.packet.len);
        let mut steps: Vec<(&'static str, String)> = Vec::new();
        let svc_text = |s: &ServiceView| {
            format!("{} {}:{} ({}, scheduler {})", proto_name(s.proto.0), s.vip, s.port, mode_name(s.mode), s.sched)
        };
        let classified = match self.class {
            Class::Arp => "arp".to_string(),
            Class::Ipv6 => "ipv6".to_string(),
            Class::OtherEthertype => format!("ethertype 0x{:04x}: not handled", self.packet.ethertype),
            Class::Malformed => "malformed: shorter than its headers".to_string(),
            Class::Connection(Dir::Original) => "packet of a tracked connection, client side".to_string(),
            Class::Connection(Dir::Reply) => "packet of a tracked connection, backend (reply) side".to_string(),
            Class::ToService => match &self.service {
                Some(s) => format!("new to service {}", svc_text(s)),
                None => "new to a service".to_string(),
            },
            Class::ToVipNoService => match self.packet.ip {
                Some(ip) => format!(
                    "to VIP {}, which has no {} service on {}",
                    ip.dst,
                    proto_name(ip.proto),
                    ip.ports.map_or("that protocol".to_string(), |(_, d)| format!("port {d}"))
                ),
                None => "to a VIP without such a service".to_string(),
            },
            Class::ToLocal => "to an address of this box".to_string(),
            Class::NotLocal => "not to an address of this box (SNAT rules, else not for us)".to_string(),
        };
        steps.push(("classify", classified));
        let created = self.event(Event::ConnsCreated) > 0;
        let reused = self.event(Event::ConnsReused) > 0;
        match (self.conn_before, self.conn_after) {
            (Some((dir, was)), Some((_, now))) if !created => {
                let side = if dir == Dir::Original { "client side" } else { "reply side" };
                let state = if was.state != now.state {
                    format!("state {} -> {}", was.state_name(), now.state_name())
                } else {
                    format!("state {}", now.state_name())
                };
                steps.push(("connection", format!("found ({side}): {}, {state}", conn_text(&now))));
            }
            (_, Some((_, now))) if created => {
                let how = if reused { "created, replacing the tuple's old one (a new SYN)" } else { "created" };
                steps.push(("connection", format!("{how}: {}, state {}", conn_text(&now), now.state_name())));
                let backend = format!("{}:{}", now.backend, now.bport);
                let chosen = if self.event(Event::PersistenceHits) > 0 {
                    format!("persistence: the client's remembered backend {backend}")
                } else if now.flags.contains(ConnFlags::SNAT) {
                    format!("snat: to the remote server {backend}")
                } else {
                    match &self.service {
                        Some(s) => format!("{} chose backend {backend}", s.sched),
                        None => format!("backend {backend}"),
                    }
                };
                steps.push(("schedule", chosen));
            }
            (Some((_, was)), None) => {
                let why = if self.event(Event::ConnsReset) > 0 { "ended and reset" } else { "ended" };
                steps.push(("connection", format!("{why}: {}", conn_text(&was))));
            }
            _ => {
                if matches!(self.class, Class::ToService | Class::Connection(_)) || self.packet.key().is_some() {
                    steps.push(("connection", "none".to_string()));
                }
            }
        }
        for out in self.outputs.iter().flatten() {
            match out {
                Output::Port { port, frame, next_hop } => {
                    if let (Some(was), Some(now)) = (self.packet.ip, frame.ip) {
                        if frame.ethertype == ETHERTYPE_IPV4
                            && (was.src, was.dst, was.ports) != (now.src, now.dst, now.ports)
                        {
                            steps.push(("rewrite", ip_text(&now)));
                        } else if frame.ethertype == ETHERTYPE_IPV4 {
                            steps.push(("rewrite", "none above layer 2".to_string()));
                        }
                    }
                    let hop = next_hop.map_or(String::new(), |h| format!(" (next hop {h})"));
                    let what = if frame.ip.is_none() { format!(" {}", frame_text(frame)) } else { String::new() };
                    steps.push(("output", format!("{}{what} to {}{hop}", port_name(*port), frame.dst_mac)));
                }
                Output::Kernel { port, .. } => {
                    steps.push(("output", format!("to the kernel interface of {}", port_name(*port))))
                }
                Output::HandOff { core } => {
                    steps.push(("output", format!("handed to core {core}, which owns the connection")))
                }
            }
        }
        if self.more_outputs > 0 {
            steps.push(("output", format!("and {} frame(s) more", self.more_outputs)));
        }
        let counted: Vec<String> = self
            .events
            .iter()
            .flatten()
            .filter(|(e, _)| !matches!(e, Event::ConnsCreated | Event::ConnsReused | Event::HandedOff))
            .map(|(e, n)| if *n == 1 { e.as_str().to_string() } else { format!("{} x{n}", e.as_str()) })
            .collect();
        if !counted.is_empty() {
            steps.push(("counted", counted.join(", ")));
        }
        for (reason, n) in self.drops.iter().flatten() {
            let times = if *n > 1 { format!(" x{n}") } else { String::new() };
            steps.push(("drop", format!("{}{times}", reason.as_str())));
        }
        let verdict = if let Some((reason, _)) = self.drops.iter().flatten().next() {
            format!("dropped: {}", reason.as_str())
        } else if self.outputs.iter().flatten().any(|o| matches!(o, Output::HandOff { .. })) {
            "handed off".to_string()
        } else if self.outputs.iter().flatten().any(|o| matches!(o, Output::Port { frame, .. } if frame.ip.is_some())) {
            "sent".to_string()
        } else if self.outputs.iter().flatten().any(|o| matches!(o, Output::Kernel { .. })) {
            "to the kernel".to_string()
        } else if self.packet.ethertype == ETHERTYPE_ARP && self.outputs.iter().flatten().next().is_some() {
            "answered".to_string()
        } else if self.packet.ip.is_some() {
            "held: waiting for the next hop's MAC".to_string()
        } else {
            "taken: nothing sent".to_string()
        };
        TraceText { packet, steps, verdict }
    }

    /// How much `e` moved.
    pub fn event(&self, e: Event) -> u32 {
        self.events.iter().flatten().find(|(x, _)| *x == e).map_or(0, |(_, n)| *n)
    }

    /// How many packets were dropped as `r`.
    pub fn dropped(&self, r: DropReason) -> u32 {
        self.drops.iter().flatten().find(|(x, _)| *x == r).map_or(0, |(_, n)| *n)
    }
}
