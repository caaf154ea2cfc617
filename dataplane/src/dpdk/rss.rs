//! DPDK's own software RSS (`rte_softrss`): the reference `crate::rss::Toeplitz` is checked
//! against.

use std::net::Ipv4Addr;

/// DPDK's Toeplitz hash of an IPv4 TCP/UDP tuple with `key` (16 to 52 bytes).
pub fn soft_rss_ipv4_l4(src: Ipv4Addr, dst: Ipv4Addr, sport: u16, dport: u16, key: &[u8]) -> u32 {
    assert!((16..=crate::rss::MAX_KEY_LEN).contains(&key.len()), "RSS key of {} bytes", key.len());
    // rte_softrss reads the key as 32-bit words: give it an aligned copy.
    let mut words = [0u32; crate::rss::MAX_KEY_LEN / 4];
    for (w, chunk) in words.iter_mut().zip(key.chunks(4)) {
        let mut b = [0u8; 4];
        b[..chunk.len()].copy_from_slice(chunk);
        *w = u32::from_ne_bytes(b);
    }
    // DPDK's rte_ipv4_tuple in host order: addresses, then the ports as one word.
    let mut tuple = [u32::from(src), u32::from(dst), (u32::from(sport) << 16) | u32::from(dport)];
    // SAFETY: `tuple` holds the 3 words input_len says; rte_softrss reads key words 0..=3,
    // inside `words` (13 words), and writes nothing.
    unsafe { dpdk_sys::rte_softrss(tuple.as_mut_ptr(), tuple.len() as u32, words.as_ptr().cast::<u8>()) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rss::{ReplySteering, Reta, Toeplitz, MICROSOFT_KEY};

    fn splitmix(x: &mut u64) -> u64 {
        *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = *x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    #[test]
    fn toeplitz_matches_dpdk_soft_rss_for_known_and_random_keys_and_tuples() {
        let mut seed = 0x5eed;
        let random_key = |len: usize, seed: &mut u64| (0..len).map(|_| splitmix(seed) as u8).collect::<Vec<u8>>();
        let keys =
            [MICROSOFT_KEY.to_vec(), random_key(40, &mut seed), random_key(52, &mut seed), [0x6d, 0x5a].repeat(20)];
        // Microsoft's first vector, then random tuples.
        let known = (Ipv4Addr::new(66, 9, 149, 187), Ipv4Addr::new(161, 142, 100, 80), 2794, 1766);
        assert_eq!(soft_rss_ipv4_l4(known.0, known.1, known.2, known.3, &MICROSOFT_KEY), 0x51cc_c178);
        for key in &keys {
            let t = Toeplitz::new(key).unwrap();
            for _ in 0..20_000 {
                let r = splitmix(&mut seed);
                let (src, dst) = (Ipv4Addr::from(r as u32), Ipv4Addr::from((r >> 32) as u32));
                let ports = splitmix(&mut seed);
                let (sport, dport) = (ports as u16, (ports >> 16) as u16);
                assert_eq!(t.hash_ipv4_l4(src, dst, sport, dport), soft_rss_ipv4_l4(src, dst, sport, dport, key));
            }
        }
    }

    #[test]
    fn chosen_local_ports_land_on_the_owning_queue_by_dpdks_hash_too() {
        let steering = ReplySteering {
            toeplitz: Toeplitz::new(&MICROSOFT_KEY).unwrap(),
            reta: Reta::round_robin(512, 2).unwrap(),
        };
        let (backend, laddr) = (Ipv4Addr::new(198, 51, 100, 11), Ipv4Addr::new(198, 51, 100, 200));
        for queue in 0..2u16 {
            let ports: Vec<u16> = (1024..=65535u16)
                .filter(|&p| steering.reply_queue(backend, 8080, laddr, p) == queue)
                .take(1000)
                .collect();
            assert_eq!(ports.len(), 1000);
            for p in ports {
                let hash = soft_rss_ipv4_l4(backend, laddr, 8080, p, &MICROSOFT_KEY);
                assert_eq!(steering.reta.queue(hash), queue);
            }
        }
    }
}
