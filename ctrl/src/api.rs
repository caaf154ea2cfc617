//! The admin API's Unix socket server. It only moves lines: each valid `Request` goes to the
//! daemon's control thread as an `ApiCall` and the control thread's `Response` goes back on
//! the same connection. Requests that do not parse never reach the daemon.
//!
//! ```text
//! let listener = ctrl::api::bind(&config.api.socket)?;
//! let (tx, rx) = crossbeam_channel::unbounded();
//! ctrl::api::spawn_server(listener, tx);
//! for call in rx { let response = handle(call.request); let _ = call.reply.send(response); }
//! ```

use std::fs;
use std::io::{self, BufRead, BufReader, ErrorKind, Write};
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::Sender;

use crate::proto::{Request, Response};

/// The longest request line accepted; `fvs apply` sends a whole config file in one line.
pub const MAX_LINE: usize = 1 << 20;

/// One request for the control thread. Answer every call exactly once on `reply` (a dropped
/// `reply` makes the server answer "internal error" for you).
pub struct ApiCall {
    pub request: Request,
    pub reply: Sender<Response>,
}

/// Binds the admin socket at `path`, creating its parent directory (0755) when missing. A
/// socket file left by a dead ferrovs is removed; a live one (something accepts a connection)
/// is an error, and so is a path that exists but is not a socket. The socket is made 0600:
/// whoever can connect can change the dataplane. (The server also checks each peer's
/// credentials, which covers the moment between bind and chmod.)
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    create_parent(path)?;
    remove_stale(path)?;
    let listener = UnixListener::bind(path).map_err(|e| with_path(e, "cannot bind the admin socket", path))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o600))
        .map_err(|e| with_path(e, "cannot chmod the admin socket", path))?;
    Ok(listener)
}

fn with_path(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

fn create_parent(path: &Path) -> io::Result<()> {
    let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) else {
        return Ok(());
    };
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(dir)
        .map_err(|e| with_path(e, "cannot create the directory", dir))?;
    // The umask may have taken bits away; `fvs` users need to reach the socket's directory.
    fs::set_permissions(dir, fs::Permissions::from_mode(0o755)).map_err(|e| with_path(e, "cannot chmod", dir))
}

fn remove_stale(path: &Path) -> io::Result<()> {
    let meta = match fs::symlink_metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(with_path(e, "cannot inspect", path)),
    };
    if !meta.file_type().is_socket() {
        return Err(io::Error::new(
            ErrorKind::AlreadyExists,
            format!("{} exists and is not a socket; refusing to replace it", path.display()),
        ));
    }
    match UnixStream::connect(path) {
        Ok(_) => Err(io::Error::new(
            ErrorKind::AddrInUse,
            format!("another ferrovs is serving {}; stop it first or use another api.socket", path.display()),
        )),
        // Nobody listens: a leftover of a ferrovs that did not exit cleanly.
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            fs::remove_file(path).map_err(|e| with_path(e, "cannot remove the stale socket", path))
        }
        Err(e) => Err(with_path(e, "cannot check the existing socket", path)),
    }
}

/// Serves `listener` on a new thread: one thread per connection, each reading requests line
/// by line and forwarding them to `calls`. The returned thread runs until accepting fails
/// hard; the daemon normally just exits (and removes the socket file).
pub fn spawn_server(listener: UnixListener, calls: Sender<ApiCall>) -> JoinHandle<()> {
    thread::Builder::new()
        .name("api-accept".into())
        .spawn(move || accept_loop(listener, calls))
        .expect("cannot spawn the admin API thread")
}

fn accept_loop(listener: UnixListener, calls: Sender<ApiCall>) {
    for stream in listener.incoming() {
        match stream {
            Ok(stream) => match peer_allowed(&stream) {
                Ok(()) => spawn_connection(stream, calls.clone()),
                Err(why) => refuse(stream, &why),
            },
            Err(e) if is_transient(&e) => {
                tracing::warn!("admin API: accept failed: {e}");
                // Out of file descriptors and the like: let some connections finish.
                thread::sleep(Duration::from_millis(100));
            }
            Err(e) => {
                tracing::error!("admin API: accept failed, no longer serving: {e}");
                return;
            }
        }
    }
}

/// Only root and the daemon's own user may use the API. The 0600 socket already says so;
/// this also holds when the socket was reachable for a moment before its chmod.
fn peer_allowed(stream: &UnixStream) -> Result<(), String> {
    let peer = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .map_err(|e| format!("cannot check the caller's credentials: {e}"))?;
    let uid = peer.uid();
    let own = nix::unistd::geteuid().as_raw();
    if uid == 0 || uid == own {
        Ok(())
    } else {
        Err(format!("permission denied: uid {uid} may not use the ferrovs admin API"))
    }
}

/// Tells a refused peer why, then closes; best effort, it may already be gone.
fn refuse(mut stream: UnixStream, why: &str) {
    tracing::warn!("admin API: {why}");
    let _ = write_response(&mut stream, &Response::err(why));
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EINTR | libc::ECONNABORTED)
    )
}

fn spawn_connection(stream: UnixStream, calls: Sender<ApiCall>) {
    let spawned = thread::Builder::new().name("api-conn".into()).spawn(move || {
        if let Err(e) = serve_connection(stream, &calls) {
            tracing::debug!("admin API: connection ended: {e}");
        }
    });
    if let Err(e) = spawned {
        tracing::warn!("admin API: cannot spawn a connection thread: {e}");
    }
}

/// Reads request lines until EOF, answering each with one line.
fn serve_connection(stream: UnixStream, calls: &Sender<ApiCall>) -> io::Result<()> {
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match read_line_limited(&mut reader, &mut line, MAX_LINE)? {
            LineRead::Eof => return Ok(()),
            LineRead::TooLong => {
                let msg = format!("bad request: line longer than {MAX_LINE} bytes");
                return write_response(&mut writer, &Response::err(msg));
            }
            LineRead::Line => {}
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (response, keep_open) = answer(&line, calls);
        write_response(&mut writer, &response)?;
        if !keep_open {
            return Ok(());
        }
    }
}

/// The response to one request line, and whether the connection may go on.
fn answer(line: &[u8], calls: &Sender<ApiCall>) -> (Response, bool) {
    let request = match serde_json::from_slice::<Request>(line) {
        Ok(r) => r,
        Err(e) => return (Response::err(format!("bad request: {e}")), true),
    };
    let (reply, replies) = crossbeam_channel::bounded(1);
    if calls.send(ApiCall { request, reply }).is_err() {
        return (Response::err("ferrovs is shutting down"), false);
    }
    match replies.recv() {
        Ok(r) => (r, true),
        Err(_) => (Response::err("internal error: ferrovs dropped the request without answering"), true),
    }
}

fn write_response(w: &mut UnixStream, response: &Response) -> io::Result<()> {
    let mut text = serde_json::to_string(response).map_err(io::Error::other)?;
    text.push('\n');
    w.write_all(text.as_bytes())?;
    w.flush()
}

enum LineRead {
    Line,
    Eof,
    TooLong,
}

/// Reads up to and excluding '\n' into `buf`, refusing to buffer more than `max` bytes.
/// A final line without '\n' counts as a line.
fn read_line_limited<R: BufRead>(r: &mut R, buf: &mut Vec<u8>, max: usize) -> io::Result<LineRead> {
    loop {
        let chunk = match r.fill_buf() {
            Ok(c) => c,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(if buf.is_empty() { LineRead::Eof } else { LineRead::Line });
        }
        let (take, done) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (chunk.len(), false),
        };
        if buf.len() + take > max {
            return Ok(LineRead::TooLong);
        }
        buf.extend_from_slice(&chunk[..take]);
        r.consume(if done { take + 1 } else { take });
        if done {
            return Ok(LineRead::Line);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::path::PathBuf;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("ferrovs-api-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    /// A daemon stand-in: answers AddrShow with a list, AddrAdd with an error, drops Stats.
    fn fake_daemon(calls: crossbeam_channel::Receiver<ApiCall>) {
        for call in calls {
            let response = match call.request {
                Request::AddrShow => Response::ok(&vec!["192.0.2.1/24"]),
                Request::AddrAdd { port, .. } => Response::err(format!("no port named '{port}'")),
                Request::Stats => continue,
                _ => Response::ok(&()),
            };
            let _ = call.reply.send(response);
        }
    }

    fn start(name: &str) -> (PathBuf, PathBuf) {
        let dir = temp_dir(name);
        let path = dir.join("sub").join("ferrovs.sock");
        let listener = bind(&path).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded();
        spawn_server(listener, tx);
        thread::spawn(move || fake_daemon(rx));
        (dir, path)
    }

    fn exchange(stream: &mut BufReader<UnixStream>, line: &str) -> String {
        stream.get_mut().write_all(line.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_line(&mut answer).unwrap();
        answer
    }

    #[test]
    fn serves_several_requests_per_connection() {
        let (dir, path) = start("serve");
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(fs::metadata(path.parent().unwrap()).unwrap().permissions().mode() & 0o777, 0o755);

        let mut s = BufReader::new(UnixStream::connect(&path).unwrap());
        assert_eq!(exchange(&mut s, "{\"op\":\"addr_show\"}\n"), "{\"ok\":true,\"data\":[\"192.0.2.1/24\"]}\n");
        assert_eq!(
            exchange(&mut s, "\n{\"op\":\"addr_add\",\"port\":\"dp9\",\"addr\":\"10.0.0.1/8\"}\n"),
            "{\"ok\":false,\"error\":\"no port named 'dp9'\"}\n"
        );
        let bad = exchange(&mut s, "{\"op\":\"frobnicate\"}\n");
        assert!(bad.starts_with("{\"ok\":false,\"error\":\"bad request: unknown variant `frobnicate`"), "{bad}");
        let bad = exchange(&mut s, "not json\n");
        assert!(bad.starts_with("{\"ok\":false,\"error\":\"bad request: expected"), "{bad}");
        let dropped = exchange(&mut s, "{\"op\":\"stats\"}\n");
        assert!(dropped.contains("dropped the request"), "{dropped}");
        assert_eq!(exchange(&mut s, "{\"op\":\"route_show\"}\n"), "{\"ok\":true,\"data\":null}\n");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn long_line_refused_and_closed() {
        let (dir, path) = start("long");
        let mut s = UnixStream::connect(&path).unwrap();
        let writer = {
            let mut s = s.try_clone().unwrap();
            // The server may close before we finish writing; that is the point.
            thread::spawn(move || {
                let _ = s.write_all(&vec![b'x'; MAX_LINE + 10]);
            })
        };
        let mut answer = String::new();
        s.read_to_string(&mut answer).unwrap();
        assert_eq!(answer, format!("{{\"ok\":false,\"error\":\"bad request: line longer than {MAX_LINE} bytes\"}}\n"));
        writer.join().unwrap();
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn daemon_gone_answers_and_closes() {
        let dir = temp_dir("gone");
        let path = dir.join("ferrovs.sock");
        let listener = bind(&path).unwrap();
        let (tx, rx) = crossbeam_channel::unbounded::<ApiCall>();
        drop(rx);
        spawn_server(listener, tx);
        let mut s = BufReader::new(UnixStream::connect(&path).unwrap());
        assert_eq!(exchange(&mut s, "{\"op\":\"stats\"}\n"), "{\"ok\":false,\"error\":\"ferrovs is shutting down\"}\n");
        let mut rest = String::new();
        assert_eq!(s.read_line(&mut rest).unwrap(), 0);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn bind_refuses_live_socket_and_replaces_stale_one() {
        let dir = temp_dir("bind");
        let path = dir.join("ferrovs.sock");
        let live = bind(&path).unwrap();
        let err = bind(&path).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::AddrInUse);
        assert!(err.to_string().contains(&format!("another ferrovs is serving {}", path.display())), "{err}");
        drop(live); // the file stays behind, like after a crash
        assert!(path.exists());
        // Another test of this binary may be forking a command right now: until that child
        // execs, it holds a copy of the dropped listener, which still accepts. Give it a moment.
        let again = (0..100).find_map(|_| {
            bind(&path).ok().or_else(|| {
                std::thread::sleep(std::time::Duration::from_millis(10));
                None
            })
        });
        assert!(again.is_some(), "a stale socket file is replaced");

        let file = dir.join("plain");
        fs::write(&file, "keep me").unwrap();
        let err = bind(&file).unwrap_err();
        assert!(err.to_string().contains("exists and is not a socket"), "{err}");
        assert_eq!(fs::read_to_string(&file).unwrap(), "keep me");
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn line_reader_limits() {
        let mut r = BufReader::with_capacity(4, &b"abc\ndefgh\nlast"[..]);
        let mut buf = Vec::new();
        assert!(matches!(read_line_limited(&mut r, &mut buf, 8).unwrap(), LineRead::Line));
        assert_eq!(buf, b"abc");
        buf.clear();
        assert!(matches!(read_line_limited(&mut r, &mut buf, 8).unwrap(), LineRead::Line));
        assert_eq!(buf, b"defgh");
        buf.clear();
        assert!(matches!(read_line_limited(&mut r, &mut buf, 8).unwrap(), LineRead::Line));
        assert_eq!(buf, b"last");
        buf.clear();
        assert!(matches!(read_line_limited(&mut r, &mut buf, 8).unwrap(), LineRead::Eof));
        let mut r = BufReader::with_capacity(4, &b"0123456789\n"[..]);
        assert!(matches!(read_line_limited(&mut r, &mut buf, 8).unwrap(), LineRead::TooLong));
    }
}
