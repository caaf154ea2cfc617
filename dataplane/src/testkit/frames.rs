//! The in-memory frame and tx doubles and the pipeline tests' short frame builders (thin
//! wrappers over [`super::packet`]): frames are `Vec<u8>` with the
//! headroom and capacity limits of an mbuf, the tx side records what was sent and handed off.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::packet::{EthRepr, Ipv4Repr, L4Repr, TcpRepr, UdpRepr};
use crate::net::MacAddr;
use crate::pipeline::{Frame, FramePool, TxSink};
use crate::wire::{EtherType, TcpFlags};

pub const OUR_MAC: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x01]);
pub const OUR_MAC1: MacAddr = MacAddr([0x02, 0xfe, 0, 0, 0, 0x02]);
pub const CLIENT_MAC: MacAddr = MacAddr([0x02, 0xc1, 0, 0, 0, 0x02]);
/// Bytes a test frame can grow to (an mbuf's data room).
pub const CAPACITY: usize = 2048;

/// The backends' MACs (198.51.100.11 and .12 on port 1).
pub const B1_MAC: MacAddr = MacAddr([0x02, 0xb0, 0, 0, 0, 0x11]);
pub const B2_MAC: MacAddr = MacAddr([0x02, 0xb0, 0, 0, 0, 0x12]);
/// TCP flags.
pub const SYN: u8 = 0x02;
pub const ACK: u8 = 0x10;
pub const SYN_ACK: u8 = 0x12;
pub const FIN_ACK: u8 = 0x11;

/// A frame as an mbuf would hold it, received on `port`.
#[derive(Debug, Clone, PartialEq)]
pub struct TestFrame {
    pub buf: Vec<u8>,
    pub port: u16,
}

impl Frame for TestFrame {
    fn data(&self) -> &[u8] {
        &self.buf
    }
    fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf
    }
    fn rx_port(&self) -> u16 {
        self.port
    }
    fn set_len(&mut self, len: usize) -> bool {
        if len > CAPACITY {
            return false;
        }
        self.buf.resize(len, 0xAA); // Garbage, as a recycled mbuf would hold.
        true
    }
    fn prepend(&mut self, n: usize) -> bool {
        // An mbuf has 128 bytes of headroom.
        if n > 128 || self.buf.len() + n > CAPACITY {
            return false;
        }
        self.buf.splice(0..0, std::iter::repeat_n(0xBB, n));
        true
    }
}

/// Hands out `left` more frames, then none (a mempool running dry).
pub struct Pool {
    pub left: usize,
}
impl FramePool<TestFrame> for Pool {
    fn alloc(&mut self) -> Option<TestFrame> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        Some(TestFrame { buf: vec![0x55; 100], port: u16::MAX })
    }
}

/// Frames sent (port, bytes) not yet taken by the test, frames handed to another core (core,
/// frame), how many frames were ever sent, and frames passed to a port's kernel interface
/// (port, bytes). A port that takes everything: this sink stands for the NIC, so it is where
/// `tx_packets` would be counted.
#[derive(Default)]
pub struct Sent(pub Vec<(u16, Vec<u8>)>, pub Vec<(u32, TestFrame)>, pub u64, pub Vec<(u16, Vec<u8>)>);
impl TxSink<TestFrame> for Sent {
    fn send_to_kernel(&mut self, port: u16, frame: TestFrame) {
        self.3.push((port, frame.buf));
    }
    fn send(&mut self, port: u16, frame: TestFrame) {
        self.0.push((port, frame.buf));
        self.2 += 1;
    }
    fn hand_off(&mut self, core: u32, frame: TestFrame) -> Result<(), TestFrame> {
        self.1.push((core, frame));
        Ok(())
    }
}

/// Parses a literal address (test input: panics on a typo).
pub fn ip4(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}
pub fn ip6(s: &str) -> Ipv6Addr {
    s.parse().unwrap()
}

/// An Ethernet header.
pub fn eth(dst: MacAddr, src: MacAddr, ethertype: u16) -> Vec<u8> {
    EthRepr { dst, src }.frame(EtherType(ethertype), &[])
}

/// An Ethernet + IPv4 + TCP/UDP frame with correct checksums: `proto` 6 (TCP, sequence 1000,
/// acknowledgement 5000 with ACK) or 17 (UDP, `flags` unused). IPv4: TTL 64, DF, ident 0x1234.
#[allow(clippy::too_many_arguments)]
pub fn l4(
    src_mac: MacAddr,
    dst_mac: MacAddr,
    src: &str,
    sport: u16,
    dst: &str,
    dport: u16,
    proto: u8,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let l4 = match proto {
        6 => L4Repr::Tcp(TcpRepr::new(sport, dport, TcpFlags::from_bits_retain(flags)).with_payload(payload)),
        17 => L4Repr::Udp(UdpRepr { sport, dport, payload }),
        _ => panic!("l4: protocol {proto} is neither TCP (6) nor UDP (17)"),
    };
    EthRepr { dst: dst_mac, src: src_mac }.frame_v4(&Ipv4Repr::new(ip4(src), ip4(dst)), &l4)
}
