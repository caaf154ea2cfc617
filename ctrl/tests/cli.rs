//! The `fvs` binary against the real admin API server and a fake daemon.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::thread;

use ctrl::api::{self, ApiCall};
use ctrl::config::lb::{self as lbconf, ConnectionsConfig, Protocol, ServiceConfig, SnatConfig};
use ctrl::config::{self, Config};
use ctrl::lbstate::{self, SnatEdit};
use ctrl::proto::{
    AddrInfo, ApplyResult, BackendInfo, ConnInfo, ConnList, ConnMode, Request, Response, RouteInfo, ServiceInfo,
    SnatAddrInfo, SnatInfo,
};

fn service_info(s: &ServiceConfig) -> ServiceInfo {
    let backends = s
        .backends
        .iter()
        .map(|b| BackendInfo {
            addr: b.addr,
            port: b.port,
            weight: b.weight,
            state: b.state,
            active_conns: 0,
            inactive_conns: 0,
            stats: None,
            handshake: None,
        })
        .collect();
    ServiceInfo::new(s, backends, None)
}

/// The services and SNAT rules of the fake daemon, checked together like the daemon does.
#[derive(Clone, Default)]
struct Lb {
    services: Vec<ServiceConfig>,
    snat: Vec<SnatConfig>,
}

/// Service and SNAT changes checked with the real validation, like the daemon.
fn change_lb(
    lb: &mut Lb,
    base: &Config,
    addresses: &[config::AddressConfig],
    change: impl FnOnce(&mut Lb) -> Result<(), String>,
) -> Response {
    let mut next = lb.clone();
    let checked = change(&mut next).and_then(|()| {
        let conns = ConnectionsConfig::default();
        lbconf::validate_services(&next.services, &next.snat, &conns, &base.ports, addresses).map_err(|e| e.message)
    });
    match checked {
        Ok(()) => {
            *lb = next;
            Response::ok(&())
        }
        Err(e) => Response::err(e),
    }
}

/// A daemon stand-in holding addresses and checking changes with the real validation.
fn fake_daemon(calls: crossbeam_channel::Receiver<ApiCall>) {
    let base = Config::from_yaml("ports:\n  - { name: dp0, device: net_null0 }\n", "base").unwrap();
    let mut addresses: Vec<config::AddressConfig> = Vec::new();
    let mut lb = Lb::default();
    for call in calls {
        let response = match call.request {
            Request::AddrShow => {
                let list: Vec<AddrInfo> =
                    addresses.iter().map(|a| AddrInfo { port: a.port.clone(), addr: a.addr }).collect();
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
                Ok(c) => Response::ok(&ApplyResult { changes: config::l3_changes(&[], &[], &c.addresses, &c.routes) }),
                Err(e) => Response::err(e.to_string()),
            },
            Request::ServiceShow { .. } => Response::ok(&lb.services.iter().map(service_info).collect::<Vec<_>>()),
            Request::ServiceAdd { service } => change_lb(&mut lb, &base, &addresses, |next| {
                next.services.push(service);
                Ok(())
            }),
            Request::BackendAdd { service, backend } => change_lb(&mut lb, &base, &addresses, |next| {
                let s = next.services.iter_mut().find(|s| s.key() == service).ok_or(format!("no service {service}"))?;
                s.backends.push(backend);
                Ok(())
            }),
            // No worker cores here: every address shows no ports.
            Request::SnatShow => Response::ok(
                &lb.snat
                    .iter()
                    .map(|r| SnatInfo {
                        source: r.source,
                        out_port: r.out_port.clone(),
                        addresses: r
                            .addresses
                            .iter()
                            .map(|a| SnatAddrInfo { addr: *a, ports_in_use: 0, ports_total: 0 })
                            .collect(),
                    })
                    .collect::<Vec<_>>(),
            ),
            Request::SnatAdd { rule } => change_lb(&mut lb, &base, &addresses, |next| {
                next.snat = lbstate::edit_snat(&next.snat, SnatEdit::Add(rule))?;
                Ok(())
            }),
            Request::SnatDel { source, out_port } => change_lb(&mut lb, &base, &addresses, |next| {
                next.snat = lbstate::edit_snat(&next.snat, SnatEdit::Del { source, out_port })?;
                Ok(())
            }),
            // Three connections match; the limit keeps the first ones.
            Request::ConnList { filter } => {
                let conn = |client: &str| ConnInfo {
                    core: 0,
                    protocol: Protocol::Tcp,
                    mode: ConnMode::Nat,
                    client: client.parse().unwrap(),
                    virtual_addr: Some("192.0.2.100:80".parse().unwrap()),
                    local: None,
                    backend: "198.51.100.11:8080".parse().unwrap(),
                    state: "ESTABLISHED".into(),
                    expires_ms: 899_000,
                };
                let mut conns = vec![conn("192.0.2.2:40000"), conn("192.0.2.2:40001"), conn("192.0.2.2:40002")];
                conns.truncate(filter.limit.unwrap_or(1000) as usize);
                Response::ok(&ConnList { conns, matched: 3 })
            }
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
    let out = Command::new(env!("CARGO_BIN_EXE_fvs")).arg("--socket").arg(socket()).args(args).output().unwrap();
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
}

#[test]
fn add_then_show() {
    assert_eq!(fvs(&["addr", "add", "192.0.2.1/24", "dev", "dp0"]), (0, String::new(), String::new()));
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
    assert_eq!(err, "fvs route add: '198.51.100.300' is not an IP address (after 'via')\n");
    let (code, _, err) = fvs(&["rooute"]);
    assert_eq!(code, 2);
    assert!(err.contains("unrecognized subcommand 'rooute'"), "{err}");
}

#[test]
fn route_show_human() {
    assert_eq!(fvs(&["route"]), (0, "192.0.2.0/24 dev dp0 proto connected\n".to_string(), String::new()));
}

#[test]
fn apply_sends_the_file() {
    let dir = socket().parent().unwrap();
    let good = dir.join("good.yaml");
    std::fs::write(
        &good,
        "ports:\n  - { name: dp0, device: net_null0 }\naddresses:\n  - { port: dp0, addr: 10.1.0.1/16 }\n",
    )
    .unwrap();
    let (code, out, _) = fvs(&["apply", "-f", good.to_str().unwrap()]);
    assert_eq!((code, out.as_str()), (0, "addr add 10.1.0.1/16 dev dp0\n"));

    let bad = dir.join("bad.yaml");
    std::fs::write(
        &bad,
        "ports:\n  - { name: dp0, device: net_null0 }\nroutes:\n  - { prefix: 10.2.0.0/16, via: 10.9.9.300 }\n",
    )
    .unwrap();
    let (code, _, err) = fvs(&["apply", "-f", bad.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(
        err.starts_with(&format!("fvs: {}: routes[0].via: invalid IP address syntax (line 4", bad.display())),
        "{err}"
    );

    let (code, _, err) = fvs(&["apply", "-f", "/nonexistent/x.yaml"]);
    assert_eq!(code, 1);
    assert!(err.starts_with("fvs: cannot read /nonexistent/x.yaml: No such file"), "{err}");
}

#[test]
fn service_and_backend_add_then_show() {
    let ok = (0, String::new(), String::new());
    assert_eq!(fvs(&["service", "add", "tcp", "203.0.113.80:80", "scheduler", "wrr", "persistence", "300"]), ok);
    assert_eq!(fvs(&["backend", "add", "tcp", "203.0.113.80:80", "198.51.100.11:8080", "weight", "2"]), ok);
    let (code, out, err) = fvs(&["service"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(
        out.starts_with("Prot LocalAddress:Port Scheduler Mode    Flags\n  -> RemoteAddress:Port           Weight State     ActiveConn InActConn\n"),
        "{out}"
    );
    assert!(
        out.contains("\nTCP  203.0.113.80:80   wrr       nat     persistent 300\n  -> 198.51.100.11:8080           2      active    0          0\n"),
        "{out}"
    );
    let (code, out, _) = fvs(&["-j", "service", "show", "--stats"]);
    assert_eq!(code, 0);
    let list: Vec<ServiceInfo> = serde_json::from_str(&out).unwrap();
    assert!(list.iter().any(|s| s.port == 80 && s.backends.len() == 1), "{out}");

    // The daemon's refusal: exit 1, its words.
    let (code, out, err) = fvs(&["service", "add", "tcp", "203.0.113.80:80"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert!(err.starts_with("fvs: service tcp 203.0.113.80:80 is already defined"), "{err}");
    let (code, _, err) = fvs(&["backend", "add", "udp", "203.0.113.80:80", "198.51.100.11:8080"]);
    assert_eq!((code, err.as_str()), (1, "fvs: no service udp 203.0.113.80:80\n"));
}

#[test]
fn lb_usage_errors_exit_2() {
    let (code, out, err) = fvs(&["service", "add", "tcp", "192.0.2.100", "scheduler", "wrr"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err, "fvs service add: '192.0.2.100' is not ADDR:PORT (e.g. 192.0.2.100:80)\n");
    let (code, _, err) = fvs(&["conn", "list", "state", "open"]);
    assert_eq!(code, 2);
    assert!(err.starts_with("fvs conn list: 'open' is not a connection state (NONE, ESTABLISHED,"), "{err}");
}

#[test]
fn conn_list_says_when_cut() {
    let (code, out, err) = fvs(&["conn", "list", "limit", "1"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        out,
        "\
core pro expire state       mode    client             virtual            local              backend
0    TCP 14:59  ESTABLISHED nat     192.0.2.2:40000    192.0.2.100:80     -                  198.51.100.11:8080
1 of 3 connections shown
"
    );
    let (code, out, _) = fvs(&["conn"]);
    assert_eq!(code, 0);
    assert_eq!(out.lines().count(), 4, "{out}");
}

#[test]
fn snat_add_show_del() {
    let ok = (0, String::new(), String::new());
    let add = ["snat", "add", "source", "10.20.0.0/16", "out-port", "dp0", "address", "203.0.113.250"];
    assert_eq!(fvs(&add), ok);
    let (code, out, err) = fvs(&["snat"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert!(out.starts_with("Source  "), "{out}");
    assert!(out.contains("\n10.20.0.0/16  dp0      203.0.113.250           0           0\n"), "{out}");
    let (code, out, _) = fvs(&["-j", "snat", "show"]);
    assert_eq!(code, 0);
    let rules: Vec<SnatInfo> = serde_json::from_str(&out).unwrap();
    assert!(rules.iter().any(|r| r.source.to_string() == "10.20.0.0/16"), "{out}");

    // The daemon's refusals: exit 1, its words.
    let (code, _, err) = fvs(&add);
    assert_eq!(
        (code, err.as_str()),
        (1, "fvs: SNAT rule source 10.20.0.0/16 out-port dp0 already exists (delete it first with fvs snat del)\n")
    );
    let (code, _, err) = fvs(&["snat", "add", "source", "10.21.0.5/16", "out-port", "dp0", "address", "203.0.113.251"]);
    assert_eq!((code, err.as_str()), (1, "fvs: 10.21.0.5/16 has host bits set, did you mean 10.21.0.0/16?\n"));
    let (code, _, err) = fvs(&["snat", "add", "source", "10.22.0.0/16", "out-port", "dp7", "address", "203.0.113.252"]);
    assert_eq!((code, err.as_str()), (1, "fvs: no port named 'dp7' (ports are: dp0)\n"));

    let del = ["snat", "del", "source", "10.20.0.0/16", "out-port", "dp0"];
    assert_eq!(fvs(&del), ok);
    let (code, _, err) = fvs(&del);
    assert_eq!((code, err.as_str()), (1, "fvs: no SNAT rule source 10.20.0.0/16 out-port dp0 (see fvs snat show)\n"));
}
