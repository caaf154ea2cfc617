//! Zero-copy header views over byte slices.
//!
//! Each view wraps a buffer (`&[u8]`, `&mut [u8]`, an mbuf's data, ...) and reads or writes
//! header fields in place. `new_checked` validates the length and every field that other
//! accessors depend on, so no getter (nor `payload()`) panics on a checked view, whatever the
//! bytes are. Variable-length ranges (`payload()`, `options()`) are additionally clamped to the
//! buffer, so they stay panic-free even after a setter made the header inconsistent.
//! `new_unchecked` skips validation: fixed-offset accessors then panic on a short buffer.
//!
//! Nothing here allocates or uses `unsafe`.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod icmpv4;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

mod exercise;
mod summary;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use crate::net::MacAddr;

pub use arp::{emit_arp, ArpOperation, ArpPacket};
pub use ethernet::EthernetFrame;
pub use exercise::exercise_views;
pub use icmpv4::{Icmpv4Packet, Icmpv4Type};
pub use icmpv6::{emit_neighbor_advert, emit_neighbor_solicit, Icmpv6Packet, Icmpv6Type, NdiscOption, NdiscOptions};
pub use ipv4::Ipv4Packet;
pub use ipv6::Ipv6Packet;
pub use summary::{summarize, FrameSummary};
pub use tcp::{TcpFlags, TcpPacket};
pub use udp::UdpPacket;

/// Why a buffer was rejected by a `new_checked` constructor (or a walker).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WireError {
    /// The buffer is shorter than the fixed header (or than what the header says it holds).
    Truncated,
    /// The IP version nibble does not match the header type.
    BadVersion,
    /// A header length field (IPv4 IHL, TCP data offset) is below the minimum or past the buffer.
    BadHeaderLength,
    /// The IPv4 total length is shorter than the header or longer than the buffer.
    BadTotalLength,
    /// A length field (UDP length, IPv6 payload length, ND option length) is out of range.
    BadLength,
    /// Well-formed but not something we parse (e.g. ARP for a non-Ethernet/IPv4 network).
    Unsupported,
}

impl WireError {
    /// A snake_case name, for drop counters and logs.
    pub fn as_str(&self) -> &'static str {
        match self {
            WireError::Truncated => "truncated",
            WireError::BadVersion => "bad_version",
            WireError::BadHeaderLength => "bad_header_length",
            WireError::BadTotalLength => "bad_total_length",
            WireError::BadLength => "bad_length",
            WireError::Unsupported => "unsupported",
        }
    }
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireError::Truncated => "packet truncated: shorter than its header",
            WireError::BadVersion => "wrong IP version",
            WireError::BadHeaderLength => "header length field out of range",
            WireError::BadTotalLength => "IPv4 total length out of range",
            WireError::BadLength => "length field out of range",
            WireError::Unsupported => "unsupported header format",
        })
    }
}

impl std::error::Error for WireError {}

/// An Ethernet type. Unknown values are kept as they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtherType(pub u16);

impl EtherType {
    pub const IPV4: EtherType = EtherType(0x0800);
    pub const ARP: EtherType = EtherType(0x0806);
    pub const VLAN: EtherType = EtherType(0x8100);
    pub const IPV6: EtherType = EtherType(0x86DD);
}

impl From<u16> for EtherType {
    fn from(v: u16) -> Self {
        EtherType(v)
    }
}

impl From<EtherType> for u16 {
    fn from(v: EtherType) -> Self {
        v.0
    }
}

/// An IP protocol number (IPv4 protocol / IPv6 next header). Unknown values are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(transparent)]
pub struct IpProtocol(pub u8);

impl IpProtocol {
    pub const ICMP: IpProtocol = IpProtocol(1);
    pub const IPIP: IpProtocol = IpProtocol(4);
    pub const TCP: IpProtocol = IpProtocol(6);
    pub const UDP: IpProtocol = IpProtocol(17);
    /// IPv6 encapsulated in IPv6 (or IPv4), RFC 2473.
    pub const IPV6_IN_IP: IpProtocol = IpProtocol(41);
    pub const ICMPV6: IpProtocol = IpProtocol(58);
}

impl From<u8> for IpProtocol {
    fn from(v: u8) -> Self {
        IpProtocol(v)
    }
}

impl From<IpProtocol> for u8 {
    fn from(v: IpProtocol) -> Self {
        v.0
    }
}

// Big-endian field helpers. They index the buffer directly: on a checked view the offsets are
// within the validated length, so the bounds checks never fire. Each reads a sub-slice of the
// field's size, so one bounds check covers the field (not one per byte).

#[inline]
fn read_u16(d: &[u8], at: usize) -> u16 {
    u16::from_be_bytes(field(d, at))
}

#[inline]
fn read_u32(d: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(field(d, at))
}

/// The `N` bytes at `at`; panics when they are not all in `d`.
#[inline(always)]
fn field<const N: usize>(d: &[u8], at: usize) -> [u8; N] {
    match d[at..].first_chunk::<N>() {
        Some(bytes) => *bytes,
        None => panic!("header field at {at}..{} past the {}-byte buffer", at + N, d.len()),
    }
}

#[inline]
fn write_u16(d: &mut [u8], at: usize, v: u16) {
    d[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn write_u32(d: &mut [u8], at: usize, v: u32) {
    d[at..at + 4].copy_from_slice(&v.to_be_bytes());
}

#[inline]
fn read_mac(d: &[u8], at: usize) -> MacAddr {
    MacAddr(field(d, at))
}

#[inline]
fn write_mac(d: &mut [u8], at: usize, v: MacAddr) {
    d[at..at + 6].copy_from_slice(&v.0);
}

#[inline]
fn read_ipv4(d: &[u8], at: usize) -> Ipv4Addr {
    Ipv4Addr::from(field::<4>(d, at))
}

#[inline]
fn write_ipv4(d: &mut [u8], at: usize, v: Ipv4Addr) {
    d[at..at + 4].copy_from_slice(&v.octets());
}

#[inline]
fn read_ipv6(d: &[u8], at: usize) -> Ipv6Addr {
    Ipv6Addr::from(field::<16>(d, at))
}

#[inline]
fn write_ipv6(d: &mut [u8], at: usize, v: Ipv6Addr) {
    d[at..at + 16].copy_from_slice(&v.octets());
}

/// `d[start..end]` with both ends clamped to the buffer, so a header whose length fields were
/// changed by a setter after the check still cannot make an accessor panic.
#[inline]
fn clamped(d: &[u8], start: usize, end: usize) -> &[u8] {
    let end = end.min(d.len());
    let start = start.min(end);
    &d[start..end]
}

#[inline]
fn clamped_mut(d: &mut [u8], start: usize, end: usize) -> &mut [u8] {
    let end = end.min(d.len());
    let start = start.min(end);
    &mut d[start..end]
}
