//! The `fvs` binary against the real admin API server and a fake daemon.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;

use ctrl::api::{self, ApiCall};
use ctrl::config::{self, Config};
use ctrl::proto::{AddrInfo, ApplyResult, Request, Response, RouteInfo};

/// A daemon stand-in holding addresses and checking changes with the real validation.
fn fake_daemon(calls: crossbeam_channel::Receiver<ApiCall>) {
    let base = Config::from_yaml("ports:\n  - { name: dp0, device: net_null0 }\n", "base").unwrap();
    let mut addresses: Vec<config::AddressConfig> = Vec::new();
    for call in calls {
        let response = match call.request {
            Request::AddrShow => {
                let list: Vec<AddrInfo> = addresses
                    .iter()
                    .map(|a| AddrInfo {
                        port: a.port.clone(),
                        addr: a.addr,
                    })
                    .collect();
                Response::ok(&list)
            }
            Request::AddrAdd { port, addr } => {
                let mut next = addresses.clone();
                next.push(config::AddressConfig { port, addr });
                match config::validate_l3(&base.ports, &next, &[]) {
                    Ok(()) => {
                        addresses = next;
                        Response::ok(&())
                    }
                    Err(e) => Response::err(e.message),
                }
            }
            Request::RouteShow => Response::ok(&vec![RouteInfo {
                prefix: "192.0.2.0/24".parse().unwrap(),
                via: None,
                port: "dp0".into(),
                origin: "connected".into(),
            }]),
            Request::Apply { source, yaml } => match Config::from_yaml(&yaml, &source) {
                Ok(c) => Response::ok(&ApplyResult {
                    changes: config::l3_changes(&[], &[], &c.addresses, &c.routes),
                }),
                Err(e) => Response::err(e.to_string()),
            },
            other => Response::err(format!("not in this test: {other:?}")),
        };
        let _ = call.reply.send(response);
    }
}

/// One server for the whole test binary; tests use distinct addresses so they can run in
/// any order.
fn socket() -> &'static Path {
    static SOCKET: OnceLock<PathBuf> = OnceLock::new();
    SOCKET.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("ferrovs-fvs-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("ferrovs.sock");
        let listener = api::bind(&path).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        api::spawn_server(listener, tx);
        thread::spawn(move || fake_daemon(rx));
        path
    })
}

/// Runs fvs with `args`; returns (exit status, stdout, stderr).
fn fvs(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fvs"))
        .arg("--socket")
        .arg(socket())
        .args(args)
        .output()
        .unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (
        out.status.code().unwrap_or(-1),
        text(out.stdout),
        text(out.stderr),
    )
}

#[test]
fn add_then_show() {
    assert_eq!(
        fvs(&["addr", "add", "192.0.2.1/24", "dev", "dp0"]),
        (0, String::new(), String::new())
    );
    let (code, out, err) = fvs(&["a"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.contains("dp0    inet 192.0.2.1/24\n"), "{out}");
    let (code, out, _) = fvs(&["addr", "show", "-j"]);
    assert_eq!(code, 0);
    assert!(out.contains("\"addr\": \"192.0.2.1/24\""), "{out}");
}

#[test]
fn daemon_refusal_exits_1() {
    let (code, out, err) = fvs(&["addr", "add", "198.51.100.1/24", "dev", "dp9"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, "fvs: no port named 'dp9' (ports are: dp0)\n");
}

#[test]
fn usage_error_exits_2_without_calling() {
    let (code, out, err) = fvs(&["route", "add", "203.0.113.0/24", "via", "198.51.100.300"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(
        err,
        "fvs route add: '198.51.100.300' is not an IP address (after 'via')\n"
    );
    let (code, _, err) = fvs(&["rooute"]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized subcommand 'rooute'"), "{err}");
}

#[test]
fn route_show_human() {
    assert_eq!(
        fvs(&["route"]),
        (
            0,
            "192.0.2.0/24 dev dp0 proto connected\n".to_string(),
            String::new()
        )
    );
}

#[test]
fn apply_sends_the_file() {
    let dir = socket().parent().unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(&good, "ports:\n  - { name: dp0, device: net_null0 }\naddresses:\n  - { port: dp0, addr: 10.1.0.1/16 }\n").unwrap();
    let (code, out, _) = fvs(&["apply", "-f", good.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "addr add 10.1.0.1/16 dev dp0\n"));

    let bad = dir.join("bad.yaml");
    std::fs::write(&bad, "ports:\n  - { name: dp0, device: net_null0 }\nroutes:\n  - { prefix: 10.2.0.0/16, via: 10.9.9.300 }\n").unwrap();
    let (code, _, err) = fvs(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!(
            "fvs: {}: routes[0].via: invalid IP address syntax (line 4",
            bad.display()
        )),
        "{err}"
    );

    let (code, _, err) = fvs(&["apply", "-f", "/nonexistent/x.yaml"]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with("fvs: cannot read /nonexistent/x.yaml: No such file"),
        "{err}"
    );
}
