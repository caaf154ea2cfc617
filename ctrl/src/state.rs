//! The control state as a pure transaction: the running config, the load-balancing state
//! ([`LbState`]: slots, generations, scheduler tables) and the services last built, plus the
//! ports as plain data. Every admin request that changes something is one transaction: it
//! works on a copy, validates the result as a whole, builds what the workers will see, and
//! replaces the state only when all of that succeeded; a refusal leaves the state exactly as
//! it was. The caller (the daemon) publishes the snapshot a transaction returns.
//!
//! No I/O and no DPDK: `cargo test -p ctrl --no-default-features` runs its tests.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;

use dataplane::l3::{Route, RouteOrigin};
use dataplane::net::{MacAddr, Prefix};
use dataplane::service::Services;
use dataplane::snapshot::{KernelLimit, LocalAddr, PortL3, Snapshot};

use crate::acl::{self, AclRule};
use crate::config::{self, AddressConfig, Config, RouteConfig};
use crate::config::{validate_services, RemovalPolicy, ServiceConfig, SnatConfig};
use crate::lbstate::{self, BackendId, Edit, LbState, SnatEdit};
use crate::proto::{AddrInfo, ApplyResult, Request, Response};

/// A started port as the control state needs it: the daemon reads these from DPDK once, at
/// start-up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortFacts {
    /// The DPDK port id.
    pub id: u16,
    /// The config name (`ports[].name`).
    pub name: String,
    pub mac: MacAddr,
    pub mtu: u16,
}

/// An address a port's kernel interface gains or loses, so that it carries the port's
/// addresses: the control state reports these with each change it commits; the daemon
/// applies them through rtnetlink.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KernelAddrChange {
    /// The port (`ports[].name`).
    pub port: String,
    /// Its kernel interface (`ports[].kernel.name`).
    pub kernel: String,
    pub addr: Prefix,
    /// Added, or removed.
    pub add: bool,
}

/// What became of a request.
#[derive(Debug)]
pub enum Outcome {
    /// Done (committed, for a change): the answer, the snapshot to publish when the workers'
    /// view changed, and the addresses the kernel interfaces must gain or lose (removals
    /// first).
    Done { response: Response, publish: Option<Box<Snapshot>>, kernel: Vec<KernelAddrChange> },
    /// Refused with this message; the state did not change.
    Refused(String),
    /// Not for the control state: a read that needs the workers or the ports.
    NotMine(Request),
}

/// What one transaction changed: the answer's data and whether the workers must see it.
struct Change {
    response: Response,
    publish: bool,
}

impl Change {
    fn published() -> Result<Change, String> {
        Ok(Change { response: Response::ok(&()), publish: true })
    }
}

#[derive(Clone)]
pub struct ControlState {
    config: Config,
    ports: Vec<PortFacts>,
    lb: LbState,
    /// The services as last built: an L3 change publishes them again unchanged.
    services: Arc<Services>,
    /// The access-list rules of `services.guard`, numbered as its counters.
    acl_rules: Arc<Vec<AclRule>>,
}

impl ControlState {
    /// The state for a validated config on these ports (in port id order), and the first
    /// snapshot.
    pub fn new(config: Config, ports: Vec<PortFacts>) -> Result<(ControlState, Snapshot), String> {
        let mut lb = LbState::new(lbstate::limits(&config.connections, lbstate::MAX_SERVICES));
        let id_of = |name: &str| ports.iter().find(|p| p.name == name).map(|p| p.id);
        let built = lb.build(&config.services, &config.snat, &id_of, &config.connections.timeouts, None)?;
        let cores = config.workers.lcores.len().max(1);
        let (guard, rules) = acl::build_guard(&config.deny, &config.services, &built, cores, None);
        let services = Arc::new(built.with_guard(Arc::new(guard)));
        let state = ControlState { config, ports, lb, services, acl_rules: Arc::new(rules) };
        let snapshot = state.snapshot();
        Ok((state, snapshot))
    }

    /// The running config.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn lb(&self) -> &LbState {
        &self.lb
    }

    /// The VIPs routers should send here: those of the services with at least one usable
    /// backend ([`ServiceConfig::has_usable_backend`]). The daemon keeps its kernel routes
    /// (`announce`) equal to this set after every change.
    pub fn announced_vips(&self) -> BTreeSet<IpAddr> {
        self.config.services.iter().filter(|s| self.lb.announces(s)).map(|s| s.vip).collect()
    }

    /// The health checks' verdicts, as one transaction and one publication: a backend down
    /// gets no new connections (its service's `on_backend_down` and `all_down` say the rest),
    /// a backend up gets them again. Verdicts for backends no longer configured are ignored.
    pub fn set_health(&mut self, changes: &[(BackendId, bool)]) -> Outcome {
        let configured =
            |id: &BackendId| self.config.services.iter().any(|s| s.key() == id.0 && s.backend(id.1, id.2).is_some());
        let changes: Vec<(BackendId, bool)> =
            changes.iter().filter(|(id, down)| configured(id) && self.lb.is_down(id) != *down).copied().collect();
        if changes.is_empty() {
            return Outcome::Done { response: Response::ok(&()), publish: None, kernel: Vec::new() };
        }
        self.transact(|s| {
            for (id, down) in changes {
                s.lb.set_down(id, down);
            }
            let (services, snat) = (s.config.services.clone(), s.config.snat.clone());
            s.build_lb(services, snat, None)?;
            Change::published()
        })
    }

    /// Everything the state holds, as text in a fixed order: equal dumps, equal states.
    pub fn dump(&self) -> String {
        format!(
            "config {:?}\nports {:?}\nlb {}\nservices {:p} {:?}",
            self.config,
            self.ports,
            self.lb.dump(),
            Arc::as_ptr(&self.services),
            self.services
        )
    }

    /// Handles one request: a change as one transaction, `addr show` from the config; every
    /// other read goes back to the caller.
    pub fn handle(&mut self, request: Request) -> Outcome {
        match request {
            Request::AddrShow => {
                let addrs: Vec<AddrInfo> =
                    self.config.addresses.iter().map(|a| AddrInfo { port: a.port.clone(), addr: a.addr }).collect();
                Outcome::Done { response: Response::ok(&addrs), publish: None, kernel: Vec::new() }
            }
            Request::AddrAdd { port, addr } => self.transact(|s| {
                // Validation refuses an address that is already configured, naming where.
                s.config.addresses.push(AddressConfig { port, addr });
                s.check_l3()
            }),
            Request::AddrDel { port, addr } => self.transact(|s| {
                let before = s.config.addresses.len();
                s.config.addresses.retain(|a| !(a.port == port && a.addr == addr));
                if s.config.addresses.len() == before {
                    return Err(format!("no address {addr} on port {port} (see fvs addr show)"));
                }
                s.check_l3()
            }),
            Request::RouteAdd { route } => self.transact(|s| {
                s.config.routes.push(route);
                s.check_l3()
            }),
            Request::RouteDel { prefix } => self.transact(|s| {
                let before = s.config.routes.len();
                s.config.routes.retain(|r| r.prefix.network() != prefix.network());
                if s.config.routes.len() == before {
                    return Err(format!(
                        "no static route to {prefix} (connected routes go with their address: fvs addr del)"
                    ));
                }
                s.check_l3()
            }),
            Request::Apply { source, yaml } => self.transact(|s| s.apply(&source, &yaml)),
            Request::ServiceAdd { service } => self.edit_services(Edit::ServiceAdd(service), None),
            Request::ServiceSet { key, set } => self.edit_services(Edit::ServiceSet(key, set), None),
            Request::ServiceDel { key } => self.edit_services(Edit::ServiceDel(key), None),
            Request::BackendAdd { service, backend } => self.edit_services(Edit::BackendAdd(service, backend), None),
            Request::BackendSet { service, addr, port, weight, state } => {
                self.edit_services(Edit::BackendSet { service, addr, port, weight, state }, None)
            }
            Request::BackendDel { service, addr, port, policy } => {
                self.edit_services(Edit::BackendDel { service, addr, port }, policy)
            }
            Request::HealthSet { service, backend, spec, passive, on_down, all_down } => self.edit_services(
                Edit::HealthSet {
                    service,
                    backend: backend.map(|b| (b.ip(), b.port())),
                    spec: *spec,
                    passive,
                    on_down,
                    all_down,
                },
                None,
            ),
            Request::HealthDel { service, backend } => {
                self.edit_services(Edit::HealthDel { service, backend: backend.map(|b| (b.ip(), b.port())) }, None)
            }
            Request::LaddrAdd { service, addr } => self.edit_services(Edit::LaddrAdd(service, addr), None),
            Request::LaddrDel { service, addr } => self.edit_services(Edit::LaddrDel(service, addr), None),
            Request::SnatAdd { rule } => self.edit_snat(SnatEdit::Add(rule)),
            Request::SnatDel { source, out_port } => self.edit_snat(SnatEdit::Del { source, out_port }),
            Request::AclShow => {
                let infos = acl::infos(&self.acl_rules, &self.services.guard.counters);
                Outcome::Done { response: Response::ok(&infos), publish: None, kernel: Vec::new() }
            }
            read @ (Request::LinkShow { .. }
            | Request::RouteShow
            | Request::NeighShow
            | Request::Stats
            | Request::ServiceShow { .. }
            | Request::BackendShow
            | Request::LaddrShow
            | Request::ConnList { .. }
            | Request::SnatShow
            | Request::TraceStart { .. }
            | Request::TracePoll { .. }) => Outcome::NotMine(read),
        }
    }

    /// Runs `change` on a copy of the state and keeps the copy only if it succeeded.
    fn transact(&mut self, change: impl FnOnce(&mut ControlState) -> Result<Change, String>) -> Outcome {
        let mut next = self.clone();
        match change(&mut next) {
            Ok(Change { response, publish }) => {
                let publish = publish.then(|| Box::new(next.snapshot()));
                let kernel = kernel_addr_changes(&self.config, &next.config);
                *self = next;
                Outcome::Done { response, publish, kernel }
            }
            Err(message) => Outcome::Refused(message),
        }
    }

    fn edit_services(&mut self, edit: Edit, removal: Option<RemovalPolicy>) -> Outcome {
        self.transact(|s| {
            let services = lbstate::edit(&s.config.services, edit)?;
            let snat = s.config.snat.clone();
            s.change_lb(services, snat, removal)
        })
    }

    fn edit_snat(&mut self, edit: SnatEdit) -> Outcome {
        self.transact(|s| {
            let snat = lbstate::edit_snat(&s.config.snat, edit)?;
            let services = s.config.services.clone();
            s.change_lb(services, snat, None)
        })
    }

    /// Checks the (edited) addresses and routes as a whole; the services depend on them too
    /// (backends are not ours, DR backends are on-link).
    fn check_l3(&mut self) -> Result<Change, String> {
        let c = &self.config;
        // A config field path (addresses[3].port) means nothing to someone typing a command:
        // the message alone names the value.
        config::validate_l3(&c.ports, &c.addresses, &c.routes).map_err(|e| e.message)?;
        validate_services(&c.services, &c.snat, &c.connections, &c.ports, &c.addresses).map_err(|e| e.message)?;
        Change::published()
    }

    /// Validates and builds these services and SNAT rules against the current addresses.
    fn change_lb(
        &mut self,
        services: Vec<ServiceConfig>,
        snat: Vec<SnatConfig>,
        removal: Option<RemovalPolicy>,
    ) -> Result<Change, String> {
        let c = &self.config;
        validate_services(&services, &snat, &c.connections, &c.ports, &c.addresses).map_err(|e| e.message)?;
        self.build_lb(services, snat, removal)?;
        Change::published()
    }

    /// Builds the workers' services; the config takes `services` and `snat` only once built.
    fn build_lb(
        &mut self,
        services: Vec<ServiceConfig>,
        snat: Vec<SnatConfig>,
        removal: Option<RemovalPolicy>,
    ) -> Result<(), String> {
        let ports = &self.ports;
        let id_of = |name: &str| ports.iter().find(|p| p.name == name).map(|p| p.id);
        let built = self.lb.build(&services, &snat, &id_of, &self.config.connections.timeouts, removal)?;
        let cores = self.config.workers.lcores.len().max(1);
        let previous = Some((self.acl_rules.as_slice(), &self.services.guard.counters));
        let (guard, rules) = acl::build_guard(&self.config.deny, &services, &built, cores, previous);
        self.services = Arc::new(built.with_guard(Arc::new(guard)));
        self.acl_rules = Arc::new(rules);
        self.config.services = services;
        self.config.snat = snat;
        Ok(())
    }

    /// `fvs apply`: the new config's addresses, routes, timeouts, services and SNAT rules, all
    /// or nothing; any other difference needs a restart.
    fn apply(&mut self, source: &str, yaml: &str) -> Result<Change, String> {
        let next = Config::from_yaml(yaml, source).map_err(|e| e.to_string())?;
        let fixed = next.static_differences(&self.config);
        if !fixed.is_empty() {
            return Err(format!(
                "{source}: {} differ from the running config and can only change with a restart of ferrovs; nothing was applied",
                fixed.join(", ")
            ));
        }
        let mut changes =
            config::l3_changes(&self.config.addresses, &self.config.routes, &next.addresses, &next.routes);
        let mut service_changes = lbstate::service_changes(&self.config.services, &next.services);
        service_changes.extend(lbstate::snat_changes(&self.config.snat, &next.snat));
        if next.connections.timeouts != self.config.connections.timeouts {
            changes.push("connections timeouts set".to_string());
        }
        if next.deny != self.config.deny {
            changes.push(format!("global deny list set ({} prefixes)", next.deny.len()));
        }
        let publish = !changes.is_empty() || !service_changes.is_empty();
        if publish {
            // Addresses first: the services are built against them and published together.
            self.config.addresses = next.addresses;
            self.config.routes = next.routes;
            self.config.connections.timeouts = next.connections.timeouts;
            self.config.deny = next.deny;
            self.build_lb(next.services, next.snat, None).map_err(|e| format!("{source}: {e}"))?;
        }
        changes.extend(service_changes);
        Ok(Change { response: Response::ok(&ApplyResult { changes }), publish })
    }

    /// Every address the kernel interfaces carry, as additions: what the daemon sets on them
    /// when it makes them.
    pub fn kernel_addrs(&self) -> Vec<KernelAddrChange> {
        kernel_addr_changes(&Config { addresses: Vec::new(), ..self.config.clone() }, &self.config)
    }

    /// The workers' view of the current addresses, routes and services. An address or route
    /// on a port that did not come up is left out (validation names only configured ports).
    pub fn snapshot(&self) -> Snapshot {
        let id_of = |name: &str| self.ports.iter().find(|p| p.name == name).map(|p| p.id);
        let kernel_of = |name: &str| {
            let port = self.config.ports.iter().find(|p| p.name == name)?;
            port.kernel.as_ref().map(|k| KernelLimit { rate_pps: k.rate_pps, burst: k.burst })
        };
        let port_l3 = self
            .ports
            .iter()
            .map(|p| (p.id, PortL3 { name: p.name.clone(), mac: p.mac, mtu: p.mtu, kernel: kernel_of(&p.name) }))
            .collect();
        let addresses = &self.config.addresses;
        let addrs =
            addresses.iter().filter_map(|a| Some(LocalAddr { port: id_of(&a.port)?, prefix: a.addr })).collect();
        let static_routes = self
            .config
            .routes
            .iter()
            .filter_map(|r: &RouteConfig| {
                let port = id_of(&r.resolved_port(addresses)?)?;
                Some(Route { prefix: r.prefix.network(), via: r.via, port, origin: RouteOrigin::Static })
            })
            .collect();
        Snapshot::build(port_l3, addrs, static_routes).with_services(self.services.clone())
    }
}

/// The addresses that kernel interfaces lose (first) and gain from `old` to `new`: those of
/// ports with a kernel interface (the ports themselves change only with a restart).
fn kernel_addr_changes(old: &Config, new: &Config) -> Vec<KernelAddrChange> {
    let kernel_of = |port: &str| new.ports.iter().find(|p| p.name == port)?.kernel.as_ref().map(|k| k.name.clone());
    let change = |a: &AddressConfig, add: bool| {
        Some(KernelAddrChange { port: a.port.clone(), kernel: kernel_of(&a.port)?, addr: a.addr, add })
    };
    let removed = old.addresses.iter().filter(|a| !new.addresses.contains(a)).filter_map(|a| change(a, false));
    let added = new.addresses.iter().filter(|a| !old.addresses.contains(a)).filter_map(|a| change(a, true));
    removed.chain(added).collect()
}

#[cfg(test)]
mod tests;
