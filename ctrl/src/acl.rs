//! Access lists and limits as the workers see them: the global deny list and each service's
//! `deny`, `allow`, `limits` and backends' `max_conns`, built into the snapshot's
//! [`Guard`]. Each list entry is a rule with its own drop counter; `fvs acl show` lists them.

use std::net::Ipv4Addr;
use std::sync::Arc;

use dataplane::defence::{Guard, PrefixSet, RuleCounters, ServiceGuard};
use dataplane::net::Prefix;
use dataplane::service::Services;
use serde::{Deserialize, Serialize};

use crate::config::lb::ServiceConfig;

/// What a rule does.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AclAction {
    /// Sources in the prefix are refused.
    Deny,
    /// Sources in the prefix may connect (the service has an allow list).
    Allow,
    /// Sources in none of the service's allow prefixes are refused.
    NotAllowed,
}

/// One rule: where it applies (`global` or a service), what it does and to which prefix.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AclRule {
    pub scope: String,
    pub action: AclAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<Prefix>,
}

/// A rule with its drops so far (all cores), as `fvs acl show` reports it.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct AclInfo {
    #[serde(flatten)]
    pub rule: AclRule,
    pub drops: u64,
}

fn v4(p: &Prefix) -> (Ipv4Addr, u8) {
    match p.addr() {
        std::net::IpAddr::V4(a) => (a, p.len()),
        // Validation refuses IPv6 entries.
        std::net::IpAddr::V6(_) => (Ipv4Addr::UNSPECIFIED, 32),
    }
}

/// The rules of `deny` (global) and the services' lists, numbered in this order.
pub fn rules(deny: &[Prefix], services: &[ServiceConfig]) -> Vec<AclRule> {
    let mut out: Vec<AclRule> =
        deny.iter().map(|p| AclRule { scope: "global".into(), action: AclAction::Deny, prefix: Some(*p) }).collect();
    for s in services {
        let scope = s.key().to_string();
        out.extend(s.deny.iter().map(|p| AclRule { scope: scope.clone(), action: AclAction::Deny, prefix: Some(*p) }));
        if !s.allow.is_empty() {
            out.extend(s.allow.iter().map(|p| AclRule {
                scope: scope.clone(),
                action: AclAction::Allow,
                prefix: Some(*p),
            }));
            out.push(AclRule { scope, action: AclAction::NotAllowed, prefix: None });
        }
    }
    out
}

/// The workers' guard for `built` (the services built from `services`, same order), with
/// `cores` workers; the counters of `previous` are kept when the rules are the same.
pub fn build_guard(
    deny: &[Prefix],
    services: &[ServiceConfig],
    built: &Services,
    cores: usize,
    previous: Option<(&[AclRule], &Arc<RuleCounters>)>,
) -> (Guard, Vec<AclRule>) {
    let rules = rules(deny, services);
    let counters = match previous {
        Some((old, counters)) if old == rules.as_slice() => counters.clone(),
        _ => Arc::new(RuleCounters::new(rules.len(), cores)),
    };
    let mut next = 0u32;
    // The set of a list whose first rule is number `*next`, which moves past it.
    let list = |prefixes: &[Prefix], next: &mut u32| {
        let entries: Vec<(Ipv4Addr, u8, u32)> = prefixes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (a, l) = v4(p);
                (a, l, *next + i as u32)
            })
            .collect();
        *next += prefixes.len() as u32;
        PrefixSet::build(&entries)
    };
    let global = list(deny, &mut next);
    let mut by_slot: Vec<Option<ServiceGuard>> = Vec::new();
    for (cfg, svc) in services.iter().zip(&built.list) {
        let deny = list(&cfg.deny, &mut next);
        let allow = list(&cfg.allow, &mut next);
        let allow_miss_rule = if cfg.allow.is_empty() {
            dataplane::defence::NO_RULE
        } else {
            next += 1;
            next - 1
        };
        let backend_max_conns: Vec<u32> = if cfg.backends.iter().any(|b| b.max_conns > 0) {
            cfg.backends.iter().map(|b| b.max_conns).collect()
        } else {
            Vec::new()
        };
        let l = cfg.limits;
        let g = ServiceGuard {
            slot: svc.slot,
            gen: svc.gen,
            deny,
            allow,
            allow_miss_rule,
            conns_per_s: l.conns_per_s,
            source_conns_per_s: l.source_conns_per_s,
            source_burst: l.source_burst,
            backend_max_conns,
        };
        let has_any = !g.deny.is_empty()
            || !g.allow.is_empty()
            || g.conns_per_s > 0
            || g.source_conns_per_s > 0
            || !g.backend_max_conns.is_empty();
        if has_any {
            let slot = usize::from(svc.slot);
            if by_slot.len() <= slot {
                by_slot.resize(slot + 1, None);
            }
            by_slot[slot] = Some(g);
        }
    }
    (Guard { deny: global, services: by_slot, counters }, rules)
}

/// `fvs acl show`: every rule with its drops.
pub fn infos(rules: &[AclRule], counters: &RuleCounters) -> Vec<AclInfo> {
    rules.iter().enumerate().map(|(i, r)| AclInfo { rule: r.clone(), drops: counters.total(i as u32) }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefix(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn rules_are_numbered_global_first_then_by_service() {
        let yaml = "- {vip: 192.0.2.100, port: 80, protocol: tcp, deny: [198.51.100.0/24], allow: [203.0.113.0/24, 192.0.2.0/24], limits: {source_conns_per_s: 5}, backends: [{addr: 198.51.100.11, port: 80, max_conns: 10}]}\n- {vip: 192.0.2.100, port: 81, protocol: tcp}";
        let services: Vec<ServiceConfig> = serde_norway::from_str(yaml).unwrap();
        let deny = [prefix("203.0.113.128/25")];
        let r = rules(&deny, &services);
        let actions: Vec<_> = r.iter().map(|r| (r.scope.as_str(), r.action)).collect();
        assert_eq!(
            actions,
            [
                ("global", AclAction::Deny),
                ("tcp 192.0.2.100:80", AclAction::Deny),
                ("tcp 192.0.2.100:80", AclAction::Allow),
                ("tcp 192.0.2.100:80", AclAction::Allow),
                ("tcp 192.0.2.100:80", AclAction::NotAllowed),
            ]
        );
        let mut lb = crate::lbstate::LbState::new(crate::lbstate::limits(&Default::default(), 8));
        let built = lb.build(&services, &[], &|_| None, &Default::default(), None).unwrap();
        let (guard, r2) = build_guard(&deny, &services, &built, 2, None);
        assert_eq!(r, r2);
        let ip = |s: &str| s.parse::<Ipv4Addr>().unwrap();
        // The global /25 is rule 0; the service's own lists follow.
        assert_eq!(guard.deny.lookup(ip("203.0.113.200")), Some(0));
        let g = guard.service(built.list[0].slot, built.list[0].gen).unwrap();
        assert_eq!(g.deny.lookup(ip("198.51.100.7")), Some(1));
        assert_eq!(g.allow.lookup(ip("203.0.113.7")), Some(2));
        assert_eq!(g.allow.lookup(ip("192.0.2.7")), Some(3));
        assert_eq!(g.allow_miss_rule, 4);
        assert_eq!((g.source_conns_per_s, g.backend_max_conns.as_slice()), (5, &[10][..]));
        // The second service has no settings.
        assert!(guard.service(built.list[1].slot, built.list[1].gen).is_none());
        // Counters stay while the rules do.
        guard.counters.hit(4, 1);
        let (again, _) = build_guard(&deny, &services, &built, 2, Some((&r, &guard.counters)));
        assert_eq!(infos(&r, &again.counters)[4].drops, 1);
        let (fresh, _) = build_guard(&[], &services, &built, 2, Some((&r, &guard.counters)));
        assert_eq!(fresh.counters.total(3), 0);
    }
}
