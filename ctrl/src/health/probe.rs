//! The active probes, each one future on the health runtime: a TCP connect, an HTTP(S) GET,
//! a UDP exchange, an ICMP echo, a script. They go through the kernel's stack of ferrovs'
//! network namespace (with a kernel interface on a port, the box's own address on it: the
//! probes cross the same NIC as the traffic). Each returns what it saw, or why it failed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};

use crate::config::{Check, CheckKind};

/// Bytes of an HTTP answer read at most (status line, headers and the start of the body).
const HTTP_READ_LIMIT: usize = 64 * 1024;

/// The TLS client settings, made once: with and without certificate verification.
#[derive(Clone)]
pub struct Tls {
    verify: Arc<ClientConfig>,
    trust_all: Arc<ClientConfig>,
}

impl Tls {
    pub fn new() -> Tls {
        // ring lacks post-quantum key exchange, which a health probe does not need; aws-lc-rs
        // would need cmake and nasm to build.
        #[allow(deprecated)]
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
        let verify = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        let trust_all = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default TLS versions")
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(TrustAll(provider)))
            .with_no_client_auth();
        Tls { verify: Arc::new(verify), trust_all: Arc::new(trust_all) }
    }
}

impl Default for Tls {
    fn default() -> Self {
        Tls::new()
    }
}

/// `tls_verify: false`: any certificate is taken (a health check asks "does the backend
/// answer", not "is it who it says"); the handshake signatures are still checked.
#[derive(Debug)]
struct TrustAll(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for TrustAll {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Runs `check` once within its timeout: Ok(what it saw) or Err(why it failed).
pub async fn run(check: &Check, tls: &Tls) -> Result<String, String> {
    match tokio::time::timeout(check.timeout, probe(check, tls)).await {
        Ok(r) => r,
        Err(_) => Err(format!("timeout after {} ms", check.timeout.as_millis())),
    }
}

async fn probe(check: &Check, tls: &Tls) -> Result<String, String> {
    match check.kind {
        CheckKind::Tcp => connect(check).await.map(|_| "connected".to_string()),
        CheckKind::Http => {
            let stream = connect(check).await?;
            http_get(stream, check).await
        }
        CheckKind::Https => {
            let stream = connect(check).await?;
            let config = if check.tls_verify { tls.verify.clone() } else { tls.trust_all.clone() };
            let name = match &check.host {
                Some(h) => ServerName::try_from(h.clone()).map_err(|e| format!("host {h}: {e}"))?,
                None => ServerName::IpAddress(check.target.ip().into()),
            };
            let stream = tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map_err(|e| format!("TLS handshake: {e}"))?;
            http_get(stream, check).await
        }
        CheckKind::Udp => udp(check).await,
        CheckKind::Ping => ping(check).await,
        CheckKind::Script => script(check).await,
        CheckKind::None => Ok("not checked".into()),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        std::io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

async fn connect(check: &Check) -> Result<TcpStream, String> {
    let socket = match check.target {
        SocketAddr::V4(_) => TcpSocket::new_v4(),
        SocketAddr::V6(_) => TcpSocket::new_v6(),
    }
    .map_err(|e| format!("socket: {e}"))?;
    if let Some(source) = check.source {
        socket.bind(SocketAddr::new(source, 0)).map_err(|e| format!("bind to source {source}: {e}"))?;
    }
    socket.connect(check.target).await.map_err(|e| io_reason(&e))
}

/// GET the path (HTTP/1.0, `Connection: close`), then the status and the body substring.
async fn http_get<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin>(
    mut stream: S,
    check: &Check,
) -> Result<String, String> {
    let host = check.host.clone().unwrap_or_else(|| check.target.ip().to_string());
    let request = format!(
        "GET {} HTTP/1.0\r\nHost: {host}\r\nUser-Agent: ferrovs-health\r\nConnection: close\r\n\r\n",
        check.path
    );
    stream.write_all(request.as_bytes()).await.map_err(|e| format!("sending the request: {}", io_reason(&e)))?;
    let mut answer = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() >= HTTP_READ_LIMIT {
                    break;
                }
                // Without a body to look for, the status line is all it takes.
                if check.body.is_none() && answer.windows(2).any(|w| w == b"\r\n") {
                    break;
                }
            }
            // Servers closing TLS without close_notify: what came is what counts.
            Err(e) if !answer.is_empty() && e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(format!("reading the answer: {}", io_reason(&e))),
        }
    }
    judge_http(&answer, check.status, check.body.as_deref())
}

/// The answer's verdict: its status against `status`, its body against `body`.
pub fn judge_http(answer: &[u8], status: u16, body: Option<&str>) -> Result<String, String> {
    let line_end = answer.windows(2).position(|w| w == b"\r\n").unwrap_or(answer.len());
    let line = String::from_utf8_lossy(&answer[..line_end]);
    let mut words = line.split_whitespace();
    let (Some(version), Some(code)) = (words.next(), words.next()) else {
        return Err(if answer.is_empty() { "empty answer".into() } else { format!("not HTTP: {line:.60}") });
    };
    if !version.starts_with("HTTP/") {
        return Err(format!("not HTTP: {line:.60}"));
    }
    let got: u16 = code.parse().map_err(|_| format!("bad status line: {line:.60}"))?;
    if got != status {
        return Err(format!("HTTP {got}, expected {status}"));
    }
    if let Some(want) = body {
        let start = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(answer.len(), |p| p + 4);
        let text = String::from_utf8_lossy(&answer[start..]);
        if !text.contains(want) {
            return Err(format!("HTTP {got} without {want:?} in the body"));
        }
    }
    Ok(format!("HTTP {got}"))
}

async fn udp(check: &Check) -> Result<String, String> {
    let local = SocketAddr::new(check.source.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)), 0);
    let socket = UdpSocket::bind(local).await.map_err(|e| format!("bind to {local}: {e}"))?;
    socket.connect(check.target).await.map_err(|e| io_reason(&e))?;
    socket.send(check.payload.as_bytes()).await.map_err(|e| io_reason(&e))?;
    let mut buf = vec![0u8; 2048];
    let n = socket.recv(&mut buf).await.map_err(|e| io_reason(&e))?;
    let reply = String::from_utf8_lossy(&buf[..n]);
    match &check.expect {
        Some(want) if !reply.contains(want.as_str()) => Err(format!("reply of {n} bytes without {want:?}")),
        _ => Ok(format!("reply of {n} bytes")),
    }
}

/// An ICMP echo request: through a datagram ICMP socket where the kernel allows this user
/// (`net.ipv4.ping_group_range`), else a raw socket (CAP_NET_RAW).
async fn ping(check: &Check) -> Result<String, String> {
    use socket2::{Domain, Protocol, Socket, Type};
    let target = check.target.ip();
    let (socket, raw) = match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
        Ok(s) => (s, false),
        Err(_) => (
            Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
                .map_err(|e| format!("ICMP socket (datagram and raw): {e}"))?,
            true,
        ),
    };
    if let Some(source) = check.source {
        socket.bind(&SocketAddr::new(source, 0).into()).map_err(|e| format!("bind to source {source}: {e}"))?;
    }
    socket.set_nonblocking(true).map_err(|e| e.to_string())?;
    let socket = UdpSocket::from_std(std::net::UdpSocket::from(socket)).map_err(|e| e.to_string())?;
    let ident = (std::process::id() as u16) ^ 0x4656;
    let seq = next_seq();
    let request = echo_request(ident, seq);
    socket.send_to(&request, SocketAddr::new(target, 0)).await.map_err(|e| io_reason(&e))?;
    let mut buf = [0u8; 1500];
    loop {
        let (n, from) = socket.recv_from(&mut buf).await.map_err(|e| io_reason(&e))?;
        if from.ip() != target {
            continue;
        }
        let mut icmp = &buf[..n];
        if raw {
            let ihl = usize::from(icmp.first().map_or(0, |b| b & 0x0f)) * 4;
            icmp = icmp.get(ihl..).unwrap_or(&[]);
        }
        // Datagram sockets get only their own echo replies (the kernel sets the ident).
        if icmp.len() >= 8 && icmp[0] == 0 && u16::from_be_bytes([icmp[6], icmp[7]]) == seq {
            if raw && u16::from_be_bytes([icmp[4], icmp[5]]) != ident {
                continue;
            }
            return Ok("echo reply".into());
        }
        if icmp.first() == Some(&3) {
            return Err(format!("destination unreachable (code {})", icmp.get(1).copied().unwrap_or(0)));
        }
    }
}

fn next_seq() -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static SEQ: AtomicU16 = AtomicU16::new(1);
    SEQ.fetch_add(1, Ordering::Relaxed)
}

/// An ICMP echo request with 16 bytes of payload and its checksum.
pub fn echo_request(ident: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend_from_slice(&ident.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(b"ferrovs-health\0\0");
    let mut sum = 0u32;
    for pair in p.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

async fn script(check: &Check) -> Result<String, String> {
    let status = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&check.command)
        .env("FVS_BACKEND_ADDR", check.target.ip().to_string())
        .env("FVS_BACKEND_PORT", check.target.port().to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        // A script past its timeout is killed when the probe's future is dropped.
        .kill_on_drop(true)
        .status()
        .await
        .map_err(|e| format!("cannot run {:?}: {e}", check.command))?;
    match status.code() {
        Some(0) => Ok("exit 0".into()),
        Some(c) => Err(format!("exit {c}")),
        None => Err("killed by a signal".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{resolve, HealthSpec};

    fn check(kind: CheckKind, target: SocketAddr, f: impl FnOnce(&mut HealthSpec)) -> Check {
        let mut spec = HealthSpec { check: Some(kind), timeout_ms: Some(2000), ..Default::default() };
        f(&mut spec);
        resolve(Some(&spec), None, target).unwrap()
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
    }

    #[test]
    fn http_answers_are_judged_by_status_and_body() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(judge_http(ok, 200, Some("ell")), Ok("HTTP 200".into()));
        assert_eq!(judge_http(ok, 200, Some("bye")), Err("HTTP 200 without \"bye\" in the body".into()));
        assert_eq!(judge_http(ok, 204, None), Err("HTTP 200, expected 204".into()));
        assert_eq!(judge_http(b"", 200, None), Err("empty answer".into()));
        assert!(judge_http(b"SSH-2.0-OpenSSH\r\n", 200, None).unwrap_err().starts_with("not HTTP"));
    }

    #[test]
    fn echo_requests_have_a_valid_checksum() {
        let p = echo_request(0x1234, 7);
        let mut sum = 0u32;
        for pair in p.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], pair[1]]));
        }
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        assert_eq!(sum, 0xffff);
    }

    #[test]
    fn tcp_http_udp_and_script_probes_against_local_servers() {
        let rt = runtime();
        let tls = Tls::new();
        rt.block_on(async {
            // An HTTP server answering one request per connection.
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let (mut s, _) = listener.accept().await.unwrap();
                    tokio::spawn(async move {
                        let mut buf = [0u8; 1024];
                        let n = s.read(&mut buf).await.unwrap();
                        let req = String::from_utf8_lossy(&buf[..n]).to_string();
                        let answer = if req.starts_with("GET /ok ") {
                            "HTTP/1.0 200 OK\r\n\r\nall good"
                        } else {
                            "HTTP/1.0 404 Not Found\r\n\r\nnope"
                        };
                        s.write_all(answer.as_bytes()).await.unwrap();
                    });
                }
            });
            assert_eq!(run(&check(CheckKind::Tcp, addr, |_| {}), &tls).await, Ok("connected".into()));
            let ok = check(CheckKind::Http, addr, |s| {
                s.path = Some("/ok".into());
                s.body = Some("good".into());
            });
            assert_eq!(run(&ok, &tls).await, Ok("HTTP 200".into()));
            let missing = check(CheckKind::Http, addr, |s| s.path = Some("/missing".into()));
            assert_eq!(run(&missing, &tls).await, Err("HTTP 404, expected 200".into()));

            // A closed port: refused.
            let closed = {
                let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                l.local_addr().unwrap()
            };
            assert_eq!(run(&check(CheckKind::Tcp, closed, |_| {}), &tls).await, Err("connection refused".into()));

            // A server that accepts and never answers: the timeout says so.
            let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let silent_addr = silent.local_addr().unwrap();
            let slow = check(CheckKind::Http, silent_addr, |s| s.timeout_ms = Some(200));
            assert_eq!(run(&slow, &tls).await, Err("timeout after 200 ms".into()));
            drop(silent);

            // UDP echo.
            let echo = UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let echo_addr = echo.local_addr().unwrap();
            tokio::spawn(async move {
                let mut buf = [0u8; 100];
                loop {
                    let (n, from) = echo.recv_from(&mut buf).await.unwrap();
                    echo.send_to(&buf[..n], from).await.unwrap();
                }
            });
            let udp = check(CheckKind::Udp, echo_addr, |s| {
                s.payload = Some("ping".into());
                s.expect = Some("ping".into());
            });
            assert_eq!(run(&udp, &tls).await, Ok("reply of 4 bytes".into()));

            let script_ok = check(CheckKind::Script, addr, |s| {
                s.command = Some(format!("test \"$FVS_BACKEND_PORT\" = {}", addr.port()))
            });
            assert_eq!(run(&script_ok, &tls).await, Ok("exit 0".into()));
            let script_bad = check(CheckKind::Script, addr, |s| s.command = Some("exit 3".into()));
            assert_eq!(run(&script_bad, &tls).await, Err("exit 3".into()));

            // ICMP echo to ourselves (a datagram socket, or raw as root: the test runs as root).
            let ping = check(CheckKind::Ping, "127.0.0.1:0".parse().unwrap(), |_| {});
            assert_eq!(run(&ping, &tls).await, Ok("echo reply".into()));
        });
    }
}
