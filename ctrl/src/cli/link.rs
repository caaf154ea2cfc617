//! `fvs link`: the DPDK ports, `ip link`-style.

use std::fmt::Write as _;

use super::table::stat_block;
use crate::proto::{KernelLinkInfo, KernelStats, LinkInfo, PortStats};

/// `ip link`-style: two lines per port (three with steering, one more with a kernel
/// interface), four more with counters and two for the kernel interface's.
pub(super) fn format_links(links: &[LinkInfo]) -> String {
    let mut s = String::new();
    for l in links {
        let state = if l.link_up { "UP" } else { "DOWN" };
        let numa = if l.numa_socket < 0 { "any".to_string() } else { l.numa_socket.to_string() };
        let rss = if l.rss { "on" } else { "off" };
        let _ = write!(
            s,
            "{}: {}: <{state}> mtu {} driver {} numa {numa} queues rx {} tx {} rss {rss}",
            l.port_id, l.name, l.mtu, l.driver, l.rx_queues, l.tx_queues
        );
        if l.link_up && l.speed_mbps > 0 {
            let _ = write!(s, " speed {}Mb/s", l.speed_mbps);
        }
        let _ = writeln!(s, "\n    link/ether {} device {}", l.mac, l.device);
        if !l.steering.is_empty() {
            let _ = writeln!(s, "    steering {} ({})", l.steering, l.steering_detail);
        }
        if let Some(k) = &l.kernel {
            s.push_str(&format_kernel(k));
        }
        if let Some(st) = &l.stats {
            s.push_str(&format_port_stats(st));
        }
        if let Some(st) = l.kernel.as_ref().and_then(|k| k.stats.as_ref()) {
            s.push_str(&format_kernel_stats(st));
        }
    }
    s
}

fn format_kernel(k: &KernelLinkInfo) -> String {
    let state = if k.link_up { "UP" } else { "DOWN" };
    format!(
        "    kernel {} <{state}> device {} port {} rate {}/s burst {} per worker\n",
        k.name, k.device, k.port_id, k.rate_pps, k.burst
    )
}

fn format_kernel_stats(st: &KernelStats) -> String {
    stat_block("KERNEL:", &["to", "from", "rate_limited"], &[st.to_kernel, st.from_kernel, st.rate_limited])
}

fn format_port_stats(st: &PortStats) -> String {
    let rx = [st.rx_packets, st.rx_bytes, st.rx_missed, st.rx_errors, st.rx_nombuf];
    let tx = [st.tx_packets, st.tx_bytes, st.tx_errors];
    stat_block("RX:", &["packets", "bytes", "missed", "errors", "nombuf"], &rx)
        + &stat_block("TX:", &["packets", "bytes", "errors"], &tx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link(stats: Option<PortStats>) -> LinkInfo {
        LinkInfo {
            port_id: 0,
            name: "dp0".into(),
            device: "net_af_packet0,iface=veth-lb0".into(),
            driver: "net_af_packet".into(),
            mac: "02:00:00:00:00:01".parse().unwrap(),
            mtu: 1500,
            link_up: true,
            speed_mbps: 0,
            rx_queues: 1,
            tx_queues: 1,
            rss: false,
            numa_socket: 0,
            steering: "single".into(),
            steering_detail: "one worker".into(),
            stats,
            kernel: None,
        }
    }

    #[test]
    fn links_formatted() {
        assert_eq!(
            format_links(&[link(None)]),
            "0: dp0: <UP> mtu 1500 driver net_af_packet numa 0 queues rx 1 tx 1 rss off\n    link/ether 02:00:00:00:00:01 device net_af_packet0,iface=veth-lb0\n    steering single (one worker)\n"
        );
        let stats = PortStats {
            rx_packets: 12,
            rx_bytes: 123456789,
            tx_packets: 3,
            tx_bytes: 180,
            rx_missed: 1,
            ..Default::default()
        };
        let mut l = link(Some(stats));
        l.link_up = false;
        l.numa_socket = -1;
        l.rss = true;
        let text = format_links(&[l]);
        let want = "\
0: dp0: <DOWN> mtu 1500 driver net_af_packet numa any queues rx 1 tx 1 rss on
    link/ether 02:00:00:00:00:01 device net_af_packet0,iface=veth-lb0
    steering single (one worker)
    RX:  packets      bytes  missed  errors  nombuf
              12  123456789       1       0       0
    TX:  packets  bytes  errors
               3    180       0
";
        assert_eq!(text, want);
        let mut with_kernel = link(Some(PortStats::default()));
        with_kernel.kernel = Some(KernelLinkInfo {
            name: "fvs-dp0".into(),
            device: "tap".into(),
            port_id: 2,
            link_up: true,
            rate_pps: 20000,
            burst: 2000,
            stats: Some(KernelStats { to_kernel: 120, from_kernel: 80, rate_limited: 7 }),
        });
        let want = "\
0: dp0: <UP> mtu 1500 driver net_af_packet numa 0 queues rx 1 tx 1 rss off
    link/ether 02:00:00:00:00:01 device net_af_packet0,iface=veth-lb0
    steering single (one worker)
    kernel fvs-dp0 <UP> device tap port 2 rate 20000/s burst 2000 per worker
    RX:  packets  bytes  missed  errors  nombuf
               0      0       0       0       0
    TX:  packets  bytes  errors
               0      0       0
    KERNEL:   to  from  rate_limited
             120    80             7
";
        assert_eq!(format_links(&[with_kernel]), want);
        let mut fast = link(None);
        fast.speed_mbps = 25000;
        assert!(format_links(&[fast]).lines().next().unwrap().ends_with("rss off speed 25000Mb/s"));
    }
}
