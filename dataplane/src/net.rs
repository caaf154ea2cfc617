//! Address types shared by the data path and the control plane.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An Ethernet MAC address.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    /// A MAC one host can have: not all zero and not a group address (multicast, broadcast).
    /// Only these may enter the neighbour table.
    pub fn is_host(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }
    /// The Ethernet multicast address for an IPv6 multicast address (RFC 2464 section 7).
    pub fn ipv6_multicast(addr: Ipv6Addr) -> MacAddr {
        let o = addr.octets();
        MacAddr([0x33, 0x33, o[12], o[13], o[14], o[15]])
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(f, "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for MacAddr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in out.iter_mut() {
            let part = parts.next().ok_or_else(|| format!("'{s}' is not a MAC address (want xx:xx:xx:xx:xx:xx)"))?;
            if part.len() != 2 {
                return Err(format!("'{s}' is not a MAC address (want xx:xx:xx:xx:xx:xx)"));
            }
            *byte = u8::from_str_radix(part, 16)
                .map_err(|_| format!("'{s}' is not a MAC address (want xx:xx:xx:xx:xx:xx)"))?;
        }
        if parts.next().is_some() {
            return Err(format!("'{s}' is not a MAC address (want xx:xx:xx:xx:xx:xx)"));
        }
        Ok(MacAddr(out))
    }
}

/// An IP prefix: an address and a prefix length, e.g. `192.0.2.1/24` or `2001:db8::/32`.
/// The address keeps its host bits (an interface address is a prefix with host bits);
/// `network()` clears them.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    /// Fails when `len` is longer than the address (32 for IPv4, 128 for IPv6).
    pub fn new(addr: IpAddr, len: u8) -> Result<Prefix, String> {
        let max = Self::max_len_of(addr);
        if len > max {
            return Err(format!("prefix length /{len} is longer than /{max}"));
        }
        Ok(Prefix { addr, len })
    }
    /// A host prefix: /32 or /128.
    pub fn host(addr: IpAddr) -> Prefix {
        Prefix { addr, len: Self::max_len_of(addr) }
    }
    fn max_len_of(addr: IpAddr) -> u8 {
        if addr.is_ipv4() {
            32
        } else {
            128
        }
    }
    pub fn addr(&self) -> IpAddr {
        self.addr
    }
    /// The prefix length in bits (a prefix is never "empty": /0 is the whole space).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
    /// The prefix with host bits cleared.
    pub fn network(&self) -> Prefix {
        Prefix { addr: mask_addr(self.addr, self.len), len: self.len }
    }
    /// True when `ip` lies inside this prefix (same family, same network bits).
    pub fn contains(&self, ip: IpAddr) -> bool {
        ip.is_ipv4() == self.addr.is_ipv4() && mask_addr(ip, self.len) == mask_addr(self.addr, self.len)
    }
}

/// Clears all bits of `addr` after the first `len`.
pub fn mask_addr(addr: IpAddr, len: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - u32::from(len.min(32))) };
            IpAddr::V4(Ipv4Addr::from(bits & mask))
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let mask = if len == 0 { 0 } else { u128::MAX << (128 - u32::from(len.min(128))) };
            IpAddr::V6(Ipv6Addr::from(bits & mask))
        }
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

impl fmt::Debug for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Prefix {
    type Err = String;
    /// Accepts `ADDR/LEN`, or a bare `ADDR` meaning a host prefix.
    fn from_str(s: &str) -> Result<Self, String> {
        let (addr_part, len_part) = match s.split_once('/') {
            Some((a, l)) => (a, Some(l)),
            None => (s, None),
        };
        let addr: IpAddr = addr_part.parse().map_err(|_| format!("'{addr_part}' is not an IPv4 or IPv6 address"))?;
        match len_part {
            None => Ok(Prefix::host(addr)),
            Some(l) => {
                let len: u8 = l.parse().map_err(|_| format!("'{l}' is not a prefix length"))?;
                Prefix::new(addr, len)
            }
        }
    }
}

impl Serialize for Prefix {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Prefix {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_parse_and_contains() {
        let p: Prefix = "192.0.2.1/24".parse().unwrap();
        assert_eq!(p.network().to_string(), "192.0.2.0/24");
        assert!(p.contains("192.0.2.200".parse().unwrap()));
        assert!(!p.contains("198.51.100.1".parse().unwrap()));
        assert!(!p.contains("2001:db8::1".parse().unwrap()));
        let h: Prefix = "2001:db8::1".parse().unwrap();
        assert_eq!(h.len(), 128);
        assert!("192.0.2.1/33".parse::<Prefix>().unwrap_err().contains("/33"));
        assert!("192.0.2.300/24".parse::<Prefix>().unwrap_err().contains("192.0.2.300"));
        let z: Prefix = "0.0.0.0/0".parse().unwrap();
        assert!(z.contains("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn mac_parse_display() {
        let m: MacAddr = "02:00:00:00:00:0a".parse().unwrap();
        assert_eq!(m.to_string(), "02:00:00:00:00:0a");
        assert!("02:00:00:00:00".parse::<MacAddr>().is_err());
        assert!("02:00:00:00:00:0g".parse::<MacAddr>().is_err());
        assert!(MacAddr::ipv6_multicast("ff02::1:ff00:1".parse().unwrap()).is_multicast());
    }
}
