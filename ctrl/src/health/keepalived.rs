//! `fvs import keepalived FILE`: the `virtual_server` blocks of a keepalived.conf as ferrovs
//! services (YAML), with their checkers as health checks. keepalived's grammar: one keyword
//! and its arguments per line, `{ ... }` blocks (the brace may open on the next line), `#` and
//! `!` comments, `include PATTERN` (relative to the including file, with globs). Everything
//! with no ferrovs equivalent is listed with its file and line.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use crate::config::{
    AllDownPolicy, BackendConfig, BackendState, CheckKind, ForwardMode, HealthSpec, Protocol, ServiceConfig, ServiceKey,
};
use dataplane::sched::SchedKind;

/// Includes nested deeper than this are refused (keepalived's own limit is similar).
const MAX_INCLUDE_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Open,
    Close,
    Newline,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: String,
}

/// A statement: its words, where it is, and its block's statements.
#[derive(Debug, Clone, Default)]
struct Node {
    words: Vec<String>,
    at: String,
    children: Vec<Node>,
}

impl Node {
    fn key(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }
    fn arg(&self, i: usize) -> Option<&str> {
        self.words.get(i).map(String::as_str)
    }
}

/// The result: YAML for the services, and the items it could not carry over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub services: Vec<ServiceConfig>,
    /// `FILE:LINE: what` for each item with no equivalent.
    pub unsupported: Vec<String>,
}

impl Import {
    /// The YAML `fvs import` prints: the unsupported items as comments, then `services:`.
    pub fn to_yaml(&self) -> Result<String, String> {
        let mut out = String::from("# ferrovs services imported from keepalived.conf (fvs import keepalived)\n");
        if self.unsupported.is_empty() {
            out.push_str("# every item had an equivalent\n");
        } else {
            out.push_str("# not carried over (no ferrovs equivalent):\n");
            for u in &self.unsupported {
                out.push_str(&format!("#   {u}\n"));
            }
        }
        #[derive(serde::Serialize)]
        struct Doc<'a> {
            services: &'a [ServiceConfig],
        }
        let yaml = serde_norway::to_string(&Doc { services: &self.services }).map_err(|e| e.to_string())?;
        out.push_str(&yaml);
        Ok(out)
    }
}

/// Reads `path` (and what it includes) and converts its virtual servers.
pub fn import_file(path: &Path) -> Result<Import, String> {
    let mut tokens = Vec::new();
    tokenize_file(path, 0, &mut tokens)?;
    let mut pos = 0;
    let nodes = parse_block(&tokens, &mut pos, false)?;
    Ok(convert(&nodes))
}

/// Converts keepalived.conf text (includes relative to `base`).
pub fn import_text(text: &str, name: &str, base: &Path) -> Result<Import, String> {
    let mut tokens = Vec::new();
    tokenize(text, name, base, 0, &mut tokens)?;
    let mut pos = 0;
    let nodes = parse_block(&tokens, &mut pos, false)?;
    Ok(convert(&nodes))
}

fn tokenize_file(path: &Path, depth: usize, out: &mut Vec<Token>) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    tokenize(&text, &path.display().to_string(), base, depth, out)
}

fn tokenize(text: &str, name: &str, base: &Path, depth: usize, out: &mut Vec<Token>) -> Result<(), String> {
    for (n, line) in text.lines().enumerate() {
        let at = format!("{name}:{}", n + 1);
        let words = split_line(line);
        if words.first().map(String::as_str) == Some("include") {
            let Some(pattern) = words.get(1) else { return Err(format!("{at}: include without a file")) };
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(format!("{at}: includes nested more than {MAX_INCLUDE_DEPTH} deep"));
            }
            let files = glob(base, pattern).map_err(|e| format!("{at}: include {pattern}: {e}"))?;
            for f in files {
                tokenize_file(&f, depth + 1, out)?;
            }
            continue;
        }
        for w in words {
            let tok = match w.as_str() {
                "{" => Tok::Open,
                "}" => Tok::Close,
                _ => Tok::Word(w),
            };
            out.push(Token { tok, at: at.clone() });
        }
        out.push(Token { tok: Tok::Newline, at });
    }
    Ok(())
}

/// A line's words: `#`/`!` start a comment, braces are words of their own, "quoted strings"
/// are one word.
fn split_line(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut chars = line.chars().peekable();
    let flush = |cur: &mut String, words: &mut Vec<String>| {
        if !cur.is_empty() {
            words.push(std::mem::take(cur));
        }
    };
    while let Some(c) = chars.next() {
        match c {
            '#' | '!' => break,
            '"' => {
                flush(&mut cur, &mut words);
                let mut q = String::new();
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    q.push(c);
                }
                words.push(q);
            }
            '{' | '}' => {
                flush(&mut cur, &mut words);
                words.push(c.to_string());
            }
            c if c.is_whitespace() => flush(&mut cur, &mut words),
            c => cur.push(c),
        }
    }
    flush(&mut cur, &mut words);
    words
}

/// The files `pattern` names (relative to `base`), sorted; `*`, `?` and `[...]` in its last
/// component. A pattern without wildcards must name a file.
fn glob(base: &Path, pattern: &str) -> Result<Vec<PathBuf>, String> {
    let full = if Path::new(pattern).is_absolute() { PathBuf::from(pattern) } else { base.join(pattern) };
    let name = full.file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
    if !name.contains(['*', '?', '[']) {
        return if full.is_file() { Ok(vec![full]) } else { Err("no such file".into()) };
    }
    let dir = full.parent().unwrap_or(Path::new("."));
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .filter(|e| e.path().is_file() && e.file_name().to_str().is_some_and(|n| wildcard(&name, n)))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Shell-style matching of `name` against `pattern` (`*`, `?`, `[abc]`, `[a-z]`).
fn wildcard(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    fn go(p: &[char], n: &[char]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some('*') => (0..=n.len()).any(|i| go(&p[1..], &n[i..])),
            Some('?') => !n.is_empty() && go(&p[1..], &n[1..]),
            Some('[') => {
                let Some(end) = p.iter().position(|&c| c == ']') else { return false };
                let Some(&c) = n.first() else { return false };
                let set = &p[1..end];
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == '-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit && go(&p[end + 1..], &n[1..])
            }
            Some(&c) => n.first() == Some(&c) && go(&p[1..], &n[1..]),
        }
    }
    go(&p, &n)
}

fn parse_block(tokens: &[Token], pos: &mut usize, nested: bool) -> Result<Vec<Node>, String> {
    let mut nodes = Vec::new();
    let mut cur = Node::default();
    while *pos < tokens.len() {
        let t = &tokens[*pos];
        *pos += 1;
        match &t.tok {
            Tok::Word(w) => {
                if cur.words.is_empty() {
                    cur.at = t.at.clone();
                }
                cur.words.push(w.clone());
            }
            Tok::Newline => {
                if cur.words.is_empty() {
                    continue;
                }
                // The block may open on a following line.
                let mut look = *pos;
                while tokens.get(look).is_some_and(|t| t.tok == Tok::Newline) {
                    look += 1;
                }
                if tokens.get(look).is_some_and(|t| t.tok == Tok::Open) {
                    continue;
                }
                nodes.push(std::mem::take(&mut cur));
            }
            Tok::Open => {
                if cur.words.is_empty() {
                    return Err(format!("{}: a block with no keyword before it", t.at));
                }
                cur.children = parse_block(tokens, pos, true)?;
                nodes.push(std::mem::take(&mut cur));
            }
            Tok::Close => {
                if !nested {
                    return Err(format!("{}: '}}' closes no block", t.at));
                }
                if !cur.words.is_empty() {
                    nodes.push(cur);
                }
                return Ok(nodes);
            }
        }
    }
    if nested {
        return Err(format!(
            "{}: a block is not closed (missing '}}')",
            tokens.last().map_or("end of file", |t| t.at.as_str())
        ));
    }
    if !cur.words.is_empty() {
        nodes.push(cur);
    }
    Ok(nodes)
}

/// Global sections of keepalived.conf that are not about virtual servers: ignored without
/// a mention (VRRP and the rest keep running in keepalived itself).
const NOT_OURS: [&str; 8] = [
    "global_defs",
    "vrrp_instance",
    "vrrp_sync_group",
    "vrrp_script",
    "vrrp_track_process",
    "static_ipaddress",
    "static_routes",
    "static_rules",
];

fn convert(nodes: &[Node]) -> Import {
    let mut services = Vec::new();
    let mut unsupported = Vec::new();
    for n in nodes {
        match n.key() {
            "virtual_server" => match virtual_server(n, &mut unsupported) {
                Ok(s) => services.push(s),
                Err(e) => unsupported.push(format!("{}: {e}", n.at)),
            },
            "virtual_server_group" => unsupported.push(format!("{}: virtual_server_group", n.at)),
            k if NOT_OURS.contains(&k) || k.starts_with("vrrp_") => {}
            k => unsupported.push(format!("{}: {k}", n.at)),
        }
    }
    Import { services, unsupported }
}

fn number<T: std::str::FromStr>(n: &Node, i: usize) -> Result<T, String> {
    let w = n.arg(i).ok_or_else(|| format!("{} needs a value", n.key()))?;
    w.parse().map_err(|_| format!("{} {w}: not a number", n.key()))
}

fn seconds_ms(n: &Node) -> Result<u32, String> {
    let w = n.arg(1).ok_or_else(|| format!("{} needs a value", n.key()))?;
    let s: f64 = w.parse().map_err(|_| format!("{} {w}: not a number of seconds", n.key()))?;
    Ok((s * 1000.0).round().clamp(0.0, u32::MAX as f64) as u32)
}

fn virtual_server(n: &Node, unsupported: &mut Vec<String>) -> Result<ServiceConfig, String> {
    if matches!(n.arg(1), Some("fwmark" | "group")) {
        return Err(format!(
            "virtual_server {} (fwmark and group services have no equivalent)",
            n.words[1..].join(" ")
        ));
    }
    let (Some(ip), Some(port)) = (n.arg(1), n.arg(2)) else {
        return Err(format!("virtual_server {}: needs an address and a port", n.words[1..].join(" ")));
    };
    let vip: IpAddr = ip.parse().map_err(|_| format!("virtual_server {ip}: not an address"))?;
    let port: u16 = port.parse().map_err(|_| format!("virtual_server {ip} {port}: not a port"))?;
    let mut s = ServiceConfig::new(ServiceKey { protocol: Protocol::Tcp, vip, port });
    let mut delay_loop_ms = None;
    let mut real_servers = Vec::new();
    let mut more = |at: &str, what: String| unsupported.push(format!("{at}: {what}"));
    for c in &n.children {
        let v = c.arg(1).unwrap_or("");
        match c.key() {
            "lb_algo" | "lvs_sched" => match v {
                "rr" => s.scheduler = SchedKind::Rr,
                "wrr" => s.scheduler = SchedKind::Wrr,
                "lc" => s.scheduler = SchedKind::Lc,
                "wlc" => s.scheduler = SchedKind::Wlc,
                "sh" => s.scheduler = SchedKind::Sh,
                "mh" => s.scheduler = SchedKind::Mh,
                "fo" => s.scheduler = SchedKind::Fo,
                other => more(&c.at, format!("lb_algo {other} (ferrovs has rr wrr lc wlc sh mh fo twos); kept wlc")),
            },
            "lb_kind" | "lvs_method" => match v.to_ascii_uppercase().as_str() {
                "NAT" => s.mode = ForwardMode::Nat,
                "DR" => s.mode = ForwardMode::Dr,
                "TUN" => s.mode = ForwardMode::Tun,
                other => more(&c.at, format!("lb_kind {other}")),
            },
            "protocol" => match v.to_ascii_uppercase().as_str() {
                "TCP" => s.protocol = Protocol::Tcp,
                "UDP" => s.protocol = Protocol::Udp,
                other => more(&c.at, format!("protocol {other} (ferrovs has TCP and UDP)")),
            },
            "persistence_timeout" => s.persistence_s = number(c, 1)?,
            "delay_loop" => delay_loop_ms = Some(seconds_ms(c)?),
            "real_server" => real_servers.push(c),
            // keepalived's sorry server takes over when all are down; ferrovs' nearest is a
            // policy, not a server.
            "sorry_server" => {
                more(&c.at, format!("sorry_server {} (see all_down: fail_open|drop|reset)", c.words[1..].join(" ")))
            }
            "inhibit_on_failure" => {}
            other => more(&c.at, other.to_string()),
        }
    }
    let mut specs = Vec::new();
    for r in &real_servers {
        let (Some(ip), Some(p)) = (r.arg(1), r.arg(2)) else {
            more(&r.at, "real_server without address and port".into());
            continue;
        };
        let (Ok(addr), Ok(bport)) = (ip.parse::<IpAddr>(), p.parse::<u16>()) else {
            more(&r.at, format!("real_server {ip} {p}: not an address and port"));
            continue;
        };
        let mut b =
            BackendConfig { addr, port: bport, weight: 1, state: BackendState::Active, health: None, max_conns: 0 };
        let mut spec: Option<HealthSpec> = None;
        for c in &r.children {
            match c.key() {
                "weight" => b.weight = number(c, 1)?,
                "inhibit_on_failure" => {}
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" if spec.is_some() => {
                    more(&c.at, format!("{} (a second checker; ferrovs runs one per backend)", c.key()))
                }
                "TCP_CHECK" | "HTTP_GET" | "SSL_GET" | "MISC_CHECK" => spec = Some(checker(c, &mut more)?),
                other => more(&c.at, format!("real_server {other}")),
            }
        }
        if let (Some(sp), Some(ms)) = (spec.as_mut(), delay_loop_ms) {
            sp.interval_ms = Some(ms.max(100));
        }
        specs.push(spec);
        s.backends.push(b);
    }
    // One check for all (the usual case) goes on the service; differing ones on each backend.
    if let Some(first) = specs.first().cloned().flatten() {
        if specs.iter().all(|sp| sp.as_ref() == Some(&first)) {
            s.health = Some(Box::new(first));
        } else {
            for (b, sp) in s.backends.iter_mut().zip(specs) {
                b.health =
                    Some(Box::new(sp.unwrap_or(HealthSpec { check: Some(CheckKind::None), ..Default::default() })));
            }
        }
    }
    // keepalived removes failed real servers and sends to none when all failed (or to the
    // sorry server): drop, not ferrovs' fail_open default.
    if s.health.is_some() || s.backends.iter().any(|b| b.health.is_some()) {
        s.all_down = AllDownPolicy::Drop;
    }
    Ok(s)
}

fn checker(c: &Node, more: &mut dyn FnMut(&str, String)) -> Result<HealthSpec, String> {
    let kind = match c.key() {
        "TCP_CHECK" => CheckKind::Tcp,
        "HTTP_GET" => CheckKind::Http,
        "SSL_GET" => CheckKind::Https,
        _ => CheckKind::Script,
    };
    // keepalived brings a server back after one success.
    let mut spec = HealthSpec { check: Some(kind), rise: Some(1), fall: Some(1), ..Default::default() };
    if kind == CheckKind::Https {
        spec.tls_verify = Some(false);
    }
    let mut urls = 0;
    for o in &c.children {
        match o.key() {
            "connect_timeout" | "misc_timeout" => spec.timeout_ms = Some(seconds_ms(o)?.max(10)),
            "connect_port" => spec.port = Some(number(o, 1)?),
            "bindto" => spec.source = Some(o.arg(1).unwrap_or("").parse().map_err(|_| "bindto: not an address")?),
            "retry" | "nb_get_retry" => spec.fall = Some(number::<u32>(o, 1)?.max(1)),
            "virtualhost" => spec.host = o.arg(1).map(str::to_string),
            "misc_path" => spec.command = Some(o.words[1..].join(" ")),
            "url" => {
                urls += 1;
                if urls > 1 {
                    more(&o.at, "url (a second one; ferrovs checks one path)".into());
                    continue;
                }
                for u in &o.children {
                    match u.key() {
                        "path" => spec.path = u.arg(1).map(str::to_string),
                        "status_code" => spec.status = Some(number(u, 1)?),
                        other => more(&u.at, format!("url {other}")),
                    }
                }
            }
            other => more(&o.at, format!("{} {other}", c.key())),
        }
    }
    Ok(spec)
}

/// Maps each service to its config key (tests).
pub fn by_key(services: &[ServiceConfig]) -> BTreeMap<String, &ServiceConfig> {
    services.iter().map(|s| (s.key().to_string(), s)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONF: &str = r#"! Configuration File for keepalived
global_defs {
   router_id LVS_DEVEL
}

vrrp_instance VI_1 {
    state MASTER
    interface eth0
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.100
    }
}

virtual_server 192.0.2.100 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind NAT
    persistence_timeout 50
    protocol TCP
    sorry_server 198.51.100.99 80

    real_server 198.51.100.11 8080 {
        weight 3
        HTTP_GET {
            url {
              path /health
              status_code 200
              digest 9b3a0c85a887a256d6939da88aabd8cd
            }
            connect_timeout 3
            retry 3
            delay_before_retry 3
        }
    }
    real_server 198.51.100.12 8080
    {
        weight 1   # the brace on the next line
        HTTP_GET {
            url {
              path /health
              status_code 200
              digest 9b3a0c85a887a256d6939da88aabd8cd
            }
            connect_timeout 3
            retry 3
            delay_before_retry 3
        }
    }
}

virtual_server 192.0.2.100 443 {
    delay_loop 2
    lb_algo lblc
    lb_kind DR
    protocol TCP
    real_server 198.51.100.11 443 {
        SSL_GET {
            url {
                path /
                status_code 204
            }
            connect_timeout 1
        }
    }
    real_server 198.51.100.12 443 {
        TCP_CHECK {
            connect_port 443
            connect_timeout 2
            bindto 198.51.100.1
        }
    }
}

virtual_server fwmark 1 {
    lb_kind DR
}
include conf.d/*.conf
"#;

    #[test]
    fn a_realistic_file_with_an_include() {
        let dir = std::env::temp_dir().join(format!("fvs-keepalived-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("conf.d/10-dns.conf"),
            "virtual_server 192.0.2.101 53 {\n  lb_algo rr\n  lb_kind TUN\n  protocol UDP\n  delay_loop 5\n  real_server 198.51.100.21 53 {\n    MISC_CHECK {\n      misc_path \"/usr/local/bin/check_dns 198.51.100.21\"\n      misc_timeout 4\n    }\n  }\n}\n",
        )
        .unwrap();
        std::fs::write(dir.join("conf.d/README"), "not included: no .conf").unwrap();
        std::fs::write(dir.join("keepalived.conf"), CONF).unwrap();
        let got = import_file(&dir.join("keepalived.conf")).unwrap();
        let s = by_key(&got.services);
        assert_eq!(s.len(), 3, "{:?}", s.keys());

        let web = s["tcp 192.0.2.100:80"];
        assert_eq!((web.scheduler, web.mode, web.persistence_s), (SchedKind::Wrr, ForwardMode::Nat, 50));
        assert_eq!(web.backends.iter().map(|b| (b.port, b.weight)).collect::<Vec<_>>(), vec![(8080, 3), (8080, 1)]);
        let h = web.health.as_ref().expect("one check for both goes on the service");
        assert_eq!(h.check, Some(CheckKind::Http));
        assert_eq!(
            (h.path.as_deref(), h.status, h.timeout_ms, h.fall, h.interval_ms),
            (Some("/health"), Some(200), Some(3000), Some(3), Some(6000))
        );
        assert_eq!(web.all_down, AllDownPolicy::Drop);

        let tls = s["tcp 192.0.2.100:443"];
        assert_eq!((tls.mode, tls.scheduler), (ForwardMode::Dr, SchedKind::Wlc));
        assert!(tls.health.is_none(), "two different checks go on the backends");
        let b0 = tls.backends[0].health.as_ref().unwrap();
        assert_eq!(
            (b0.check, b0.status, b0.tls_verify, b0.interval_ms),
            (Some(CheckKind::Https), Some(204), Some(false), Some(2000))
        );
        let b1 = tls.backends[1].health.as_ref().unwrap();
        assert_eq!(
            (b1.check, b1.port, b1.source),
            (Some(CheckKind::Tcp), Some(443), Some("198.51.100.1".parse().unwrap()))
        );

        let dns = s["udp 192.0.2.101:53"];
        assert_eq!(dns.mode, ForwardMode::Tun);
        let d = dns.health.as_ref().unwrap();
        assert_eq!(
            (d.check, d.command.as_deref(), d.timeout_ms),
            (Some(CheckKind::Script), Some("/usr/local/bin/check_dns 198.51.100.21"), Some(4000))
        );

        let u = got.unsupported.join("\n");
        for want in [
            "keepalived.conf:21: sorry_server 198.51.100.99 80",
            "keepalived.conf:29: url digest",
            "keepalived.conf:33: HTTP_GET delay_before_retry",
            "keepalived.conf:54: lb_algo lblc",
            "keepalived.conf:75: virtual_server fwmark 1",
        ] {
            assert!(u.contains(want), "missing {want:?} in:\n{u}");
        }
        assert!(!u.contains("vrrp") && !u.contains("global_defs"), "VRRP is keepalived's own business:\n{u}");

        // The YAML reads back as ferrovs services, with the unsupported items as comments.
        let yaml = got.to_yaml().unwrap();
        assert!(yaml.contains("#   ") && yaml.contains("lb_algo lblc"), "{yaml}");
        let full = format!("ports: [ {{ name: dp0, device: net_null0 }} ]\naddresses: [ {{ port: dp0, addr: 198.51.100.1/24 }} ]\n{yaml}");
        let config = crate::config::Config::from_yaml(&full, "imported.yaml").unwrap();
        assert_eq!(config.services, got.services);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn broken_files_are_named() {
        let base = Path::new("/nonexistent");
        let e = import_text("virtual_server 192.0.2.1 80 {\n  lb_algo rr\n", "k.conf", base).unwrap_err();
        assert!(e.contains("not closed"), "{e}");
        let e = import_text("}\n", "k.conf", base).unwrap_err();
        assert_eq!(e, "k.conf:1: '}' closes no block");
        let e = import_text("include missing.conf\n", "k.conf", base).unwrap_err();
        assert_eq!(e, "k.conf:1: include missing.conf: no such file");
        // Comments with braces inside do not count.
        let ok = import_text("virtual_server 192.0.2.1 80 { # }\n ! {\n lb_kind DR\n}\n", "k.conf", base).unwrap();
        assert_eq!(ok.services[0].mode, ForwardMode::Dr);
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("*.conf", "10-web.conf"));
        assert!(!wildcard("*.conf", "README"));
        assert!(wildcard("vs-?[0-9].conf", "vs-a7.conf"));
        assert!(!wildcard("vs-?[0-9].conf", "vs-ab.conf"));
    }
}
