//! The scrape endpoint: a std `TcpListener` on its own thread answering `GET /metrics`, one
//! connection at a time. Prometheus scrapes one endpoint every few seconds, so an async
//! runtime and an HTTP framework (hyper, axum: dozens of crates) would buy nothing here;
//! requests are small and read with a timeout, so a stuck client delays the next scrape by
//! at most that.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{bounded, Sender};

use super::SharedView;

/// Asks the control thread for a fresh view; it answers on the enclosed sender once the
/// view is replaced.
pub type RefreshRequest = Sender<()>;
/// How long a scrape waits for the control thread's fresh view before serving the last one.
const REFRESH_WAIT: Duration = Duration::from_millis(500);

/// How long a client may take to send its request or read the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the accept loop looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Binds `addr` (the error names it) and serves the view on a thread until `stop` is set.
/// With `refresh`, each scrape first asks the control thread to refresh the view.
pub fn spawn(
    addr: SocketAddr,
    view: SharedView,
    refresh: Option<Sender<RefreshRequest>>,
    stop: Arc<AtomicBool>,
) -> Result<JoinHandle<()>, String> {
    let listener = TcpListener::bind(addr).map_err(|e| format!("metrics.listen {addr}: {e}"))?;
    listener.set_nonblocking(true).map_err(|e| format!("metrics.listen {addr}: {e}"))?;
    std::thread::Builder::new()
        .name("fvs-metrics".into())
        .spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = serve(stream, &view, refresh.as_ref());
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(STOP_POLL),
                    Err(e) => {
                        tracing::warn!(error = %e, "metrics: accept failed");
                        std::thread::sleep(STOP_POLL);
                    }
                }
            }
        })
        .map_err(|e| format!("cannot start the metrics thread: {e}"))
}

/// Answers one request on `stream` and closes it.
fn serve(stream: TcpStream, view: &SharedView, refresh: Option<&Sender<RefreshRequest>>) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    // The headers are read and ignored: the answer does not depend on them.
    // Of the headers only Accept matters: Prometheus asks for OpenMetrics, curl and promtool
    // get the classic text format.
    let mut openmetrics = false;
    let mut line = String::new();
    while reader.read_line(&mut line)? > 2 {
        let lower = line.to_ascii_lowercase();
        openmetrics |= lower.starts_with("accept:") && lower.contains("application/openmetrics-text");
        line.clear();
    }
    if let Some(refresh) = refresh.filter(|_| request_line.starts_with("GET /metrics")) {
        let (done_tx, done_rx) = bounded(1);
        if refresh.try_send(done_tx).is_ok() {
            let _ = done_rx.recv_timeout(REFRESH_WAIT);
        }
    }
    let (status, content_type, body) = respond(&request_line, view, openmetrics);
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    stream.write_all(body.as_bytes())?;
    stream.flush()
}

/// Status line, content type and body for a request line.
fn respond(request_line: &str, view: &SharedView, openmetrics: bool) -> (&'static str, &'static str, String) {
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("");
    match (method, path) {
        ("GET", "/metrics") => {
            let snapshot = view.lock().clone();
            let text = super::encode(&snapshot);
            match openmetrics {
                true => ("200 OK", OPENMETRICS, text),
                false => ("200 OK", PROMETHEUS_TEXT, super::to_prometheus_text(&text)),
            }
        }
        ("GET", _) => ("404 Not Found", "text/plain", "only /metrics is served here\n".into()),
        _ => ("405 Method Not Allowed", "text/plain", "only GET /metrics is served here\n".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn get(addr: SocketAddr, request: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).unwrap();
        out
    }

    #[test]
    fn serves_metrics_and_refuses_the_rest() {
        let view = SharedView::default();
        let mut v = crate::metrics::MetricsView::default();
        v.stats.config = Some(crate::proto::ConfigStats::new(Duration::from_secs(2)));
        *view.lock() = Arc::new(v);
        let stop = Arc::new(AtomicBool::new(false));
        let probe = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = probe.local_addr().unwrap();
        drop(probe);
        let thread = spawn(addr, view, None, stop.clone()).unwrap();
        let om = get(addr, "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5\r\n\r\n");
        assert!(om.starts_with("HTTP/1.1 200 OK\r\n"), "{om}");
        assert!(om.contains("ferrovs_config_publications_total 0\n"), "{om}");
        assert!(om.ends_with("# EOF\n"), "{om}");
        let classic = get(addr, "GET /metrics?x=1 HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
        assert!(classic.contains("Content-Type: text/plain; version=0.0.4"), "{classic}");
        assert!(classic.contains("# TYPE ferrovs_config_publications_total counter\n"), "{classic}");
        assert!(get(addr, "GET / HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(get(addr, "POST /metrics HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        stop.store(true, Ordering::Relaxed);
        thread.join().unwrap();
    }
}
