//! Ethernet ports: configuration, queues, start/stop, link, stats.

use std::ffi::{CStr, CString};

use super::error::DpdkError;
use super::mbuf::Mempool;
use crate::counters::PortStats;
use crate::net::MacAddr;

/// A DPDK port, by id. Copy: the id is all it is; the queues belong to the workers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Port(u16);

#[derive(Clone, Debug)]
pub struct PortConf {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    pub mtu: u16,
    pub promiscuous: bool,
}

/// What the device says it can do.
#[derive(Clone, Debug)]
pub struct PortInfo {
    pub driver: String,
    pub max_rx_queues: u16,
    pub max_tx_queues: u16,
    /// RSS hash types the device supports (0: no RSS).
    pub rss_offloads: u64,
    pub reta_size: u16,
    pub hash_key_size: u8,
    pub min_mtu: u16,
    pub max_mtu: u16,
    /// NUMA socket; -1 when unknown (virtual devices).
    pub socket: i32,
}

/// How the port ended up configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PortSetup {
    pub rx_queues: u16,
    pub tx_queues: u16,
    pub rx_descriptors: u16,
    pub tx_descriptors: u16,
    /// RSS spreads received flows over the rx queues.
    pub rss: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct LinkStatus {
    pub up: bool,
    pub speed_mbps: u32,
}

fn check(call: impl FnOnce() -> String, ret: i32) -> Result<(), DpdkError> {
    if ret < 0 {
        Err(DpdkError::new(call(), ret))
    } else {
        Ok(())
    }
}

impl Port {
    /// The port DPDK created for a device: a vdev's name (`net_af_packet0`) or a PCI address.
    pub fn by_name(name: &str) -> Result<Port, DpdkError> {
        let cname = CString::new(name).map_err(|_| DpdkError::new("port name has a NUL byte", 22))?;
        let mut id = 0u16;
        // SAFETY: valid C string and out-pointer.
        let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(cname.as_ptr(), &mut id) };
        check(|| format!("rte_eth_dev_get_port_by_name({name})"), ret)?;
        Ok(Port(id))
    }

    /// Makes a virtual device after the EAL started (a port's kernel interface: net_tap or
    /// virtio_user) from its vdev string (`name,args`), and returns its port.
    pub fn create_vdev(vdev: &str) -> Result<Port, DpdkError> {
        let (name, args) = vdev.split_once(',').unwrap_or((vdev, ""));
        let nul = || DpdkError::new("vdev string has a NUL byte", 22);
        let (cname, cargs) = (CString::new(name).map_err(|_| nul())?, CString::new(args).map_err(|_| nul())?);
        // SAFETY: valid C strings; the EAL is initialised (the caller holds it). Hotplug
        // through the EAL: the vdev bus library is a driver that ferrovs does not link.
        let ret = unsafe { dpdk_sys::rte_eal_hotplug_add(c"vdev".as_ptr(), cname.as_ptr(), cargs.as_ptr()) };
        check(|| format!("rte_eal_hotplug_add(vdev, {vdev})"), ret)?;
        Port::by_name(name)
    }

    /// Removes a virtual device `create_vdev` made; its port must be closed.
    pub fn remove_vdev(name: &str) {
        let Ok(cname) = CString::new(name) else { return };
        // SAFETY: valid C string; the device's port is closed and no worker uses it.
        unsafe { dpdk_sys::rte_eal_hotplug_remove(c"vdev".as_ptr(), cname.as_ptr()) };
    }

    #[inline]
    pub fn id(self) -> u16 {
        self.0
    }

    pub fn info(self) -> Result<PortInfo, DpdkError> {
        let mut info = dpdk_sys::rte_eth_dev_info::default();
        // SAFETY: valid out-pointer; DPDK checks the port id.
        let ret = unsafe { dpdk_sys::rte_eth_dev_info_get(self.0, &mut info) };
        check(|| format!("rte_eth_dev_info_get(port {})", self.0), ret)?;
        let driver = if info.driver_name.is_null() {
            String::from("unknown")
        } else {
            // SAFETY: driver_name is a static NUL-terminated string owned by the driver.
            unsafe { CStr::from_ptr(info.driver_name) }.to_string_lossy().into_owned()
        };
        // SAFETY: plain query on a valid port id.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(self.0) };
        Ok(PortInfo {
            driver,
            max_rx_queues: info.max_rx_queues,
            max_tx_queues: info.max_tx_queues,
            rss_offloads: info.flow_type_rss_offloads,
            reta_size: info.reta_size,
            hash_key_size: info.hash_key_size,
            min_mtu: info.min_mtu,
            max_mtu: info.max_mtu,
            socket,
        })
    }

    /// Configures queues, MTU and RSS. Rx queue q draws buffers from `rx_pools[q]`: the pool
    /// on the NUMA socket of the worker that polls it. The port must be stopped. Errors say
    /// what the device allows.
    pub fn configure(self, conf: &PortConf, rx_pools: &[&Mempool]) -> Result<PortSetup, String> {
        assert_eq!(rx_pools.len(), usize::from(conf.rx_queues), "one mempool per rx queue");
        let info = self.info().map_err(|e| e.to_string())?;
        if conf.rx_queues > info.max_rx_queues || conf.tx_queues > info.max_tx_queues {
            return Err(format!(
                "device (driver {}) has at most {} rx / {} tx queues, {} / {} needed (one per worker); \
                 for af_packet add qpairs=N to the device arguments",
                info.driver, info.max_rx_queues, info.max_tx_queues, conf.rx_queues, conf.tx_queues
            ));
        }
        if conf.mtu < info.min_mtu || conf.mtu > info.max_mtu {
            return Err(format!(
                "mtu {} is outside what the device allows ({}..={})",
                conf.mtu, info.min_mtu, info.max_mtu
            ));
        }
        let rss = conf.rx_queues > 1 && info.rss_offloads != 0;
        let mut eth_conf = dpdk_sys::rte_eth_conf::default();
        eth_conf.rxmode.mtu = u32::from(conf.mtu);
        if rss {
            eth_conf.rxmode.mq_mode = dpdk_sys::rte_eth_rx_mq_mode_RTE_ETH_MQ_RX_RSS;
            eth_conf.rx_adv_conf.rss_conf.rss_hf =
                (dpdk_sys::RTE_ETH_RSS_IP | dpdk_sys::RTE_ETH_RSS_TCP | dpdk_sys::RTE_ETH_RSS_UDP) & info.rss_offloads;
        }
        // SAFETY: eth_conf is a fully initialised rte_eth_conf; the port is stopped.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(self.0, conf.rx_queues, conf.tx_queues, &eth_conf) };
        check(|| "rte_eth_dev_configure".into(), ret).map_err(|e| e.to_string())?;
        let (mut rx_desc, mut tx_desc) = (conf.rx_descriptors, conf.tx_descriptors);
        // SAFETY: valid out-pointers; adjusts the counts to the device's limits.
        let ret = unsafe { dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.0, &mut rx_desc, &mut tx_desc) };
        check(|| "rte_eth_dev_adjust_nb_rx_tx_desc".into(), ret).map_err(|e| e.to_string())?;
        let socket = info.socket.max(0) as u32;
        for (q, pool) in (0..conf.rx_queues).zip(rx_pools) {
            // SAFETY: port configured with rx_queues queues; NULL rx_conf means the driver's
            // defaults; the pool outlives the port (the daemon closes ports first).
            let ret = unsafe {
                dpdk_sys::rte_eth_rx_queue_setup(self.0, q, rx_desc, socket, std::ptr::null(), pool.as_ptr())
            };
            check(|| format!("rte_eth_rx_queue_setup(queue {q})"), ret).map_err(|e| e.to_string())?;
        }
        for q in 0..conf.tx_queues {
            // SAFETY: as above, NULL tx_conf means driver defaults.
            let ret = unsafe { dpdk_sys::rte_eth_tx_queue_setup(self.0, q, tx_desc, socket, std::ptr::null()) };
            check(|| format!("rte_eth_tx_queue_setup(queue {q})"), ret).map_err(|e| e.to_string())?;
        }
        Ok(PortSetup {
            rx_queues: conf.rx_queues,
            tx_queues: conf.tx_queues,
            rx_descriptors: rx_desc,
            tx_descriptors: tx_desc,
            rss,
        })
    }

    /// Spreads the RSS redirection table round robin over the first `queues` queues and
    /// reads back what the NIC now uses: its hash key and its table. Replies can then be
    /// steered by choosing ports whose hash lands on the right queue. Fails, saying why, when
    /// the device does not report both (then replies go over rings).
    pub fn rss_steering(self, queues: u16) -> Result<(Vec<u8>, Vec<u16>), String> {
        let info = self.info().map_err(|e| e.to_string())?;
        let size = usize::from(info.reta_size);
        if info.rss_offloads == 0 || size == 0 {
            return Err(format!("driver {} has no RSS redirection table", info.driver));
        }
        let group = dpdk_sys::RTE_ETH_RETA_GROUP_SIZE as usize;
        let mut table: Vec<dpdk_sys::rte_eth_rss_reta_entry64> = (0..size.div_ceil(group))
            .map(|g| {
                let mut e = dpdk_sys::rte_eth_rss_reta_entry64 { mask: u64::MAX, reta: [0; 64] };
                for (i, q) in e.reta.iter_mut().enumerate() {
                    *q = ((g * group + i) % usize::from(queues)) as u16;
                }
                e
            })
            .collect();
        // SAFETY: `table` holds size entries in groups of 64, as the call expects. A device
        // that cannot update keeps its own table, which the query below reads.
        unsafe { dpdk_sys::rte_eth_dev_rss_reta_update(self.0, table.as_mut_ptr(), info.reta_size) };
        for e in &mut table {
            e.mask = u64::MAX;
        }
        // SAFETY: as above; the device fills the masked entries.
        let ret = unsafe { dpdk_sys::rte_eth_dev_rss_reta_query(self.0, table.as_mut_ptr(), info.reta_size) };
        check(|| "rte_eth_dev_rss_reta_query".into(), ret).map_err(|e| e.to_string())?;
        let reta: Vec<u16> = table.iter().flat_map(|e| e.reta).take(size).collect();
        if let Some(q) = (0..queues).find(|q| !reta.contains(q)) {
            return Err(format!("the RSS redirection table sends nothing to queue {q}"));
        }
        // Devices that do not report a key size (virtual ones) use a 40-byte key.
        let mut key = vec![0u8; if info.hash_key_size == 0 { 40 } else { usize::from(info.hash_key_size) }];
        let mut conf =
            dpdk_sys::rte_eth_rss_conf { rss_key: key.as_mut_ptr(), rss_key_len: key.len() as u8, rss_hf: 0 };
        // SAFETY: rss_key points to rss_key_len writable bytes.
        let ret = unsafe { dpdk_sys::rte_eth_dev_rss_hash_conf_get(self.0, &mut conf) };
        check(|| "rte_eth_dev_rss_hash_conf_get".into(), ret).map_err(|e| e.to_string())?;
        key.truncate(usize::from(conf.rss_key_len).min(key.len()));
        if key.iter().all(|&b| b == 0) {
            return Err("the device reports an all-zero RSS key".into());
        }
        Ok((key, reta))
    }

    /// Whether the NIC takes the flow rule that local-port steering needs: TCP to one of our
    /// addresses whose destination port, masked to the worker count, names the queue.
    /// Validated only, nothing is installed. Err says why not (the driver's words).
    pub fn flow_steering_probe(self, queues: u16) -> Result<(), String> {
        if !queues.is_power_of_two() {
            return Err(format!("{queues} workers: port masks need a power of two"));
        }
        let mut attr = dpdk_sys::rte_flow_attr::default();
        attr.set_ingress(1);
        let mut ip_spec = dpdk_sys::rte_flow_item_ipv4::default();
        let mut ip_mask = dpdk_sys::rte_flow_item_ipv4::default();
        ip_spec.hdr.dst_addr = u32::from(std::net::Ipv4Addr::new(192, 0, 2, 1)).to_be();
        ip_mask.hdr.dst_addr = u32::MAX;
        let mut tcp_spec = dpdk_sys::rte_flow_item_tcp::default();
        let mut tcp_mask = dpdk_sys::rte_flow_item_tcp::default();
        tcp_spec.hdr.dst_port = 0;
        tcp_mask.hdr.dst_port = (queues - 1).to_be();
        let item = |type_, spec: *const std::ffi::c_void, mask: *const std::ffi::c_void| dpdk_sys::rte_flow_item {
            type_,
            spec,
            last: std::ptr::null(),
            mask,
        };
        let pattern = [
            item(dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_ETH, std::ptr::null(), std::ptr::null()),
            item(
                dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_IPV4,
                (&raw const ip_spec).cast(),
                (&raw const ip_mask).cast(),
            ),
            item(
                dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_TCP,
                (&raw const tcp_spec).cast(),
                (&raw const tcp_mask).cast(),
            ),
            item(dpdk_sys::rte_flow_item_type_RTE_FLOW_ITEM_TYPE_END, std::ptr::null(), std::ptr::null()),
        ];
        let queue = dpdk_sys::rte_flow_action_queue { index: 0 };
        let actions = [
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_QUEUE,
                conf: (&raw const queue).cast(),
            },
            dpdk_sys::rte_flow_action {
                type_: dpdk_sys::rte_flow_action_type_RTE_FLOW_ACTION_TYPE_END,
                conf: std::ptr::null(),
            },
        ];
        let mut error = dpdk_sys::rte_flow_error::default();
        // SAFETY: every pointer refers to a local that outlives the call; the lists end with END.
        let ret = unsafe { dpdk_sys::rte_flow_validate(self.0, &attr, pattern.as_ptr(), actions.as_ptr(), &mut error) };
        if ret == 0 {
            return Ok(());
        }
        let why = if error.message.is_null() {
            DpdkError::new("rte_flow_validate", ret).to_string()
        } else {
            // SAFETY: the driver's message is a static NUL-terminated string.
            unsafe { CStr::from_ptr(error.message) }.to_string_lossy().into_owned()
        };
        Err(why)
    }

    pub fn start(self, promiscuous: bool) -> Result<(), DpdkError> {
        // SAFETY: the port is configured.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(self.0) };
        check(|| format!("rte_eth_dev_start(port {})", self.0), ret)?;
        if promiscuous {
            // SAFETY: the port is started. Some virtual devices are always promiscuous and
            // return an error here: not a reason to fail.
            unsafe { dpdk_sys::rte_eth_promiscuous_enable(self.0) };
        }
        Ok(())
    }

    /// Stops the port; workers must no longer poll it.
    pub fn stop(self) {
        // SAFETY: valid port id; stopping a stopped port is harmless.
        unsafe { dpdk_sys::rte_eth_dev_stop(self.0) };
    }

    /// Releases the port; it must be stopped.
    pub fn close(self) {
        // SAFETY: valid port id, stopped, no worker uses it.
        unsafe { dpdk_sys::rte_eth_dev_close(self.0) };
    }

    pub fn mac(self) -> MacAddr {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: valid out-pointer.
        unsafe { dpdk_sys::rte_eth_macaddr_get(self.0, &mut addr) };
        MacAddr(addr.addr_bytes)
    }

    pub fn link(self) -> LinkStatus {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: valid out-pointer; the nowait variant does not block.
        unsafe { dpdk_sys::rte_eth_link_get_nowait(self.0, &mut link) };
        LinkStatus { up: link.link_status() != 0, speed_mbps: link.link_speed }
    }

    /// The NIC's own counters. Safe to read from the control thread while workers run.
    pub fn stats(self) -> PortStats {
        let mut s = dpdk_sys::rte_eth_stats::default();
        // SAFETY: valid out-pointer.
        unsafe { dpdk_sys::rte_eth_stats_get(self.0, &mut s) };
        PortStats {
            rx_packets: s.ipackets,
            rx_bytes: s.ibytes,
            tx_packets: s.opackets,
            tx_bytes: s.obytes,
            rx_missed: s.imissed,
            rx_errors: s.ierrors,
            tx_errors: s.oerrors,
            rx_nombuf: s.rx_nombuf,
        }
    }
}
