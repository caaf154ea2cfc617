//! The real `ferrovs` daemon on a net_pcap port, driven by the real `fvs`.
//!
//! Each test starts its own daemon (one at a time: DPDK wants one EAL per process and the
//! machine has few cores) with `hugepages: false`, so no hugepages are needed. Frames go in
//! through the rx pcap file and what ferrovs sends comes out in the tx pcap file, which the
//! tests compare byte for byte with replies they build themselves.
//!
//! Only with the `dpdk` feature: without it there is no `ferrovs` binary to start (and
//! `cargo test -p ctrl --no-default-features` runs the tests that need no DPDK).
#![cfg(feature = "dpdk")]

use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

/// One daemon at a time, even when the harness runs tests in parallel.
static LOCK: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    // A failed test poisons the lock; the next test is still independent.
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

const FERROVS: &str = env!("CARGO_BIN_EXE_ferrovs");
const FVS: &str = env!("CARGO_BIN_EXE_fvs");

/// How long the daemon may take to bring DPDK up and answer.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// How long it may take to stop after SIGTERM.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one `fvs` command may take (its own client timeout is 10 s).
const FVS_TIMEOUT: Duration = Duration::from_secs(15);

/// The MAC address net_pcap gives its first port.
const PCAP_MAC: [u8; 6] = [0x02, 0x70, 0x63, 0x61, 0x70, 0x00];
/// The client that talks to ferrovs in the pcap test.
const CLIENT_MAC: [u8; 6] = [0x02, 0xc1, 0x00, 0x00, 0x00, 0x02];

// ---------------------------------------------------------------------------------------
// Processes and files

/// A directory under /tmp named after the test and this process; removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let dir = PathBuf::from(format!("/tmp/fvs-it-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// What a finished (or killed) command left.
struct Outcome {
    /// None when it was killed for running too long.
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Outcome {
    fn describe(&self) -> String {
        format!("exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}---", self.code, self.took, self.stdout, self.stderr)
    }
}

/// Runs `cmd` to completion, killing it after `limit`.
fn run_bounded(mut cmd: Command, limit: Duration) -> Outcome {
    let start = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let reader = |mut pipe: Box<dyn Read + Send>| {
        thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            s
        })
    };
    let out = reader(Box::new(child.stdout.take().unwrap()));
    let err = reader(Box::new(child.stderr.take().unwrap()));
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        thread::sleep(Duration::from_millis(10));
    };
    let took = start.elapsed();
    Outcome { code, stdout: out.join().unwrap(), stderr: err.join().unwrap(), took }
}

/// `fvs --socket SOCKET ARGS...`.
fn fvs(socket: &Path, args: &[&str]) -> Outcome {
    let mut cmd = Command::new(FVS);
    cmd.arg("--socket").arg(socket).args(args);
    run_bounded(cmd, FVS_TIMEOUT)
}

/// `fvs --json ARGS...`, which must succeed; the parsed output.
fn fvs_json(socket: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = fvs(socket, &all);
    assert_eq!(out.code, Some(0), "fvs {all:?} failed: {}", out.describe());
    serde_json::from_str(&out.stdout)
        .unwrap_or_else(|e| panic!("fvs {all:?} printed no JSON ({e}): {}", out.describe()))
}

/// Sends SIGTERM to `pid` (no libc::kill: this crate has no unsafe).
fn sigterm(pid: u32) {
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// A running ferrovs; stopped (SIGTERM, then SIGKILL) when dropped.
struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    stderr_path: PathBuf,
}

impl Daemon {
    /// Starts `ferrovs -c config` and waits until its API answers `fvs link show`.
    fn start(config: &Path, socket: &Path, dir: &Path) -> Daemon {
        Daemon::start_env(config, socket, dir, &[])
    }

    /// As `start`, with these environment variables set for ferrovs, and WATCHDOG_PID its pid
    /// as systemd sets it (through a shell that execs ferrovs, so the pid is known before).
    fn start_env(config: &Path, socket: &Path, dir: &Path, env: &[(&str, &str)]) -> Daemon {
        let stderr_path = dir.join("ferrovs.stderr");
        let stderr = fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(FERROVS);
        if !env.is_empty() {
            cmd = Command::new("sh");
            cmd.args(["-c", "export WATCHDOG_PID=$$; exec \"$@\"", "sh", FERROVS]);
        }
        let child = cmd
            .envs(env.iter().copied())
            .arg("-c")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FERROVS}: {e}"));
        let mut daemon = Daemon { child: Some(child), socket: socket.to_path_buf(), stderr_path };
        let start = Instant::now();
        loop {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                daemon.child = None;
                panic!("ferrovs exited during start-up with {status}; stderr:\n{}", daemon.stderr());
            }
            // The socket is bound before DPDK starts but answered only once it runs.
            if daemon.stderr().contains("ferrovs running") {
                let out = fvs(socket, &["link", "show"]);
                if out.code == Some(0) {
                    break;
                }
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "ferrovs did not answer `fvs link show` within {START_TIMEOUT:?}; stderr:\n{}",
                daemon.stderr()
            );
            thread::sleep(Duration::from_millis(50));
        }
        daemon
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("daemon already stopped").id()
    }

    fn stderr(&self) -> String {
        fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM, then the exit status; None if it had to be killed.
    fn terminate(&mut self) -> Option<ExitStatus> {
        let mut child = self.child.take()?;
        sigterm(child.id());
        let start = Instant::now();
        while start.elapsed() < STOP_TIMEOUT {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        None
    }

    /// Stops the daemon, which must exit 0 by itself within STOP_TIMEOUT.
    fn stop(mut self) {
        let pid = self.pid();
        match self.terminate() {
            Some(status) => assert!(
                status.success(),
                "ferrovs (pid {pid}) exited with {status} after SIGTERM; stderr:\n{}",
                self.stderr()
            ),
            None => panic!(
                "ferrovs (pid {pid}) did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed); stderr:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let running = self.child.is_some();
        if running {
            let _ = self.terminate();
        }
        if thread::panicking() {
            eprintln!("--- ferrovs stderr ({}):\n{}---", self.socket.display(), self.stderr());
        }
    }
}

/// The config every daemon test uses: one net_pcap port with an IPv4 and an IPv6 address.
fn pcap_config(dir: &Path, tag: &str) -> (String, String, PathBuf) {
    let prefix = format!("fvs-it-{}-{tag}", std::process::id());
    let socket = dir.join("fvs.sock");
    let d = dir.display();
    let yaml = format!(
        "eal: {{ file_prefix: {prefix}, hugepages: false, memory_mb: 128 }}\n\
         workers: {{ lcores: [1] }}\n\
         mempool: {{ mbufs: 2047, cache_size: 64 }}\n\
         ports:\n  - {{ name: dp0, device: \"net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap\" }}\n\
         addresses:\n  - {{ port: dp0, addr: 192.0.2.1/24 }}\n  - {{ port: dp0, addr: 2001:db8:1::1/64 }}\n\
         api: {{ socket: {} }}\n",
        socket.display()
    );
    (yaml, prefix, socket)
}

/// Asserts that the daemon with EAL file prefix `prefix` left nothing behind.
fn assert_nothing_left(prefix: &str, socket: &Path) {
    assert!(!socket.exists(), "the API socket {} is still there", socket.display());
    let runtime = Path::new("/var/run/dpdk").join(prefix);
    assert!(!runtime.exists(), "the DPDK runtime dir {} is still there", runtime.display());
    if let Ok(entries) = fs::read_dir("/dev/hugepages") {
        let left: Vec<String> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(prefix))
            .collect();
        assert!(left.is_empty(), "hugepage files left in /dev/hugepages: {left:?}");
    }
}

// ---------------------------------------------------------------------------------------
// pcap files

fn write_pcap(path: &Path, frames: &[Vec<u8>]) {
    let mut out = Vec::new();
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // magic, microseconds
    out.extend_from_slice(&2u16.to_le_bytes()); // version 2.4
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&1u32.to_le_bytes()); // LINKTYPE_ETHERNET
    for (i, f) in frames.iter().enumerate() {
        out.extend_from_slice(&1_700_000_000u32.to_le_bytes()); // ts_sec
        out.extend_from_slice(&(i as u32 * 1000).to_le_bytes()); // ts_usec
        out.extend_from_slice(&(f.len() as u32).to_le_bytes()); // incl_len
        out.extend_from_slice(&(f.len() as u32).to_le_bytes()); // orig_len
        out.extend_from_slice(f);
    }
    fs::write(path, out).unwrap();
}

/// The frames of a little-endian pcap file (microsecond or nanosecond timestamps).
fn read_pcap(path: &Path) -> Vec<Vec<u8>> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    assert!(data.len() >= 24, "{} is {} bytes, no pcap header", path.display(), data.len());
    let u32_at = |at: usize| u32::from_le_bytes(data[at..at + 4].try_into().unwrap());
    let magic = u32_at(0);
    assert!(magic == 0xa1b2_c3d4 || magic == 0xa1b2_3c4d, "{}: unexpected pcap magic {magic:#x}", path.display());
    assert_eq!(u32_at(20), 1, "{}: link type is not Ethernet", path.display());
    let mut frames = Vec::new();
    let mut at = 24;
    while at < data.len() {
        assert!(at + 16 <= data.len(), "{}: truncated record header", path.display());
        let (incl, orig) = (u32_at(at + 8) as usize, u32_at(at + 12) as usize);
        assert_eq!(incl, orig, "{}: frame {} was cut by the snap length", path.display(), frames.len());
        at += 16;
        assert!(at + incl <= data.len(), "{}: truncated frame", path.display());
        frames.push(data[at..at + incl].to_vec());
        at += incl;
    }
    frames
}

// ---------------------------------------------------------------------------------------
// Frames, built here independently of ferrovs's wire module

/// The Internet checksum (RFC 1071) of `parts` concatenated (each part of even length but
/// the last).
fn inet_checksum(parts: &[&[u8]]) -> u16 {
    let bytes: Vec<u8> = parts.concat();
    let mut sum: u32 = 0;
    for chunk in bytes.chunks(2) {
        let word = u16::from_be_bytes([chunk[0], *chunk.get(1).unwrap_or(&0)]);
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn pad60(mut frame: Vec<u8>) -> Vec<u8> {
    if frame.len() < 60 {
        frame.resize(60, 0);
    }
    frame
}

fn arp(op: u16, sha: [u8; 6], spa: Ipv4Addr, tha: [u8; 6], tpa: Ipv4Addr) -> Vec<u8> {
    let mut p = vec![0x00, 0x01, 0x08, 0x00, 6, 4];
    p.extend_from_slice(&op.to_be_bytes());
    p.extend_from_slice(&sha);
    p.extend_from_slice(&spa.octets());
    p.extend_from_slice(&tha);
    p.extend_from_slice(&tpa.octets());
    p
}

/// An IPv4 packet (20-byte header, DF set, identification 0xabcd) with its checksum.
fn ipv4(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let total = (20 + payload.len()) as u16;
    let mut h = vec![0x45, 0x00];
    h.extend_from_slice(&total.to_be_bytes());
    h.extend_from_slice(&[0xab, 0xcd, 0x40, 0x00, ttl, protocol, 0, 0]);
    h.extend_from_slice(&src.octets());
    h.extend_from_slice(&dst.octets());
    let c = inet_checksum(&[&h]);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h.extend_from_slice(payload);
    h
}

/// An ICMP (v4) echo message with its checksum.
fn icmp4_echo(msg_type: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let c = inet_checksum(&[&m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    m
}

/// An IPv6 packet carrying the ICMPv6 message `icmp` (checksum field at 2..4 zero), with
/// the ICMPv6 checksum over the pseudo-header filled in.
fn ipv6_icmp(src: Ipv6Addr, dst: Ipv6Addr, hop_limit: u8, icmp: &[u8]) -> Vec<u8> {
    let len = icmp.len() as u32;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, 58]);
    let mut m = icmp.to_vec();
    m[2..4].fill(0);
    let c = inet_checksum(&[&pseudo, &m]);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(len as u16).to_be_bytes());
    p.extend_from_slice(&[58, hop_limit]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&m);
    p
}

/// A neighbour solicitation (135) or advertisement (136) with one link-layer option.
fn ndisc(msg_type: u8, flags: u8, target: Ipv6Addr, option: u8, mac: [u8; 6]) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0, flags, 0, 0, 0];
    m.extend_from_slice(&target.octets());
    m.extend_from_slice(&[option, 1]);
    m.extend_from_slice(&mac);
    m
}

fn icmp6_echo(msg_type: u8, id: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type, 0, 0, 0];
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    m
}

/// Lines of hex, 16 bytes each, for failure messages.
fn hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .enumerate()
        .map(|(i, c)| {
            let h: Vec<String> = c.iter().map(|b| format!("{b:02x}")).collect();
            format!("  {:04x}: {}\n", i * 16, h.join(" "))
        })
        .collect()
}

fn assert_frame(n: usize, what: &str, got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!(
            "tx frame {n} ({what}) differs from the expected reply: {} bytes, want {}, first difference at byte {first}\ngot:\n{}want:\n{}",
            got.len(),
            want.len(),
            hex(got),
            hex(want)
        );
    }
}

/// `fvs --json stats` totals.
fn totals(socket: &Path) -> Value {
    fvs_json(socket, &["stats"])["total"].clone()
}

fn counter(total: &Value, name: &str) -> u64 {
    total[name].as_u64().unwrap_or_else(|| panic!("no counter {name} in {total}"))
}

// ---------------------------------------------------------------------------------------
// Tests

#[test]
fn pcap_frames_get_exact_replies() {
    let _guard = lock();
    let dir = TempDir::new("pcap");
    let (yaml, prefix, socket) = pcap_config(dir.path(), "pcap");
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();

    let us4: Ipv4Addr = "192.0.2.1".parse().unwrap();
    let client4: Ipv4Addr = "192.0.2.2".parse().unwrap();
    let us6: Ipv6Addr = "2001:db8:1::1".parse().unwrap();
    let client6: Ipv6Addr = "2001:db8:1::2".parse().unwrap();
    let solicited: Ipv6Addr = "ff02::1:ff00:1".parse().unwrap();
    let solicited_mac = [0x33, 0x33, 0xff, 0x00, 0x00, 0x01];
    let ping_data: Vec<u8> = (0..56u8).map(|i| i.wrapping_mul(7).wrapping_add(0x10)).collect();
    let ping6_data: Vec<u8> = (0..32u8).map(|i| 0xa0 ^ i).collect();

    // (a) who-has 192.0.2.1 tell 192.0.2.2, padded to 60 bytes.
    let arp_request = pad60(ethernet([0xff; 6], CLIENT_MAC, 0x0806, &arp(1, CLIENT_MAC, client4, [0; 6], us4)));
    // (b) ping 192.0.2.1, TTL 63 so the reply's 64 is visibly ferrovs's own.
    let echo_request =
        ethernet(PCAP_MAC, CLIENT_MAC, 0x0800, &ipv4(client4, us4, 63, 1, &icmp4_echo(8, 0x1234, 1, &ping_data)));
    assert_eq!(echo_request.len(), 98);
    // (c) an IPv4 frame cut after 10 bytes of header.
    let full = ipv4(client4, us4, 64, 1, &icmp4_echo(8, 0x1234, 2, &[0; 8]));
    let truncated = ethernet(PCAP_MAC, CLIENT_MAC, 0x0800, &full[..10]);
    assert_eq!(truncated.len(), 24);
    // (d) a well-formed ping, but to someone else's MAC.
    let other_mac = pad60(ethernet(
        [0x02, 0xc1, 0x00, 0x00, 0x00, 0x99],
        CLIENT_MAC,
        0x0800,
        &ipv4(client4, us4, 64, 1, &icmp4_echo(8, 0x1234, 3, &[0; 8])),
    ));
    // (e) neighbour solicitation for 2001:db8:1::1 to its solicited-node group.
    let ns = ethernet(
        solicited_mac,
        CLIENT_MAC,
        0x86dd,
        &ipv6_icmp(client6, solicited, 255, &ndisc(135, 0, us6, 1, CLIENT_MAC)),
    );
    assert_eq!(ns.len(), 86);
    // (f) ping6 2001:db8:1::1, hop limit 60.
    let echo6_request =
        ethernet(PCAP_MAC, CLIENT_MAC, 0x86dd, &ipv6_icmp(client6, us6, 60, &icmp6_echo(128, 0x4321, 7, &ping6_data)));
    write_pcap(&dir.join("in.pcap"), &[arp_request, echo_request, truncated, other_mac, ns, echo6_request]);

    // What must come out, in this order.
    let want: [(&str, Vec<u8>); 4] = [
        ("ARP reply", pad60(ethernet(CLIENT_MAC, PCAP_MAC, 0x0806, &arp(2, PCAP_MAC, us4, CLIENT_MAC, client4)))),
        (
            "ICMP echo reply",
            ethernet(CLIENT_MAC, PCAP_MAC, 0x0800, &ipv4(us4, client4, 64, 1, &icmp4_echo(0, 0x1234, 1, &ping_data))),
        ),
        (
            "neighbour advertisement",
            ethernet(
                CLIENT_MAC,
                PCAP_MAC,
                0x86dd,
                // Solicited and override, target link-layer address option.
                &ipv6_icmp(us6, client6, 255, &ndisc(136, 0x60, us6, 2, PCAP_MAC)),
            ),
        ),
        (
            "ICMPv6 echo reply",
            ethernet(
                CLIENT_MAC,
                PCAP_MAC,
                0x86dd,
                &ipv6_icmp(us6, client6, 64, &icmp6_echo(129, 0x4321, 7, &ping6_data)),
            ),
        ),
    ];

    let daemon = Daemon::start(&config, &socket, dir.path());

    let links = fvs_json(&socket, &["link", "show"]);
    assert_eq!(
        links[0]["mac"], "02:70:63:61:70:00",
        "the tests assume net_pcap's first port has MAC 02:70:63:61:70:00: {links}"
    );
    assert_eq!(links[0]["name"], "dp0");

    // Every frame of in.pcap is read once; wait for all six to be handled.
    let start = Instant::now();
    let total = loop {
        let total = totals(&socket);
        if counter(&total, "rx_packets") == 6 && counter(&total, "tx_packets") == 4 {
            break total;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "after 10 s rx_packets/tx_packets are {}/{}, want 6/4; counters: {total}",
            counter(&total, "rx_packets"),
            counter(&total, "tx_packets")
        );
        thread::sleep(Duration::from_millis(50));
    };
    for (name, value) in [
        ("arp_requests_in", 1),
        ("arp_replies_out", 1),
        ("icmp_echo_requests_in", 2),
        ("icmp_echo_replies_out", 2),
        ("nd_solicits_in", 1),
        ("nd_adverts_out", 1),
        ("drop_malformed_ipv4", 1),
        ("drop_other_mac", 1),
        ("arp_requests_out", 0),
        ("nd_solicits_out", 0),
    ] {
        assert_eq!(counter(&total, name), value, "counter {name}; all counters: {total}");
    }
    // Exactly the two drops above, nothing else dropped.
    let drops: u64 = total
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("drop_"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(drops, 2, "drop counters: {total}");

    let neighs = fvs_json(&socket, &["neigh", "show"]);
    for addr in ["192.0.2.2", "2001:db8:1::2"] {
        let entries: Vec<&Value> = neighs.as_array().unwrap().iter().filter(|n| n["addr"] == addr).collect();
        assert_eq!(entries.len(), 1, "neighbour {addr} once (one worker): {neighs}");
        let n = entries[0];
        assert_eq!(n["mac"], "02:c1:00:00:00:02", "neighbour {addr}: {n}");
        assert_eq!(n["state"], "reachable", "neighbour {addr}: {n}");
        assert_eq!(n["port"], "dp0", "neighbour {addr}: {n}");
    }
    assert_eq!(neighs.as_array().unwrap().len(), 2, "{neighs}");

    let links = fvs_json(&socket, &["link", "show", "-s"]);
    let stats = &links[0]["stats"];
    assert_eq!(stats["rx_packets"], 6, "port stats: {stats}");

    let pid = daemon.pid();
    daemon.stop();
    eprintln!("ferrovs pid {pid} exited 0 after SIGTERM");

    let frames = read_pcap(&dir.join("out.pcap"));
    assert_eq!(
        frames.len(),
        want.len(),
        "out.pcap holds {} frames, want {}:\n{}",
        frames.len(),
        want.len(),
        frames.iter().map(|f| hex(f)).collect::<Vec<_>>().join("--\n")
    );
    for (n, (got, (what, want))) in frames.iter().zip(&want).enumerate() {
        assert_frame(n, what, got, want);
    }

    assert_nothing_left(&prefix, &socket);
}

/// A port that refuses every frame (a memif server no client ever connects to) next to a
/// pcap port: ferrovs' `tx_packets` and `tx_bytes` count what the ports took, so they equal
/// the ports' own counters, and what was refused counts only as `drop_tx_full`.
#[test]
fn tx_packets_count_only_what_the_ports_took() {
    let _guard = lock();
    let dir = TempDir::new("txfull");
    let prefix = format!("fvs-it-{}-txfull", std::process::id());
    let socket = dir.join("fvs.sock");
    let d = dir.path().display();
    let yaml = format!(
        "eal: {{ file_prefix: {prefix}, hugepages: false, memory_mb: 128 }}\n\
         workers: {{ lcores: [1] }}\n\
         mempool: {{ mbufs: 2047, cache_size: 64 }}\n\
         ports:\n  - {{ name: dp0, device: \"net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap\" }}\n  \
           - {{ name: dp1, device: \"net_memif0,role=server,socket={d}/memif.sock,socket-abstract=no\" }}\n\
         addresses:\n  - {{ port: dp0, addr: 192.0.2.1/24 }}\n  - {{ port: dp1, addr: 198.51.100.1/24 }}\n\
         api: {{ socket: {} }}\n",
        socket.display()
    );
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();
    let (us, client, far): (Ipv4Addr, Ipv4Addr, Ipv4Addr) =
        ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap(), "198.51.100.9".parse().unwrap());
    // An ARP request, answered on dp0 (taken), and an echo request from a host on dp1's
    // network: its reply waits for ARP on dp1, whose requests dp1 refuses.
    let arp_request = pad60(ethernet([0xff; 6], CLIENT_MAC, 0x0806, &arp(1, CLIENT_MAC, client, [0; 6], us)));
    let echo = ethernet(PCAP_MAC, CLIENT_MAC, 0x0800, &ipv4(far, us, 64, 1, &icmp4_echo(8, 1, 1, b"refused")));
    write_pcap(&dir.join("in.pcap"), &[arp_request, echo]);
    let daemon = Daemon::start(&config, &socket, dir.path());

    // dp1 refuses the request and its re-probes until the neighbour gives up (3 requests,
    // a second apart); then nothing more is sent.
    let start = Instant::now();
    let total = loop {
        let total = totals(&socket);
        if counter(&total, "rx_packets") == 2 && counter(&total, "drop_neigh_unresolved") == 1 {
            break total;
        }
        assert!(start.elapsed() < Duration::from_secs(15), "after 15 s: {total}");
        thread::sleep(Duration::from_millis(50));
    };
    let links = fvs_json(&socket, &["link", "show", "-s"]);
    let link_sum =
        |name: &str| links.as_array().unwrap().iter().map(|l| l["stats"][name].as_u64().unwrap()).sum::<u64>();
    assert_eq!((link_sum("tx_packets"), link_sum("tx_bytes")), (1, 60), "the ARP reply only: {links}");
    assert_eq!(
        (counter(&total, "tx_packets"), counter(&total, "tx_bytes")),
        (link_sum("tx_packets"), link_sum("tx_bytes")),
        "ferrovs' tx counters against the ports' ({links}): {total}"
    );
    assert_eq!(counter(&total, "arp_requests_out"), 3, "{total}");
    assert_eq!(counter(&total, "drop_tx_full"), 3, "each request refused: {total}");
    daemon.stop();
    assert_nothing_left(&prefix, &socket);
}

/// Under systemd (`Type=notify`): READY=1 once the API answers, WATCHDOG=1 at half of
/// WATCHDOG_USEC, STOPPING=1 on SIGTERM; the messages go to NOTIFY_SOCKET, here the test's.
#[test]
fn systemd_readiness_watchdog_and_stopping() {
    use std::os::unix::net::UnixDatagram;
    let _guard = lock();
    let dir = TempDir::new("notify");
    let (yaml, prefix, socket) = pcap_config(dir.path(), "notify");
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();
    write_pcap(&dir.join("in.pcap"), &[]);
    let notify_path = dir.join("notify.sock");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let recv = || {
        let mut buf = [0u8; 512];
        notify.recv(&mut buf).ok().map(|n| String::from_utf8_lossy(&buf[..n]).into_owned())
    };
    // 400 ms: a ping every 200 ms.
    let env = [("NOTIFY_SOCKET", notify_path.to_str().unwrap()), ("WATCHDOG_USEC", "400000")];
    let mut daemon = Daemon::start_env(&config, &socket, dir.path(), &env);
    let ready = recv().expect("no READY=1 from ferrovs");
    assert_eq!(ready, "READY=1\nSTATUS=1 ports, 1 workers\n");
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(1100) {
        assert_eq!(recv().as_deref(), Some("WATCHDOG=1\n"));
        pings += 1;
    }
    assert!((4..=7).contains(&pings), "{pings} watchdog pings in {:?}", start.elapsed());
    let status = daemon.terminate().expect("ferrovs did not stop on SIGTERM");
    assert!(status.success(), "{status}");
    let mut last = Vec::new();
    while let Some(m) = recv() {
        last.push(m);
    }
    assert_eq!(last.last().map(String::as_str), Some("STOPPING=1\nSTATUS=stopping\n"), "{last:?}");
    assert_nothing_left(&prefix, &socket);
}

#[test]
fn bad_config_is_refused_with_the_field_named() {
    let _guard = lock();
    let dir = TempDir::new("badcfg");
    let (good, _prefix, socket) = pcap_config(dir.path(), "badcfg");
    write_pcap(&dir.join("in.pcap"), &[]);
    let d = dir.path().display().to_string();
    let device = format!("net_pcap0,rx_pcap={d}/in.pcap,tx_pcap={d}/out.pcap");
    let device_line = format!("  - {{ name: dp0, device: \"{device}\" }}\n");

    // (name, config text, what stderr must contain besides the file path)
    let cases: Vec<(&str, String, Vec<&str>)> = vec![
        ("unknown-key", format!("{good}portz: []\n"), vec!["portz: unknown field `portz`", "did you mean `ports`?"]),
        (
            "address-port",
            good.replace("{ port: dp0, addr: 192.0.2.1/24 }", "{ port: dp9, addr: 192.0.2.1/24 }"),
            vec!["addresses[0].port: no port named 'dp9' (ports are: dp0)"],
        ),
        (
            "route-via",
            format!("{good}routes:\n  - {{ prefix: 203.0.113.0/24, via: 198.51.100.300 }}\n"),
            vec!["routes[0].via: invalid IP address syntax"],
        ),
        (
            "main-lcore",
            good.replace("lcores: [1]", "lcores: [0]"),
            vec!["workers.lcores[0]: lcore 0 is eal.main_lcore"],
        ),
        (
            "mtu",
            good.replace(&device_line, &format!("  - {{ name: dp0, device: \"{device}\", mtu: 20 }}\n")),
            vec!["ports[0].mtu: 20 is out of range, must be 68..=9600"],
        ),
        (
            "device",
            good.replace(&device_line, "  - { name: dp0, device: eth0 }\n"),
            vec!["ports[0].device: 'eth0' is neither a DPDK vdev"],
        ),
    ];
    for (name, text, wants) in &cases {
        assert_ne!(text, &good, "case {name} did not change the config");
        let path = dir.join(&format!("{name}.yaml"));
        fs::write(&path, text).unwrap();
        let mut cmd = Command::new(FERROVS);
        cmd.arg("-c").arg(&path);
        let out = run_bounded(cmd, Duration::from_secs(5));
        let what = format!("case {name}: {}\nconfig:\n{text}", out.describe());
        assert_ne!(out.code, None, "ferrovs took more than 5 s to refuse a bad config; {what}");
        assert_eq!(out.code, Some(2), "{what}");
        let prefix = format!("ferrovs: {}: ", path.display());
        assert!(out.stderr.starts_with(&prefix), "stderr does not start with {prefix:?}; {what}");
        for want in wants {
            assert!(out.stderr.contains(want), "stderr lacks {want:?}; {what}");
        }
        assert!(!out.stderr.contains("EAL"), "DPDK was started; {what}");
        assert!(!socket.exists(), "the API socket was created; {what}");
        assert!(out.took < Duration::from_secs(5));
    }

    // The good config passes --check, so the cases above fail for their own reason.
    let good_path = dir.join("good.yaml");
    fs::write(&good_path, &good).unwrap();
    let mut cmd = Command::new(FERROVS);
    cmd.arg("-c").arg(&good_path).arg("--check");
    let out = run_bounded(cmd, Duration::from_secs(5));
    assert_eq!(out.code, Some(0), "the base config is refused: {}", out.describe());

    let mut cmd = Command::new(FERROVS);
    cmd.args(["-c", "/nonexistent.yaml"]);
    let out = run_bounded(cmd, Duration::from_secs(5));
    assert_eq!(out.code, Some(2), "{}", out.describe());
    assert!(out.stderr.contains("/nonexistent.yaml: cannot read"), "{}", out.describe());
    assert!(!socket.exists());
}

/// `--check` makes the checks a start makes against this machine, with the same message;
/// `--for-other-machine` skips them and says so.
#[test]
fn check_makes_the_machine_checks_a_start_makes() {
    let dir = TempDir::new("check");
    let (good, _prefix, socket) = pcap_config(dir.path(), "check");
    let offline = dir.join("offline.yaml");
    fs::write(&offline, good.replace("lcores: [1]", "lcores: [999]")).unwrap();
    let good_path = dir.join("good.yaml");
    fs::write(&good_path, &good).unwrap();
    let ferrovs = |args: &[&str], config: &Path| {
        let mut cmd = Command::new(FERROVS);
        cmd.arg("-c").arg(config).args(args);
        run_bounded(cmd, Duration::from_secs(5))
    };

    let start = ferrovs(&[], &offline);
    assert_eq!(start.code, Some(1), "{}", start.describe());
    let line = start.stderr.lines().last().unwrap_or_default().to_string();
    assert!(
        line.starts_with("ferrovs: workers.lcores: 999 is not an online CPU of this machine (online: "),
        "{}",
        start.describe()
    );
    assert!(!start.stderr.contains("EAL:"), "DPDK was started: {}", start.describe());
    assert!(!socket.exists());

    let check = ferrovs(&["--check"], &offline);
    assert_eq!(check.code, Some(1), "{}", check.describe());
    assert_eq!(check.stderr, format!("{line}\n"), "--check and a start say different things");
    assert_eq!(check.stdout, "");

    let other = ferrovs(&["--check", "--for-other-machine"], &offline);
    assert_eq!(other.code, Some(0), "{}", other.describe());
    assert!(other.stdout.contains(": ok (config only)\n"), "{}", other.describe());
    assert!(
        other.stdout.contains("skipped (--for-other-machine): online CPUs for eal.main_lcore, workers.lcores"),
        "{}",
        other.describe()
    );
    assert!(other.stdout.contains("EAL arguments: ferrovs -l 0,999 "), "{}", other.describe());

    let here = ferrovs(&["--check"], &good_path);
    assert_eq!(here.code, Some(0), "{}", here.describe());
    assert!(here.stdout.contains("checked on this machine: online CPUs"), "{}", here.describe());
    assert!(!here.stdout.contains("skipped"), "{}", here.describe());

    // The flag means nothing without --check.
    let lone = ferrovs(&["--for-other-machine"], &good_path);
    assert_eq!(lone.code, Some(2), "{}", lone.describe());
    assert!(!socket.exists());
}

#[test]
fn bad_commands_change_nothing() {
    let _guard = lock();
    let dir = TempDir::new("cmds");
    let (yaml, prefix, socket) = pcap_config(dir.path(), "cmds");
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();
    write_pcap(&dir.join("in.pcap"), &[]);

    // A YAML syntax error on line 4 (a second mapping value on one line).
    let syntax_error = dir.join("syntax.yaml");
    fs::write(&syntax_error, "eal:\n  hugepages: false\nworkers:\n  lcores: [1]: 2\n").unwrap();
    // Valid, but another mtu: only a restart could apply it.
    let other_ports = dir.join("other-ports.yaml");
    let changed = yaml.replace("out.pcap\" }", "out.pcap\", mtu: 9000 }");
    assert_ne!(changed, yaml);
    fs::write(&other_ports, &changed).unwrap();

    let daemon = Daemon::start(&config, &socket, dir.path());
    let show = |what: &str| {
        let out = fvs(&socket, &["--json", what, "show"]);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        out.stdout
    };
    let addrs = show("addr");
    let routes = show("route");
    let addr_list: Value = serde_json::from_str(&addrs).unwrap();
    assert_eq!(
        addr_list,
        serde_json::json!([
            { "port": "dp0", "addr": "192.0.2.1/24" },
            { "port": "dp0", "addr": "2001:db8:1::1/64" }
        ])
    );

    let syntax = syntax_error.display().to_string();
    let other = other_ports.display().to_string();
    // Every reason the daemon refuses a change for, and that the refusal changes nothing, is
    // tested without DPDK in ctrl/src/state/tests.rs; these check the way through fvs.
    let cases: Vec<(Vec<&str>, i32, Vec<&str>)> = vec![
        (vec!["addr", "add", "192.0.2.9/24", "dev", "dp9"], 1, vec!["no port named 'dp9'"]),
        (
            vec!["route", "add", "203.0.113.0/24", "via", "198.51.100.300"],
            2,
            vec!["'198.51.100.300' is not an IP address"],
        ),
        (vec!["frobnicate"], 2, vec!["frobnicate"]),
        (vec!["apply", "-f", &syntax], 1, vec![&syntax, "line 4"]),
        (vec!["apply", "-f", &other], 1, vec![&other, "ports differ", "restart", "nothing was applied"]),
    ];
    for (args, code, wants) in &cases {
        let out = fvs(&socket, args);
        let what = format!("fvs {}: {}", args.join(" "), out.describe());
        assert_eq!(out.code, Some(*code), "{what}");
        for want in wants {
            assert!(out.stderr.contains(want), "stderr lacks {want:?}; {what}");
        }
        assert_eq!(out.stdout, "", "{what}");
        assert_eq!(show("addr"), addrs, "addresses changed after {what}");
        assert_eq!(show("route"), routes, "routes changed after {what}");
    }

    // Changes that are fine.
    for args in [
        &["addr", "add", "198.51.100.1/24", "dev", "dp0"][..],
        &["route", "add", "203.0.113.0/24", "via", "198.51.100.254"][..],
    ] {
        let out = fvs(&socket, args);
        assert_eq!(out.code, Some(0), "fvs {}: {}", args.join(" "), out.describe());
    }
    let addr_list: Value = serde_json::from_str(&show("addr")).unwrap();
    assert!(
        addr_list.as_array().unwrap().contains(&serde_json::json!({ "port": "dp0", "addr": "198.51.100.1/24" })),
        "{addr_list}"
    );
    let out = fvs(&socket, &["route", "show"]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert!(
        out.stdout.lines().any(|l| l == "203.0.113.0/24 via 198.51.100.254 dev dp0 proto static"),
        "route show:\n{}",
        out.stdout
    );
    assert!(out.stdout.lines().any(|l| l == "198.51.100.0/24 dev dp0 proto connected"), "route show:\n{}", out.stdout);

    // Applying the original config takes both back out.
    let applied = fvs_json(&socket, &["apply", "-f", &config.display().to_string()]);
    assert_eq!(
        applied["changes"],
        serde_json::json!(["addr del 198.51.100.1/24 dev dp0", "route del 203.0.113.0/24 via 198.51.100.254"]),
        "{applied}"
    );
    assert_eq!(show("addr"), addrs);
    assert_eq!(show("route"), routes);
    // And again: nothing left to change.
    let out = fvs(&socket, &["apply", "-f", &config.display().to_string()]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(out.stdout, "no changes\n");

    let out = fvs(&socket, &["stats"]);
    assert_eq!(out.code, Some(0), "the daemon stopped answering: {}", out.describe());

    daemon.stop();
    assert_nothing_left(&prefix, &socket);
}

#[test]
fn lb_commands_refused_change_nothing() {
    let _guard = lock();
    let dir = TempDir::new("lbcmds");
    let (yaml, prefix, socket) = pcap_config(dir.path(), "lbcmds");
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();
    write_pcap(&dir.join("in.pcap"), &[]);
    let daemon = Daemon::start(&config, &socket, dir.path());
    let run = |args: &[&str], code: i32| {
        let out = fvs(&socket, args);
        assert_eq!(out.code, Some(code), "fvs {}: {}", args.join(" "), out.describe());
        out
    };
    let state = || {
        (
            fvs_json(&socket, &["service", "show"]),
            fvs_json(&socket, &["snat", "show"]),
            fvs_json(&socket, &["addr", "show"]),
        )
    };

    run(&["service", "add", "tcp", "192.0.2.100:80", "mode", "dr"], 0);
    run(&["backend", "add", "tcp", "192.0.2.100:80", "192.0.2.11:80"], 0);
    run(&["service", "add", "tcp", "192.0.2.100:443", "mode", "tun", "encap", "gue"], 0);
    run(&["snat", "add", "source", "198.51.100.0/24", "out-port", "dp0", "address", "192.0.2.50"], 0);
    // The workers fill the new SNAT address's port pools after the publication, so `snat show`
    // can read 0 ports and then all of them: wait until two reads agree.
    let mut before = state();
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = state();
        if now == before {
            break;
        }
        before = now;
    }
    assert_eq!(before.0[1]["tunnel"], serde_json::json!({ "encap": "gue", "gue_port": 6080, "too_big": "icmp" }));
    let services = run(&["service", "show"], 0).stdout;
    assert!(services.contains("\nTCP  192.0.2.100:443   wlc       tun/gue:6080\n"), "{services}");
    let snat = run(&["snat", "show"], 0).stdout;
    assert!(snat.lines().nth(1).is_some_and(|l| l.starts_with("198.51.100.0/24  dp0      192.0.2.50")), "{snat}");

    // Every reason a change is refused for is tested without DPDK in ctrl/src/state/tests.rs;
    // these check the way through fvs and the daemon.
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["backend", "add", "tcp", "192.0.2.100:80", "203.0.113.9:80"],
            "fvs: service tcp 192.0.2.100:80 is in dr mode and backend 203.0.113.9 is not on a directly connected network (dr sends frames to the backend's MAC)\n",
        ),
        (
            vec!["backend", "add", "tcp", "192.0.2.100:80", "192.0.2.12:8080"],
            "fvs: service tcp 192.0.2.100:80 is in dr mode, which cannot change ports: backend port must be 80\n",
        ),
        (
            vec!["snat", "del", "source", "10.0.0.0/8", "out-port", "dp0"],
            "fvs: no SNAT rule source 10.0.0.0/8 out-port dp0 (see fvs snat show)\n",
        ),
    ];
    for (args, want) in &cases {
        let out = run(args, 1);
        assert_eq!(out.stderr, *want, "fvs {}", args.join(" "));
        assert_eq!(state(), before, "the state changed after fvs {}", args.join(" "));
    }

    // Applying the original config takes everything back out.
    let applied = fvs_json(&socket, &["apply", "-f", &config.display().to_string()]);
    assert_eq!(
        applied["changes"],
        serde_json::json!([
            "service del tcp 192.0.2.100:80",
            "service del tcp 192.0.2.100:443",
            "snat del source 198.51.100.0/24 out-port dp0"
        ]),
        "{applied}"
    );
    assert_eq!(fvs_json(&socket, &["snat", "show"]), serde_json::json!([]));

    daemon.stop();
    assert_nothing_left(&prefix, &socket);
}

/// An `fvs apply` refused while building its services (a local-address slot is still held by
/// a removed address) changes nothing at all: not the addresses it also brought, not the
/// routes, not the timeouts.
#[test]
fn refused_apply_changes_nothing() {
    let _guard = lock();
    let dir = TempDir::new("apply");
    let (yaml, prefix, socket) = pcap_config(dir.path(), "apply");
    // One local-address slot, and 192.0.2.50 holds it for the life of the process.
    let yaml = format!(
        "{yaml}connections: {{ max_laddrs: 1 }}\n\
         snat:\n  - {{ source: 198.51.100.0/24, out_port: dp0, addresses: [192.0.2.50] }}\n"
    );
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();
    write_pcap(&dir.join("in.pcap"), &[]);
    // Valid on its own (one local address), but 192.0.2.51 needs a second slot.
    let next = dir.join("next.yaml");
    let next_yaml = yaml
        .replace("addresses: [192.0.2.50]", "addresses: [192.0.2.51]")
        .replace("connections: { max_laddrs: 1 }", "connections: { max_laddrs: 1, timeouts: { udp: 7 } }")
        .replace(
            "  - { port: dp0, addr: 2001:db8:1::1/64 }\n",
            "  - { port: dp0, addr: 2001:db8:1::1/64 }\n  - { port: dp0, addr: 198.51.100.1/24 }\n",
        );
    assert_eq!(next_yaml.matches("198.51.100.1/24").count(), 1, "{next_yaml}");
    fs::write(&next, &next_yaml).unwrap();

    let daemon = Daemon::start(&config, &socket, dir.path());
    let state = || {
        // The rules and their addresses, without the port counters the worker fills in.
        let snat: Vec<(Value, Value, Vec<Value>)> = fvs_json(&socket, &["snat", "show"])
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let addrs = r["addresses"].as_array().unwrap().iter().map(|a| a["addr"].clone()).collect();
                (r["source"].clone(), r["out_port"].clone(), addrs)
            })
            .collect();
        (fvs_json(&socket, &["addr", "show"]), fvs_json(&socket, &["route", "show"]), snat)
    };
    let before = state();
    let next_path = next.display().to_string();
    let out = fvs(&socket, &["apply", "-f", &next_path]);
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert_eq!(
        out.stderr,
        format!("fvs: {next_path}: more than 1 local addresses (connections.max_laddrs)\n"),
        "{}",
        out.describe()
    );
    assert_eq!(state(), before, "a refused apply changed the running config");
    // Nothing was applied, so applying the original config finds nothing to change.
    let out = fvs(&socket, &["apply", "-f", &config.display().to_string()]);
    assert_eq!(out.code, Some(0), "{}", out.describe());
    assert_eq!(out.stdout, "no changes\n");

    daemon.stop();
    assert_nothing_left(&prefix, &socket);
}

#[test]
fn service_changes_are_counted_with_their_delay_to_all_workers() {
    const CHANGES: u64 = 50;
    let _guard = lock();
    let dir = TempDir::new("cfgvis");
    let (yaml, prefix, socket) = pcap_config(dir.path(), "cfgvis");
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();
    write_pcap(&dir.join("in.pcap"), &[]);
    let daemon = Daemon::start(&config, &socket, dir.path());
    let config_stats = || fvs_json(&socket, &["stats"])["config"].clone();
    let ok = |args: &[&str]| {
        let out = fvs(&socket, args);
        assert_eq!(out.code, Some(0), "fvs {}: {}", args.join(" "), out.describe());
        out.stdout
    };

    let at_start = config_stats();
    assert_eq!((&at_start["published"], &at_start["visible_last_us"]), (&Value::from(0), &Value::Null), "{at_start}");
    assert!(ok(&["stats"]).contains("\nconfig: 0 published\n"));

    ok(&["service", "add", "tcp", "192.0.2.100:80", "scheduler", "wrr"]);
    ok(&["backend", "add", "tcp", "192.0.2.100:80", "192.0.2.11:8080"]);
    let before = config_stats();
    assert_eq!(before["published"], 2, "{before}");
    for i in 0..CHANGES {
        // 2, 3, 2, ...: each differs from the backend's current weight (1 at first).
        let weight = (2 + i % 2).to_string();
        ok(&["backend", "set", "tcp", "192.0.2.100:80", "192.0.2.11:8080", "weight", &weight]);
    }
    // A refused change publishes nothing.
    let refused = fvs(&socket, &["backend", "set", "tcp", "192.0.2.100:80", "192.0.2.12:8080", "weight", "3"]);
    assert_ne!(refused.code, Some(0), "{}", refused.describe());

    let after = config_stats();
    let n = |v: &Value, field: &str| v[field].as_u64().unwrap_or_else(|| panic!("{field} in {v}"));
    let published = n(&after, "published");
    assert!(published >= n(&before, "published") + CHANGES, "{before} -> {after}");
    assert_eq!(n(&after, "not_visible"), 0, "a live worker took over the timeout: {after}");
    let buckets = after["visible_buckets"].as_array().expect("buckets");
    assert_eq!(buckets.len(), 6, "{after}");
    let counted: u64 = buckets.iter().map(|b| n(b, "count")).sum();
    assert_eq!(counted, published, "every publish is in the histogram: {after}");
    assert!(buckets.iter().any(|b| n(b, "count") > 0), "{after}");
    let (last, max, sum) = (n(&after, "visible_last_us"), n(&after, "visible_max_us"), n(&after, "visible_sum_us"));
    assert!(last <= max && max <= sum, "{after}");

    let text = ok(&["stats"]);
    assert!(text.contains(&format!("\nconfig: {published} published; visible on all workers after: last ")), "{text}");
    assert!(text.contains("\n    visible:  <10us  <100us  <1ms  <10ms  <100ms  >=100ms\n"), "{text}");

    daemon.stop();
    assert_nothing_left(&prefix, &socket);
}

/// Two workers on a port whose driver reports an RSS key and table (net_null) and one that
/// has neither (net_pcap): the start-up probe picks Toeplitz steering for the first, with the
/// key the driver reports and a table spread over both queues, and rings for the second.
#[test]
fn two_workers_steer_replies_by_what_each_port_offers() {
    let _guard = lock();
    let dir = TempDir::new("steer");
    let prefix = format!("fvs-it-{}-steer", std::process::id());
    let socket = dir.join("fvs.sock");
    let d = dir.path().display();
    // Both worker lcores on CPU 1 (a two-CPU machine has no more): this test only reads
    // state. net_pcap gets a queue per rx_pcap/tx_pcap pair.
    let yaml = format!(
        "eal: {{ file_prefix: {prefix}, hugepages: false, memory_mb: 128 }}\n\
         workers: {{ lcores: [1, 2], cpus: [1, 1], idle_sleep_us: 100 }}\n\
         mempool: {{ mbufs: 4095, cache_size: 64 }}\n\
         ports:\n  - {{ name: dp0, device: \"net_null0,no-rx=1\" }}\n  \
           - {{ name: dp1, device: \"net_pcap0,rx_pcap={d}/in.pcap,rx_pcap={d}/in.pcap,tx_pcap={d}/out0.pcap,tx_pcap={d}/out1.pcap\" }}\n\
         addresses:\n  - {{ port: dp0, addr: 192.0.2.1/24 }}\n\
         api: {{ socket: {} }}\n",
        socket.display()
    );
    let config = dir.join("ferrovs.yaml");
    fs::write(&config, &yaml).unwrap();
    write_pcap(&dir.join("in.pcap"), &[]);
    let daemon = Daemon::start(&config, &socket, dir.path());
    let links = fvs_json(&socket, &["link", "show"]);
    let by_name = |name: &str| links.as_array().unwrap().iter().find(|l| l["name"] == name).cloned().unwrap();
    let (null, pcap) = (by_name("dp0"), by_name("dp1"));
    assert_eq!(
        (&null["rx_queues"], &null["rss"], &null["steering"]),
        (&Value::from(2), &Value::from(true), &Value::from("toeplitz")),
        "{null}"
    );
    let detail = null["steering_detail"].as_str().unwrap();
    // net_null's default key is the well-known 40-byte one DPDK's drivers share.
    assert!(
        detail.contains(
            "rss key 6d5a56da255b0ec24167253d43a38fb0d0ca2bcbae7b30b477cb2da38030f20c6a42b73bbeac01fa reta 128 entries"
        ),
        "{detail}"
    );
    assert!(detail.starts_with("flow rules: not offered"), "{detail}");
    assert_eq!(pcap["steering"], "rings", "{pcap}");
    let text = fvs(&socket, &["link", "show"]).stdout;
    assert!(text.contains("\n    steering toeplitz (flow rules: not offered"), "{text}");
    assert!(text.contains("\n    steering rings (flow rules: not offered"), "{text}");
    let stats = fvs_json(&socket, &["stats"]);
    assert_eq!(stats["cores"].as_array().unwrap().len(), 2, "{stats}");
    daemon.stop();
    assert_nothing_left(&prefix, &socket);
}
