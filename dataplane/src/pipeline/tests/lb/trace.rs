//! `fvs trace` in the pipeline: what a core records for the packets a trace's filter matches
//! (a new connection, an established one, dropped ones with their reason), through
//! `process_burst` as a worker runs it.

use super::*;
use crate::trace::{Class, Output, TraceArm, TraceFilter, TraceRecord};

impl Rig {
    /// Arms a trace of `filter` for at most `max` packets; returns its channel.
    fn arm(&mut self, filter: TraceFilter, max: u32) -> crossbeam_channel::Receiver<TraceRecord> {
        let (records, rx) = crossbeam_channel::bounded(16);
        self.ctx.arm_trace(TraceArm { id: 7, filter, max, records });
        rx
    }

    /// One frame through `process_burst` (the worker's path, where traces are taken).
    fn rx_traced(&mut self, port: u16, buf: Vec<u8>) -> Vec<(u16, Vec<u8>)> {
        let frame = TestFrame { buf, port };
        self.ctx.process_burst(&self.snap, self.now, [frame], &mut self.pool, &mut self.sent);
        std::mem::take(&mut self.sent.0)
    }
}

fn port_name(id: u16) -> String {
    format!("dp{id}")
}

fn client_filter() -> TraceFilter {
    TraceFilter { addr: Some(ip4("192.0.2.2")), port: None, proto: Some(IpProtocol::TCP) }
}

fn steps(r: &TraceRecord) -> Vec<String> {
    let text = r.describe(&port_name);
    text.steps.iter().map(|(k, v)| format!("{k}: {v}")).chain([format!("verdict: {}", text.verdict)]).collect()
}

#[test]
fn a_new_connection_is_traced_from_classification_to_output() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let records = rig.arm(client_filter(), 10);
    let out = rig.rx_traced(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    assert_eq!(out.len(), 1, "tracing changes nothing of what is sent");
    let r = records.try_recv().expect("a record of the SYN");
    assert_eq!((r.trace, r.core, r.rx_port, r.handed_in), (7, 0, 0, false));
    assert_eq!(r.class, Class::ToService);
    assert!(r.conn_before.is_none());
    let (_, conn) = r.conn_after.expect("the connection it made");
    assert_eq!((conn.backend, conn.bport, conn.state), (ip4("198.51.100.11"), 8080, TcpState::SynRecv));
    assert_eq!(r.event(Event::ConnsCreated), 1);
    assert_eq!(r.event(Event::LbInPackets), 1);
    assert!(r.drops.iter().all(Option::is_none));
    match r.outputs[0] {
        Some(Output::Port { port, frame, next_hop }) => {
            assert_eq!((port, frame.dst_mac, next_hop), (1, B1_MAC, Some("198.51.100.11".parse().unwrap())));
            let ip = frame.ip.unwrap();
            assert_eq!((ip.src, ip.dst, ip.ports), (ip4("192.0.2.2"), ip4("198.51.100.11"), Some((40000, 8080))));
        }
        other => panic!("{other:?}"),
    }
    let text = r.describe(&port_name);
    assert_eq!(text.packet, "core 0 dp0: tcp 192.0.2.2:40000 > 192.0.2.100:80 [S] (54 bytes)");
    assert_eq!(
        steps(&r),
        [
            "classify: new to service tcp 192.0.2.100:80 (nat, scheduler rr)",
            "connection: created: nat 192.0.2.2:40000 > 192.0.2.100:80 backend 198.51.100.11:8080, state SYN_RECV",
            "schedule: rr chose backend 198.51.100.11:8080",
            "rewrite: tcp 192.0.2.2:40000 > 198.51.100.11:8080 [S]",
            "output: dp1 to 02:b0:00:00:00:11 (next hop 198.51.100.11)",
            "counted: lb_in_packets",
            "verdict: sent",
        ]
    );
}

#[test]
fn an_established_connection_is_found_and_its_state_followed() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    rig.rx(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, SYN, b""));
    rig.rx(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, SYN_ACK, b""));
    // Only the client's port: the backend's packets have other ports.
    let records = rig.arm(TraceFilter { port: Some(40000), ..TraceFilter::default() }, 10);
    rig.rx_traced(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 80, 6, ACK, b"GET /"));
    let r = records.try_recv().unwrap();
    assert_eq!(r.class, Class::Connection(Dir::Original));
    assert_eq!(r.conn_before.unwrap().1.state, TcpState::SynRecv);
    assert_eq!(r.conn_after.unwrap().1.state, TcpState::Established);
    assert_eq!(r.event(Event::ConnsCreated), 0);
    assert_eq!(
        steps(&r)[..2],
        [
            "classify: packet of a tracked connection, client side",
            "connection: found (client side): nat 192.0.2.2:40000 > 192.0.2.100:80 backend 198.51.100.11:8080, state SYN_RECV -> ESTABLISHED",
        ]
    );
    // The backend's answer goes to the client's port 40000: traced too, as the reply side.
    rig.rx_traced(1, l4(B1_MAC, OUR_MAC1, "198.51.100.11", 8080, "192.0.2.2", 40000, 6, ACK, b"200 OK"));
    let r = records.try_recv().unwrap();
    assert_eq!(r.class, Class::Connection(Dir::Reply));
    let s = steps(&r);
    assert!(s.contains(&"rewrite: tcp 192.0.2.100:80 > 192.0.2.2:40000 [.]".to_string()), "{s:?}");
    assert!(s.contains(&"output: dp0 to 02:c1:00:00:00:02 (next hop 192.0.2.2)".to_string()), "{s:?}");
    assert_eq!(rig.ctx.counters.event(Event::LbOutPackets).get(), 2);
}

#[test]
fn dropped_packets_are_traced_with_their_reason() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let records = rig.arm(client_filter(), 10);
    // A VIP port no service uses.
    assert!(rig.rx_traced(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40000, VIP, 81, 6, SYN, b"")).is_empty());
    let r = records.try_recv().unwrap();
    assert_eq!(r.class, Class::ToVipNoService);
    assert_eq!(r.dropped(DropReason::NoService), 1);
    assert_eq!(
        steps(&r),
        [
            "classify: to VIP 192.0.2.100, which has no tcp service on port 81",
            "connection: none",
            "drop: no_service",
            "verdict: dropped: no_service",
        ]
    );
    // Not a SYN, no connection.
    rig.rx_traced(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, ACK, b""));
    let r = records.try_recv().unwrap();
    assert_eq!(r.dropped(DropReason::NoConnection), 1);
    assert_eq!(r.describe(&port_name).verdict, "dropped: no_connection");
    // A TCP header cut short: the trace still shows the addresses.
    let mut short = l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40002, VIP, 80, 6, SYN, b"");
    short.truncate(14 + 20 + 10);
    short[14 + 2..14 + 4].copy_from_slice(&30u16.to_be_bytes());
    let header: &mut [u8; 20] = (&mut short[14..34]).try_into().unwrap();
    header[10..12].fill(0);
    let csum = crate::wire::checksum::ipv4_header_checksum(header);
    header[10..12].copy_from_slice(&csum);
    rig.rx_traced(0, short);
    let r = records.try_recv().unwrap();
    assert_eq!(r.dropped(DropReason::MalformedL4), 1);
    assert!(
        r.describe(&port_name).packet.contains("tcp 192.0.2.2:40002 > 192.0.2.100:80 (header cut short)"),
        "{:?}",
        r.describe(&port_name)
    );
}

#[test]
fn only_matching_packets_are_traced_and_the_trace_ends_after_its_count() {
    let mut rig = Rig::lb(&nat_tcp(), LbLimits::default());
    let records = rig.arm(TraceFilter { port: Some(40001), ..client_filter() }, 2);
    let syn = |sport| l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", sport, VIP, 80, 6, SYN, b"");
    let frames: Vec<TestFrame> =
        [40000, 40001, 40002].into_iter().map(|p| TestFrame { buf: syn(p), port: 0 }).collect();
    rig.ctx.process_burst(&rig.snap, rig.now, frames, &mut rig.pool, &mut rig.sent);
    assert_eq!(rig.sent.0.len(), 3, "every frame forwarded, traced or not");
    assert_eq!(records.try_recv().unwrap().packet.key().unwrap().sport, 40001);
    assert!(records.try_recv().is_err());
    assert!(rig.ctx.tracing());
    // The second match is the last this core sends: it stops tracing by itself.
    rig.rx_traced(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, ACK, b""));
    assert!(records.try_recv().is_ok());
    assert!(!rig.ctx.tracing());
    rig.rx_traced(0, l4(CLIENT_MAC, OUR_MAC, "192.0.2.2", 40001, VIP, 80, 6, ACK, b""));
    assert!(records.try_recv().is_err());
    // A control-thread disarm of another trace id leaves a newer trace alone.
    let records = rig.arm(client_filter(), 5);
    rig.ctx.disarm_trace(6);
    assert!(rig.ctx.tracing());
    rig.ctx.disarm_trace(7);
    assert!(!rig.ctx.tracing());
    assert!(records.try_recv().is_err());
}
