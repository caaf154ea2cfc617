#!/usr/bin/python3
"""Test backend for ferrovs end-to-end tests (Python 3 standard library only).

    backend.py NAME --http ADDR:PORT --udp ADDR:PORT [--log FILE]

HTTP/1.1 with keep-alive: every GET answers `backend=NAME peer=IP:PORT\\n` (the TCP peer this
process saw). `GET /sleep?ms=N` answers after N ms, `GET /bytes?n=N` appends N bytes after
the first line. UDP: every datagram is answered with `backend=NAME peer=IP:PORT ` + payload.
Prints `ready` on stdout once both sockets listen. UDP answers come from the address the
datagram was sent to (IP_PKTINFO / IPV6_PKTINFO), so DR/TUN backends answer from the VIP. Exits 0 on SIGTERM/SIGINT. With --log,
appends one line per request: `proto=http peer=IP:PORT path=/...` or
`proto=udp peer=IP:PORT len=N`. IPv6 addresses are written `[addr]:port`.
"""
import argparse
import http.server
import signal
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

IP_PKTINFO = getattr(socket, "IP_PKTINFO", 8)  # not in Python 3.11's socket module
IPV6_RECVPKTINFO = getattr(socket, "IPV6_RECVPKTINFO", 49)
IPV6_PKTINFO = getattr(socket, "IPV6_PKTINFO", 50)
MAX_BYTES = 1 << 31  # upper bound for /bytes?n=
MAX_SLEEP_MS = 600_000
CHUNK = b"x" * 65536


def parse_addr(text):
    """'1.2.3.4:80' or '[2001:db8::1]:80' -> (family, host, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT, got {text!r}")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, host, int(port)


def fmt_peer(addr):
    host, port = addr[0], addr[1]
    if ":" in host:
        if host.startswith("::ffff:") and "." in host:
            host = host[7:]
        else:
            return f"[{host}]:{port}"
    return f"{host}:{port}"


class Logger:
    def __init__(self, path):
        self.lock = threading.Lock()
        self.fh = open(path, "a", buffering=1) if path else None

    def line(self, text):
        if self.fh is None:
            return
        with self.lock:
            self.fh.write(text + "\n")
            self.fh.flush()


def make_http_server(name, family, host, port, logger):
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def version_string(self):
            return "ferrovs-test-backend"

        def setup(self):
            super().setup()
            try:
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass

        def log_message(self, fmt, *args):  # quiet
            pass

        def _answer(self, with_body):
            peer = fmt_peer(self.client_address)
            logger.line(f"proto=http peer={peer} path={self.path}")
            url = urllib.parse.urlsplit(self.path)
            query = urllib.parse.parse_qs(url.query)
            extra = 0
            try:
                if url.path == "/sleep":
                    ms = min(max(int(query.get("ms", ["0"])[0]), 0), MAX_SLEEP_MS)
                    time.sleep(ms / 1000.0)
                elif url.path == "/bytes":
                    extra = min(max(int(query.get("n", ["0"])[0]), 0), MAX_BYTES)
            except ValueError:
                self.send_error(400, "bad number")
                return
            first = f"backend={name} peer={peer}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(first) + extra))
            if self.close_connection:
                self.send_header("Connection", "close")
            self.end_headers()
            if not with_body:
                return
            if extra == 0:
                self.wfile.write(first)
                return
            self.wfile.write(first)
            left = extra
            while left > 0:
                n = min(left, len(CHUNK))
                self.wfile.write(CHUNK[:n])
                left -= n

        def do_GET(self):
            self._answer(True)

        def do_POST(self):
            # An upload: read the whole body, answer with its size (client -> backend is the
            # direction DR/TUN carry, so large uploads exercise the tunnel's MTU handling).
            peer = fmt_peer(self.client_address)
            try:
                left = min(max(int(self.headers.get("Content-Length", "0")), 0), MAX_BYTES)
            except ValueError:
                self.send_error(400, "bad Content-Length")
                return
            received = 0
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                received += len(chunk)
                left -= len(chunk)
            logger.line(f"proto=http peer={peer} path={self.path} received={received}")
            body = f"backend={name} peer={peer} received={received}\n".encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_HEAD(self):
            self._answer(False)

    class Server(http.server.ThreadingHTTPServer):
        address_family = family
        allow_reuse_address = True
        daemon_threads = True
        request_queue_size = 1024

        def server_bind(self):
            # Skip HTTPServer.server_bind: its getfqdn() may stall on reverse DNS in a netns.
            socketserver.TCPServer.server_bind(self)
            self.server_name = host
            self.server_port = self.server_address[1]

        def handle_error(self, request, client_address):  # quiet (resets, broken pipes)
            pass

    return Server((host, port), Handler)


def udp_loop(sock, name, logger, stop):
    while not stop.is_set():
        try:
            data, anc, _, addr = sock.recvmsg(65535, socket.CMSG_SPACE(20))
        except socket.timeout:
            continue
        except OSError:
            if stop.is_set():
                return
            continue
        peer = fmt_peer(addr)
        logger.line(f"proto=udp peer={peer} len={len(data)}")
        try:
            # Answer from the address the datagram was sent to (DR/TUN: the VIP on lo), not
            # the one the route to the client would pick.
            # in_pktinfo {ifindex, spec_dst, addr}: keep spec_dst only (a non-zero ifindex would
            # force the answer out of the interface the request came in on).
            cmsg = [(lvl, typ, struct.pack("=i4s4x", 0, d[4:8])) for lvl, typ, d in anc
                    if (lvl, typ) == (socket.IPPROTO_IP, IP_PKTINFO) and len(d) >= 12]
            # in6_pktinfo {addr, ifindex}: the same for IPv6.
            cmsg += [(lvl, typ, d[:16] + struct.pack("=i", 0)) for lvl, typ, d in anc
                     if (lvl, typ) == (socket.IPPROTO_IPV6, IPV6_PKTINFO) and len(d) >= 20]
            sock.sendmsg([f"backend={name} peer={peer} ".encode() + data], cmsg, 0, addr)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description="ferrovs e2e test backend (HTTP + UDP echo)")
    ap.add_argument("name")
    ap.add_argument("--http", type=parse_addr, required=True, metavar="ADDR:PORT")
    ap.add_argument("--udp", type=parse_addr, required=True, metavar="ADDR:PORT")
    ap.add_argument("--log", metavar="FILE", help="append one line per request")
    args = ap.parse_args()

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())

    logger = Logger(args.log)
    try:
        httpd = make_http_server(args.name, *args.http, logger)
        ufam, uhost, uport = args.udp
        usock = socket.socket(ufam, socket.SOCK_DGRAM)
        usock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        usock.bind((uhost, uport))
        if ufam == socket.AF_INET:
            usock.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
        else:
            usock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
        usock.settimeout(0.2)
    except OSError as e:
        print(f"backend {args.name}: cannot listen: {e}", file=sys.stderr)
        return 1

    threads = [
        threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True),
        threading.Thread(target=udp_loop, args=(usock, args.name, logger, stop), daemon=True),
    ]
    for t in threads:
        t.start()
    print("ready", flush=True)

    while not stop.wait(0.5):
        pass
    httpd.shutdown()
    httpd.server_close()
    usock.close()
    threads[1].join(timeout=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
