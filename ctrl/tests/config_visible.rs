//! The real `ferrovs` daemon counts every config snapshot it publishes and how long each took
//! to reach every worker, and reports both in `fvs stats`.
//!
//! Like tests/daemon.rs: `hugepages: false`, its own EAL file prefix, one worker; the port is
//! a net_null device (no files: nothing here looks at frames).

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use ctrl::client;
use ctrl::lbconf::{Protocol, ServiceKey};
use ctrl::proto::{ConfigStats, Request, Response, StatsInfo};

const FERROVS: &str = env!("CARGO_BIN_EXE_ferrovs");
const FVS: &str = env!("CARGO_BIN_EXE_fvs");
const START_TIMEOUT: Duration = Duration::from_secs(20);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// A running ferrovs in its own directory; stopped and cleaned up when dropped.
struct Daemon {
    child: Option<Child>,
    dir: PathBuf,
    socket: PathBuf,
}

impl Daemon {
    fn start(tag: &str) -> Daemon {
        let dir = PathBuf::from(format!("/tmp/fvs-it-{}-{tag}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let socket = dir.join("fvs.sock");
        let yaml = format!(
            "eal: {{ file_prefix: fvs-it-{}-{tag}, hugepages: false, memory_mb: 128 }}\n\
             workers: {{ lcores: [1] }}\n\
             mempool: {{ mbufs: 2047, cache_size: 64 }}\n\
             ports:\n  - {{ name: dp0, device: net_null0 }}\n\
             addresses:\n  - {{ port: dp0, addr: 192.0.2.1/24 }}\n\
             api: {{ socket: {} }}\n",
            std::process::id(),
            socket.display()
        );
        let config = dir.join("ferrovs.yaml");
        fs::write(&config, yaml).unwrap();
        let stderr = fs::File::create(dir.join("ferrovs.stderr")).unwrap();
        let child = Command::new(FERROVS)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {FERROVS}: {e}"));
        let mut daemon = Daemon {
            child: Some(child),
            dir,
            socket,
        };
        let start = Instant::now();
        loop {
            if let Some(status) = daemon.child.as_mut().unwrap().try_wait().unwrap() {
                daemon.child = None;
                panic!("ferrovs exited during start-up with {status}");
            }
            // The socket is bound before DPDK starts but answered only once it runs.
            if daemon.stderr().contains("ferrovs running") && daemon.call(&Request::Stats).is_ok() {
                return daemon;
            }
            assert!(
                start.elapsed() < START_TIMEOUT,
                "ferrovs did not answer within {START_TIMEOUT:?}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn stderr(&self) -> String {
        fs::read_to_string(self.dir.join("ferrovs.stderr")).unwrap_or_default()
    }

    /// One API request; the daemon's refusal as Err.
    fn call(&self, req: &Request) -> Result<serde_json::Value, String> {
        match client::call(&self.socket, req).map_err(|e| e.to_string())? {
            Response::Ok(v) => Ok(v),
            Response::Err(e) => Err(e),
        }
    }

    fn config_stats(&self) -> ConfigStats {
        let stats: StatsInfo = serde_json::from_value(self.call(&Request::Stats).unwrap()).unwrap();
        stats.config.expect("fvs stats has no config section")
    }

    fn fvs(&self, args: &[&str]) -> Output {
        Command::new(FVS)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap()
    }

    /// SIGTERM (no libc::kill: this crate has no unsafe), then the daemon must exit 0.
    fn stop(mut self) {
        let mut child = self.child.take().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > STOP_TIMEOUT {
                let _ = child.kill();
                panic!("ferrovs did not exit within {STOP_TIMEOUT:?} of SIGTERM (killed)");
            }
            thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "ferrovs exited with {status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if thread::panicking() {
            eprintln!("--- ferrovs stderr:\n{}---", self.stderr());
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn fvs_ok(daemon: &Daemon, args: &[&str]) -> String {
    let out = daemon.fvs(args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "fvs {args:?}: {}\n{stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn service_changes_are_counted_with_their_delay_to_all_workers() {
    const CHANGES: u64 = 50;
    let daemon = Daemon::start("cfgvis");
    let at_start = daemon.config_stats();
    assert_eq!(
        (at_start.published, at_start.visible_last_us),
        (0, None),
        "{at_start:?}"
    );
    assert!(fvs_ok(&daemon, &["stats"]).contains("\nconfig: 0 published\n"));

    fvs_ok(
        &daemon,
        &[
            "service",
            "add",
            "tcp",
            "192.0.2.100:80",
            "scheduler",
            "wrr",
        ],
    );
    fvs_ok(
        &daemon,
        &["backend", "add", "tcp", "192.0.2.100:80", "192.0.2.11:8080"],
    );
    let before = daemon.config_stats();
    assert_eq!(before.published, 2, "{before:?}");

    let service = ServiceKey {
        protocol: Protocol::Tcp,
        vip: "192.0.2.100".parse().unwrap(),
        port: 80,
    };
    for i in 0..CHANGES {
        // 2, 3, 2, ...: each differs from the backend's current weight (1 at first).
        let weight = Some(2 + (i % 2) as u32);
        let set = Request::BackendSet {
            service,
            addr: "192.0.2.11".parse().unwrap(),
            port: 8080,
            weight,
            state: None,
        };
        daemon
            .call(&set)
            .unwrap_or_else(|e| panic!("change {i}: {e}"));
    }
    // A refused change publishes nothing.
    let missing = Request::BackendSet {
        service,
        addr: "192.0.2.12".parse().unwrap(),
        port: 8080,
        weight: Some(3),
        state: None,
    };
    assert!(daemon.call(&missing).is_err());

    let after = daemon.config_stats();
    assert!(
        after.published >= before.published + CHANGES,
        "{before:?} -> {after:?}"
    );
    assert_eq!(
        after.not_visible, 0,
        "a live worker took over {}us: {after:?}",
        after.timeout_us
    );
    let visible = after.visible();
    assert_eq!(
        visible, after.published,
        "every publish is in the histogram: {after:?}"
    );
    let last = after.visible_last_us.expect("no delay recorded");
    assert!(
        last <= after.visible_max_us && after.visible_max_us <= after.visible_sum_us,
        "{after:?}"
    );
    assert_eq!(after.visible_buckets.len(), 6, "{after:?}");
    assert!(
        after.visible_buckets.iter().filter(|b| b.count > 0).count() >= 1,
        "{after:?}"
    );

    let text = fvs_ok(&daemon, &["stats"]);
    assert!(
        text.contains(&format!(
            "\nconfig: {} published; visible on all workers after: last ",
            after.published
        )),
        "{text}"
    );
    assert!(
        text.contains("\n    visible:  <10us  <100us  <1ms  <10ms  <100ms  >=100ms\n"),
        "{text}"
    );
    let json: serde_json::Value =
        serde_json::from_str(&fvs_ok(&daemon, &["--json", "stats"])).unwrap();
    assert_eq!(json["config"]["published"], after.published, "{json}");

    daemon.stop();
}
