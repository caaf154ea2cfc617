//! The admin API client: one request, one response, over the daemon's Unix socket.

use std::fmt;
use std::io::{self, BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::proto::{Request, Response};

/// How long to wait for the daemon to take and answer a request.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// Answers can be big (a neighbour table of every core), but not unboundedly so.
const MAX_RESPONSE: u64 = 256 << 20;

#[derive(Debug)]
pub enum ClientError {
    /// Nothing to talk to at the socket path.
    Connect { socket: PathBuf, error: io::Error },
    /// The daemon did not answer in time.
    Timeout { socket: PathBuf, after: Duration },
    /// The connection broke mid-exchange.
    Io { socket: PathBuf, error: io::Error },
    /// The daemon answered something that is not a Response.
    Protocol { socket: PathBuf, message: String },
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Connect { socket, error } if error.kind() == ErrorKind::PermissionDenied => {
                write!(f, "cannot reach ferrovs at {}: {error}; the admin socket is for root only", socket.display())
            }
            ClientError::Connect { socket, error } => write!(
                f,
                "cannot reach ferrovs at {}: {error}; is the daemon running? (see --socket)",
                socket.display()
            ),
            ClientError::Timeout { socket, after } => {
                write!(f, "ferrovs at {} did not answer within {after:?}", socket.display())
            }
            ClientError::Io { socket, error } => {
                write!(f, "lost the connection to ferrovs at {}: {error}", socket.display())
            }
            ClientError::Protocol { socket, message } => {
                write!(f, "ferrovs at {} answered something unexpected: {message}", socket.display())
            }
        }
    }
}

impl std::error::Error for ClientError {}

/// Sends `req` to the daemon at `socket` and waits up to `TIMEOUT` for its answer.
pub fn call(socket: &Path, req: &Request) -> Result<Response, ClientError> {
    call_with_timeout(socket, req, TIMEOUT)
}

pub fn call_with_timeout(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    // Connecting to a Unix socket does not wait on a network; it fails at once when nobody
    // listens, so only the exchange needs timeouts.
    let stream =
        UnixStream::connect(socket).map_err(|error| ClientError::Connect { socket: socket.to_path_buf(), error })?;
    let io_err = |error: io::Error| match error.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => {
            ClientError::Timeout { socket: socket.to_path_buf(), after: timeout }
        }
        _ => ClientError::Io { socket: socket.to_path_buf(), error },
    };
    stream.set_read_timeout(Some(timeout)).map_err(io_err)?;
    stream.set_write_timeout(Some(timeout)).map_err(io_err)?;
    send(&stream, req).map_err(io_err)?;
    let line = receive(&stream).map_err(io_err)?;
    let protocol = |message: String| ClientError::Protocol { socket: socket.to_path_buf(), message };
    if line.is_empty() {
        return Err(protocol("it closed the connection without answering".to_string()));
    }
    serde_json::from_str(&line).map_err(|e| protocol(e.to_string()))
}

fn send(mut stream: &UnixStream, req: &Request) -> io::Result<()> {
    let mut text = serde_json::to_string(req).map_err(io::Error::other)?;
    text.push('\n');
    stream.write_all(text.as_bytes())?;
    stream.flush()
}

fn receive(stream: &UnixStream) -> io::Result<String> {
    let mut reader = BufReader::new(stream.take(MAX_RESPONSE));
    let mut line = String::new();
    reader.read_line(&mut line)?;
    Ok(line)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;
    use std::thread;

    fn socket_path(name: &str) -> PathBuf {
        let path = std::env::temp_dir().join(format!("ferrovs-client-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&path);
        path
    }

    #[test]
    fn no_daemon_says_so() {
        let path = socket_path("none");
        let err = call(&path, &Request::Stats).unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("cannot reach ferrovs at {}: ", path.display())), "{msg}");
        assert!(msg.ends_with("; is the daemon running? (see --socket)"), "{msg}");
    }

    #[test]
    fn exchange_with_a_server() {
        let path = socket_path("ok");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            assert_eq!(line, "{\"op\":\"stats\"}\n");
            (&stream).write_all(b"{\"ok\":false,\"error\":\"nope\"}\n").unwrap();
        });
        assert_eq!(call(&path, &Request::Stats).unwrap(), Response::err("nope"));
        server.join().unwrap();
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn silent_server_times_out_and_garbage_is_reported() {
        let path = socket_path("slow");
        let listener = UnixListener::bind(&path).unwrap();
        let server = thread::spawn(move || {
            let (silent, _) = listener.accept().unwrap();
            let (garbage, _) = listener.accept().unwrap();
            (&garbage).write_all(b"hello\n").unwrap();
            let (closing, _) = listener.accept().unwrap();
            drop(closing);
            // Keep the silent one open until the client gave up.
            let mut buf = [0u8; 64];
            let _ = (&silent).read(&mut buf);
            thread::sleep(Duration::from_millis(300));
        });
        let err = call_with_timeout(&path, &Request::Stats, Duration::from_millis(100)).unwrap_err();
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
        assert!(err.to_string().contains("did not answer within"));
        let err = call(&path, &Request::Stats).unwrap_err();
        assert!(err.to_string().contains("answered something unexpected"), "{err}");
        let err = call(&path, &Request::Stats).unwrap_err();
        assert!(
            err.to_string().contains("closed the connection without answering")
                || matches!(err, ClientError::Io { .. }),
            "{err}"
        );
        server.join().unwrap();
        std::fs::remove_file(&path).unwrap();
    }
}
