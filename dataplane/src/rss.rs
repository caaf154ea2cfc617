//! The NIC's receive-side scaling, computed in software: the Toeplitz hash a NIC takes of a
//! packet's tuple with its RSS key, and the redirection table (RETA) that turns the hash into
//! a receive queue. With both read from the port, ferrovs can tell which queue (and so which
//! worker) a packet it has not yet seen will arrive on: FullNAT and SNAT choose local ports so
//! that the reply's tuple lands on the queue of the worker that owns the connection.

use std::net::Ipv4Addr;

/// Longest RSS key a NIC has (DPDK's drivers use 40 or 52 bytes).
pub const MAX_KEY_LEN: usize = 52;

/// The 40-byte key of Microsoft's RSS specification, many NICs' default; its published test
/// vectors check [`Toeplitz`].
pub const MICROSOFT_KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0, 0xd0, 0xca, 0x2b,
    0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac,
    0x01, 0xfa,
];

/// A Toeplitz hash with one key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Toeplitz {
    key: [u8; MAX_KEY_LEN],
    len: usize,
}

impl Toeplitz {
    /// The key must be long enough for the input hashed plus 4 bytes: 16 for IPv4 with ports.
    pub fn new(key: &[u8]) -> Result<Toeplitz, String> {
        if !(16..=MAX_KEY_LEN).contains(&key.len()) {
            return Err(format!("RSS key of {} bytes; ferrovs handles 16 to {MAX_KEY_LEN}", key.len()));
        }
        let mut k = [0u8; MAX_KEY_LEN];
        k[..key.len()].copy_from_slice(key);
        Ok(Toeplitz { key: k, len: key.len() })
    }

    /// The hash of `input`: for every set bit i of the input (most significant bit of the
    /// first byte first), the 32 key bits starting at bit i, XORed together.
    pub fn hash(&self, input: &[u8]) -> u32 {
        assert!(input.len() + 4 <= self.len, "input longer than the key allows");
        let mut result = 0u32;
        // The key window for the next input bit, and the key bits still to shift in.
        let mut window = u32::from_be_bytes([self.key[0], self.key[1], self.key[2], self.key[3]]);
        for (i, byte) in input.iter().enumerate() {
            let next = self.key[i + 4];
            for bit in 0..8 {
                if byte & (0x80 >> bit) != 0 {
                    result ^= window;
                }
                window = (window << 1) | u32::from((next >> (7 - bit)) & 1);
            }
        }
        result
    }

    /// The hash a NIC takes of an IPv4 TCP/UDP packet: source address, destination address,
    /// source port, destination port, in network byte order.
    pub fn hash_ipv4_l4(&self, src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16) -> u32 {
        let mut input = [0u8; 12];
        input[0..4].copy_from_slice(&src.octets());
        input[4..8].copy_from_slice(&dst.octets());
        input[8..10].copy_from_slice(&sport.to_be_bytes());
        input[10..12].copy_from_slice(&dport.to_be_bytes());
        self.hash(&input)
    }
}

/// A port's redirection table: entry `hash % len` names the receive queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reta {
    queues: Vec<u16>,
}

impl Reta {
    /// `queues[i]` is the queue of entry i; DPDK's tables have a power-of-two size.
    pub fn new(queues: Vec<u16>) -> Result<Reta, String> {
        if queues.is_empty() || !queues.len().is_power_of_two() {
            return Err(format!("redirection table of {} entries; want a power of two", queues.len()));
        }
        Ok(Reta { queues })
    }

    /// Entries spread round robin over `queues` queues, as DPDK's drivers set them up.
    pub fn round_robin(entries: usize, queues: u16) -> Result<Reta, String> {
        if queues == 0 {
            return Err("no queues".into());
        }
        Reta::new((0..entries).map(|i| (i % usize::from(queues)) as u16).collect())
    }

    /// The queue a packet with this hash arrives on (the NIC uses the hash's low bits).
    #[inline]
    pub fn queue(&self, hash: u32) -> u16 {
        self.queues[hash as usize & (self.queues.len() - 1)]
    }
}

/// How replies reach the worker that owns their connection, computed from the port's RSS.
#[derive(Clone, Debug)]
pub struct ReplySteering {
    pub toeplitz: Toeplitz,
    pub reta: Reta,
}

impl ReplySteering {
    /// The queue the reply from `backend:bport` to our `laddr:lport` arrives on.
    #[inline]
    pub fn reply_queue(&self, backend: Ipv4Addr, bport: u16, laddr: Ipv4Addr, lport: u16) -> u16 {
        self.reta.queue(self.toeplitz.hash_ipv4_l4(backend, laddr, bport, lport))
    }

    /// The first port from `candidates` whose reply lands on `queue`.
    pub fn local_port_for(
        &self,
        queue: u16,
        backend: Ipv4Addr,
        bport: u16,
        laddr: Ipv4Addr,
        candidates: impl IntoIterator<Item = u16>,
    ) -> Option<u16> {
        candidates.into_iter().find(|&lport| self.reply_queue(backend, bport, laddr, lport) == queue)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms() -> Toeplitz {
        Toeplitz::new(&MICROSOFT_KEY).unwrap()
    }

    /// Microsoft's "Verifying the RSS hash calculation" vectors for IPv4 (source -> destination).
    /// (source, source port, destination, destination port, 4-tuple hash, 2-tuple hash).
    type Vector = ((u8, u8, u8, u8), u16, (u8, u8, u8, u8), u16, u32, u32);
    const VECTORS: [Vector; 5] = [
        ((66, 9, 149, 187), 2794, (161, 142, 100, 80), 1766, 0x323e_8fc2, 0x51cc_c178),
        ((199, 92, 111, 2), 14230, (65, 69, 140, 83), 4739, 0xd718_262a, 0xc626_b0ea),
        ((24, 19, 198, 95), 12898, (12, 22, 207, 184), 38024, 0xd2d0_a5de, 0x5c2b_394a),
        ((38, 27, 205, 30), 48228, (209, 142, 163, 6), 2217, 0x8298_9176, 0xafc7_327f),
        ((153, 39, 163, 191), 44251, (202, 188, 127, 2), 1303, 0x5d18_09c5, 0x10e8_28a2),
    ];

    fn ip(a: (u8, u8, u8, u8)) -> Ipv4Addr {
        Ipv4Addr::new(a.0, a.1, a.2, a.3)
    }

    #[test]
    fn microsoft_vectors_for_addresses_and_for_addresses_with_ports() {
        let t = ms();
        for (src, sport, dst, dport, ip_only, with_ports) in VECTORS {
            let mut addrs = [0u8; 8];
            addrs[..4].copy_from_slice(&ip(src).octets());
            addrs[4..].copy_from_slice(&ip(dst).octets());
            assert_eq!(t.hash(&addrs), ip_only, "{src:?} -> {dst:?}");
            assert_eq!(
                t.hash_ipv4_l4(ip(src), ip(dst), sport, dport),
                with_ports,
                "{src:?}:{sport} -> {dst:?}:{dport}"
            );
        }
    }

    #[test]
    fn the_hash_is_linear_so_a_ports_share_does_not_depend_on_the_rest() {
        // What makes choosing ports work: hash(a ^ b) = hash(a) ^ hash(b).
        let t = ms();
        let a = [1u8, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let b = [0xffu8, 0, 0x80, 7, 0, 0, 0, 0x11, 0, 0, 0x40, 1];
        let x: Vec<u8> = a.iter().zip(&b).map(|(p, q)| p ^ q).collect();
        assert_eq!(t.hash(&x), t.hash(&a) ^ t.hash(&b));
        assert_eq!(t.hash(&[0u8; 12]), 0);
    }

    #[test]
    fn keys_and_tables_of_the_wrong_size_are_refused() {
        assert!(Toeplitz::new(&[0u8; 15]).is_err());
        assert!(Toeplitz::new(&[0u8; 53]).is_err());
        assert!(Toeplitz::new(&[0u8; 52]).is_ok());
        assert!(Reta::new(vec![0; 96]).is_err());
        assert!(Reta::new(vec![]).is_err());
        assert!(Reta::round_robin(128, 0).is_err());
    }

    #[test]
    fn chosen_local_ports_bring_every_reply_to_the_owning_queue() {
        let steering = ReplySteering { toeplitz: ms(), reta: Reta::round_robin(128, 4).unwrap() };
        let laddr = Ipv4Addr::new(198, 51, 100, 200);
        for k in 0..50u16 {
            let backend = Ipv4Addr::new(198, 51, 100, 11 + (k % 8) as u8);
            let bport = 8000 + k * 7;
            for queue in 0..4 {
                let lport = steering
                    .local_port_for(queue, backend, bport, laddr, 1024..=65535)
                    .expect("a port for every queue");
                assert_eq!(steering.reply_queue(backend, bport, laddr, lport), queue);
                // And the NIC's own computation agrees: the same hash, the same table entry.
                let hash = ms().hash_ipv4_l4(backend, laddr, bport, lport);
                assert_eq!(hash as usize % 128 % 4, usize::from(queue));
            }
        }
    }
}
