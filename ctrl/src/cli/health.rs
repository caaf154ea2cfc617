//! `fvs health`: a service's health checks and policies, or one backend's overrides. The
//! same settings as the YAML's `health`, `passive`, `on_backend_down` and `all_down`.

use clap::Subcommand;

use super::words::{parse_ip, parse_socket, VerbArgs, Words};
use super::ArgsError;
use crate::config::{AllDownPolicy, CheckKind, DownPolicy, HealthSpec, PassiveConfig};
use crate::proto::Request;

pub(super) const HEALTH_SET_USAGE: &str =
    "fvs health set tcp|udp VIP:PORT [backend ADDR:PORT] [type tcp|http|https|udp|ping|script|none] \
[interval MS] [timeout MS] [rise N] [fall N] [source ADDR] [port N] [path P] [status N] [body TEXT] [host NAME] \
[tls-verify on|off] [payload TEXT] [expect TEXT] [command CMD] [on-down keep|reset] [all-down fail_open|drop|reset] \
[passive off | passive FAILURES/WINDOW_MS/BACKOFF_MS]";
pub(super) const HEALTH_DEL_USAGE: &str = "fvs health del tcp|udp VIP:PORT [backend ADDR:PORT]";

#[derive(Subcommand, Debug)]
pub(super) enum HealthVerb {
    /// Set fields of a service's check (or a backend's overrides, with `backend`), and the
    /// service's policies. Fields not named keep their value.
    #[command(
        override_usage = HEALTH_SET_USAGE,
        after_help = "Examples:\n  fvs health set tcp 192.0.2.100:80 type http path /healthz interval 1000 timeout 500 rise 2 fall 3\n  fvs health set tcp 192.0.2.100:80 backend 198.51.100.11:8080 port 9000\n  fvs health set tcp 192.0.2.100:80 on-down reset all-down drop\n  fvs health set tcp 192.0.2.100:80 passive 5/10000/5000\n\nfvs backend show lists every backend's health."
    )]
    Set(VerbArgs),
    /// Remove a service's check (or a backend's overrides): its backends count as up.
    #[command(
        visible_alias = "delete",
        override_usage = HEALTH_DEL_USAGE,
        after_help = "Examples:\n  fvs health del tcp 192.0.2.100:80\n  fvs health del tcp 192.0.2.100:80 backend 198.51.100.11:8080"
    )]
    Del(VerbArgs),
}

const KEYS: [&str; 20] = [
    "backend",
    "type",
    "interval",
    "timeout",
    "rise",
    "fall",
    "source",
    "port",
    "path",
    "status",
    "body",
    "host",
    "tls-verify",
    "payload",
    "expect",
    "command",
    "on-down",
    "all-down",
    "passive",
    "--",
];

pub(super) fn health_request(verb: HealthVerb) -> Result<Request, ArgsError> {
    match verb {
        HealthVerb::Set(VerbArgs { args }) => {
            let mut w = Words::new("fvs health set", &args);
            let service = w.service_key(HEALTH_SET_USAGE)?;
            let mut spec = HealthSpec::default();
            let (mut backend, mut on_down, mut all_down, mut passive) = (None, None, None, None);
            while let Some(word) = w.next() {
                match word {
                    "backend" => {
                        let v = w.value("backend", "ADDR:PORT")?;
                        let a = parse_socket(v).map_err(|m| w.error(m))?;
                        w.once(&mut backend, "backend", a)?;
                    }
                    "type" => {
                        let v = w.value("type", "tcp, http, https, udp, ping, script or none")?;
                        let k = v.parse::<CheckKind>().map_err(|m| w.error(m))?;
                        w.once(&mut spec.check, "type", k)?;
                    }
                    "interval" | "timeout" | "rise" | "fall" | "status" => {
                        let v = w.value(word, "a number")?;
                        let n = w.number(v, word)?;
                        match word {
                            "interval" => w.once(&mut spec.interval_ms, word, n)?,
                            "timeout" => w.once(&mut spec.timeout_ms, word, n)?,
                            "rise" => w.once(&mut spec.rise, word, n)?,
                            "fall" => w.once(&mut spec.fall, word, n)?,
                            _ => {
                                let s = u16::try_from(n).map_err(|_| w.error(format!("status {n} is out of range")))?;
                                w.once(&mut spec.status, word, s)?
                            }
                        }
                    }
                    "port" => {
                        let v = w.value("port", "a port number")?;
                        let p = w.port(v, "port")?;
                        w.once(&mut spec.port, "port", p)?;
                    }
                    "source" => {
                        let v = w.value("source", "an address")?;
                        let a = parse_ip(v, "source").map_err(|m| w.error(m))?;
                        w.once(&mut spec.source, "source", a)?;
                    }
                    "path" | "body" | "host" | "payload" | "expect" | "command" => {
                        // A text with spaces is one shell word: command "/usr/local/bin/check --db".
                        let v = w.value(word, "a text (quote it if it has spaces)")?.to_string();
                        let slot = match word {
                            "path" => &mut spec.path,
                            "body" => &mut spec.body,
                            "host" => &mut spec.host,
                            "payload" => &mut spec.payload,
                            "expect" => &mut spec.expect,
                            _ => &mut spec.command,
                        };
                        w.once(slot, word, v)?;
                    }
                    "tls-verify" => {
                        let v = w.value("tls-verify", "on or off")?;
                        let on = match v {
                            "on" => true,
                            "off" => false,
                            _ => return Err(w.error(format!("tls-verify: '{v}' is not on or off"))),
                        };
                        w.once(&mut spec.tls_verify, "tls-verify", on)?;
                    }
                    "on-down" => {
                        let v = w.value("on-down", "keep or reset")?;
                        let p = v.parse::<DownPolicy>().map_err(|m| w.error(m))?;
                        w.once(&mut on_down, "on-down", p)?;
                    }
                    "all-down" => {
                        let v = w.value("all-down", "fail_open, drop or reset")?;
                        let p = v.parse::<AllDownPolicy>().map_err(|m| w.error(m))?;
                        w.once(&mut all_down, "all-down", p)?;
                    }
                    "passive" => {
                        let v = w.value("passive", "off or FAILURES/WINDOW_MS/BACKOFF_MS")?;
                        let p = if v == "off" {
                            None
                        } else {
                            let n: Vec<u32> = v.split('/').filter_map(|x| x.parse().ok()).collect();
                            let [failures, window_ms, backoff_ms] = n[..] else {
                                return Err(w.error(format!(
                                    "passive: '{v}' is not off or FAILURES/WINDOW_MS/BACKOFF_MS (e.g. 5/10000/5000)"
                                )));
                            };
                            Some(PassiveConfig { failures, window_ms, backoff_ms })
                        };
                        w.once(&mut passive, "passive", p)?;
                    }
                    other => return Err(w.unknown(other, &KEYS[..KEYS.len() - 1])),
                }
            }
            if backend.is_some() && (on_down.is_some() || all_down.is_some() || passive.is_some()) {
                return Err(w.error("on-down, all-down and passive are a service's, not a backend's".into()));
            }
            if spec == HealthSpec::default() && on_down.is_none() && all_down.is_none() && passive.is_none() {
                return Err(w.error(format!("nothing to change (usage: {HEALTH_SET_USAGE})")));
            }
            Ok(Request::HealthSet { service, backend, spec: Box::new(spec), passive, on_down, all_down })
        }
        HealthVerb::Del(VerbArgs { args }) => {
            let mut w = Words::new("fvs health del", &args);
            let service = w.service_key(HEALTH_DEL_USAGE)?;
            let mut backend = None;
            while let Some(word) = w.next() {
                match word {
                    "backend" => {
                        let v = w.value("backend", "ADDR:PORT")?;
                        let a = parse_socket(v).map_err(|m| w.error(m))?;
                        w.once(&mut backend, "backend", a)?;
                    }
                    other => return Err(w.unknown(other, &["backend"])),
                }
            }
            Ok(Request::HealthDel { service, backend })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::tests::{request as req, usage_error};

    fn request(line: &str) -> Result<Request, String> {
        Ok(req(line))
    }

    #[test]
    fn set_reads_fields_policies_and_overrides() {
        let r = request("health set tcp 192.0.2.100:80 type http path /hz interval 500 fall 2 on-down reset all-down drop passive 5/10000/3000").unwrap();
        let Request::HealthSet { backend, spec, passive, on_down, all_down, .. } = r else { panic!("{r:?}") };
        assert_eq!(backend, None);
        assert_eq!(spec.check, Some(CheckKind::Http));
        assert_eq!((spec.path.as_deref(), spec.interval_ms, spec.fall), (Some("/hz"), Some(500), Some(2)));
        assert_eq!((on_down, all_down), (Some(DownPolicy::Reset), Some(AllDownPolicy::Drop)));
        assert_eq!(passive, Some(Some(PassiveConfig { failures: 5, window_ms: 10000, backoff_ms: 3000 })));
        let r = request("health set tcp 192.0.2.100:80 backend 198.51.100.11:8080 port 9000").unwrap();
        let Request::HealthSet { backend, spec, .. } = r else { panic!() };
        assert_eq!(backend, Some("198.51.100.11:8080".parse().unwrap()));
        assert_eq!(spec.port, Some(9000));
        assert!(usage_error("health set tcp 192.0.2.100:80").contains("nothing to change"));
        assert!(usage_error("health set tcp 192.0.2.100:80 type smtp").contains("not a check type"));
        assert!(usage_error("health set tcp 192.0.2.100:80 passive 5/1").contains("FAILURES/WINDOW_MS"));
        assert!(usage_error("health set tcp 192.0.2.100:80 backend 198.51.100.11:8080 all-down drop")
            .contains("not a backend's"));
        assert_eq!(
            request("health del tcp 192.0.2.100:80 backend 198.51.100.11:8080").unwrap(),
            Request::HealthDel {
                service: crate::config::ServiceKey {
                    protocol: crate::config::Protocol::Tcp,
                    vip: "192.0.2.100".parse().unwrap(),
                    port: 80
                },
                backend: Some("198.51.100.11:8080".parse().unwrap())
            }
        );
    }
}
