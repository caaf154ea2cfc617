#!/usr/bin/python3
"""Client side of the ferrovs end-to-end tests (Python 3 standard library only).

Each subcommand prints ONE JSON object on stdout and a one-line human summary on stderr.
Exit code is 0 whenever the measurement ran (failures are reported in the JSON), non-zero
only when it could not run (bad arguments, unwritable ready file, ...). Every wait is
bounded. Backends are recognised by the first body line `backend=NAME peer=IP:PORT` that
tests/e2e/tools/backend.py sends.

  http    URL --count N [--timeout S] [--concurrency C]
  persist URL --count N [--timeout S] [--concurrency C]
  hold    URL --conns N --ready-file F --go-file G [--timeout S] [--io-timeout S]
  stream  URL --conns N --duration S [--timeout S] [--interval-ms MS] [--no-reconnect]
  udp     HOST PORT --count N [--sport-range A-B | --sport P] [--bind ADDR] [--timeout S]
  loop    URL --duration S [--concurrency C] [--timeout S]
"""
import argparse
import collections
import concurrent.futures
import http.client
import json
import os
import socket
import sys
import threading
import time
import urllib.parse


# ---------------------------------------------------------------- helpers

def parse_url(url):
    u = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    if u.scheme != "http" or not u.hostname:
        raise argparse.ArgumentTypeError(f"expected http://HOST[:PORT]/PATH, got {url!r}")
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    return u.hostname, u.port or 80, path


def parse_body(body):
    """First line `backend=NAME peer=IP:PORT` -> (name, peer ip, peer 'ip:port')."""
    line = body.split(b"\n", 1)[0].decode("utf-8", "replace")
    fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
    name = fields.get("backend")
    peer = fields.get("peer")
    if not name or not peer:
        raise ValueError(f"unexpected body: {line[:80]!r}")
    host = peer.rsplit(":", 1)[0].strip("[]")
    return name, host, peer


def err_msg(e):
    if isinstance(e, socket.timeout):
        return "timeout"
    text = str(e) or repr(e)
    return f"{type(e).__name__}: {text}"[:160]


class Conn(http.client.HTTPConnection):
    """HTTPConnection with a separate connect timeout and no silent reconnect."""

    def __init__(self, host, port, connect_timeout, io_timeout):
        super().__init__(host, port, timeout=connect_timeout)
        self.io_timeout = io_timeout
        self.auto_open = 0  # a closed socket raises NotConnected instead of reconnecting

    def connect(self):
        super().connect()
        self.sock.settimeout(self.io_timeout)
        try:
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass

    def local(self):
        try:
            h, p = self.sock.getsockname()[:2]
            return f"[{h}]:{p}" if ":" in h else f"{h}:{p}"
        except (OSError, AttributeError):
            return None


def request(conn, path, close):
    """One GET on an open Conn -> (backend, peer ip, peer ip:port, body bytes)."""
    if conn.sock is None:
        raise ConnectionError("connection closed by peer")
    headers = {"Connection": "close"} if close else {}
    conn.request("GET", path, headers=headers)
    resp = conn.getresponse()
    body = resp.read()
    if resp.status != 200:
        raise ValueError(f"HTTP {resp.status}")
    if resp.will_close and not close:
        conn.close()  # server said close: the next request must see a broken connection
    name, host, peer = parse_body(body)
    return name, host, peer, len(body)


def emit(result, summary):
    json.dump(result, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()
    print(summary, file=sys.stderr)


def fmt_counts(d):
    return ", ".join(f"{k}={v}" for k, v in sorted(d.items())) or "-"


# ---------------------------------------------------------------- http / persist

def one_shot(host, port, path, timeout):
    conn = Conn(host, port, timeout, timeout)
    try:
        conn.connect()
        return request(conn, path, close=True)
    finally:
        conn.close()


def run_http(args):
    host, port, path = args.url
    ok = failed = 0
    errors, backends, peers = collections.Counter(), collections.Counter(), collections.Counter()
    start = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, args.concurrency)) as ex:
        futs = [ex.submit(one_shot, host, port, path, args.timeout) for _ in range(args.count)]
        for f in futs:
            try:
                name, phost, _, _ = f.result()
            except Exception as e:  # noqa: BLE001 - every failure is a data point
                failed += 1
                errors[err_msg(e)] += 1
                continue
            ok += 1
            backends[name] += 1
            peers[phost] += 1
    res = {"ok": ok, "failed": failed, "errors": dict(errors), "backends": dict(backends),
           "peers": dict(peers), "elapsed_s": round(time.monotonic() - start, 3)}
    return res, f"http: ok={ok} failed={failed} backends: {fmt_counts(backends)}" + (
        f" errors: {fmt_counts(errors)}" if errors else "")


def run_persist(args):
    res, summary = run_http(args)
    single = len(res["backends"]) == 1
    res["single_backend"] = single
    res["backend"] = next(iter(res["backends"])) if single else None
    return res, f"persist: single_backend={str(single).lower()} " + summary


# ---------------------------------------------------------------- hold

def run_hold(args):
    host, port, path = args.url
    io = args.io_timeout
    conns, recs = [], []
    for i in range(args.conns):
        rec = {"index": i, "first": None, "second": None, "error": None,
               "first_peer": None, "second_peer": None, "local": None}
        conn = Conn(host, port, io, io)
        try:
            conn.connect()
            rec["local"] = conn.local()
            rec["first"], _, rec["first_peer"], _ = request(conn, path, close=False)
        except Exception as e:  # noqa: BLE001
            rec["error"] = "first request: " + err_msg(e)
            conn.close()
            conn = None
        conns.append(conn)
        recs.append(rec)
    first_by_backend = collections.Counter(r["first"] for r in recs if r["first"])

    with open(args.ready_file, "w") as fh:
        json.dump({"first_by_backend": dict(first_by_backend),
                   "first_failed": sum(1 for r in recs if r["first"] is None)}, fh)
        fh.write("\n")

    deadline = time.monotonic() + args.timeout
    go_seen = os.path.exists(args.go_file)
    while not go_seen and time.monotonic() < deadline:
        time.sleep(0.05)
        go_seen = os.path.exists(args.go_file)
    waited = round(args.timeout - max(0.0, deadline - time.monotonic()), 3)

    # Second request on every surviving connection, all at once so broken ones
    # (which may wait for io-timeout) do not add up.
    def second(idx):
        conn, rec = conns[idx], recs[idx]
        if conn is None:
            return
        try:
            rec["second"], _, rec["second_peer"], _ = request(conn, path, close=False)
        except Exception as e:  # noqa: BLE001
            rec["error"] = err_msg(e)
        finally:
            conn.close()

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(64, max(1, len(conns)))) as ex:
        list(ex.map(second, range(len(conns))))

    broken, survived = collections.Counter(), collections.Counter()
    switched = 0
    for r in recs:
        if r["first"] is None:
            continue
        if r["second"] is None:
            broken[r["first"]] += 1
        else:
            survived[r["first"]] += 1
            if r["second"] != r["first"]:
                switched += 1
    res = {"conns": recs, "broken_by_backend": dict(broken), "survived_by_backend": dict(survived),
           "first_by_backend": dict(first_by_backend),
           "first_failed": sum(1 for r in recs if r["first"] is None),
           "broken": sum(broken.values()), "survived": sum(survived.values()),
           "switched": switched, "go_seen": go_seen, "waited_s": waited}
    return res, (f"hold: {len(recs)} conns, first: {fmt_counts(first_by_backend)}; "
                 f"survived: {fmt_counts(survived)}; broken: {fmt_counts(broken)}"
                 + ("" if go_seen else " (go file never appeared)"))


# ---------------------------------------------------------------- stream

def run_stream(args):
    host, port, path = args.url
    end = time.monotonic() + args.duration
    lock = threading.Lock()
    records = []  # one per TCP connection opened
    connect_failures = collections.Counter()
    interval = args.interval_ms / 1000.0

    def worker(slot):
        while time.monotonic() < end:
            rec = {"slot": slot, "backend": None, "requests": 0, "broken": False,
                   "error": None, "switched": False, "local": None}
            conn = Conn(host, port, args.timeout, args.timeout)
            try:
                conn.connect()
                rec["local"] = conn.local()
            except Exception as e:  # noqa: BLE001
                conn.close()
                with lock:
                    connect_failures[err_msg(e)] += 1
                time.sleep(0.05)
                continue
            with lock:
                records.append(rec)
            try:
                while time.monotonic() < end:
                    name, _, _, _ = request(conn, path, close=False)
                    if rec["backend"] is None:
                        rec["backend"] = name
                    elif name != rec["backend"]:
                        rec["switched"] = True
                    rec["requests"] += 1
                    if interval:
                        time.sleep(interval)
            except Exception as e:  # noqa: BLE001
                rec["broken"] = True
                rec["error"] = err_msg(e)
            finally:
                conn.close()
            if rec["broken"] and args.no_reconnect:
                return
            if rec["broken"]:
                time.sleep(0.05)

    start = time.monotonic()
    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(args.conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.duration + 3 * args.timeout + 5)
    with lock:
        recs = [dict(r) for r in records]

    by_backend = {}
    errors = collections.Counter()
    for r in recs:
        b = by_backend.setdefault(r["backend"] or "none",
                                  {"requests": 0, "conns": 0, "broken": 0})
        b["requests"] += r["requests"]
        b["conns"] += 1
        b["broken"] += int(r["broken"])
        if r["error"]:
            errors[r["error"]] += 1
    res = {"conns": recs, "backends": by_backend,
           "requests": sum(r["requests"] for r in recs),
           "broken": sum(1 for r in recs if r["broken"]),
           "switched": sum(1 for r in recs if r["switched"]),
           "errors": dict(errors), "connect_failures": dict(connect_failures),
           "elapsed_s": round(time.monotonic() - start, 3)}
    summ = ", ".join(f"{k}: {v['requests']} req/{v['conns']} conns/{v['broken']} broken"
                     for k, v in sorted(by_backend.items()))
    return res, (f"stream: {res['requests']} requests, {res['broken']} broken conns; {summ or '-'}"
                 + (f"; connect failures: {fmt_counts(connect_failures)}" if connect_failures else ""))


# ---------------------------------------------------------------- loop

def run_loop(args):
    """C threads, each opening a new connection per GET for S seconds. Every failure is kept
    with the wall-clock times its request started and failed, so a test can count the failures
    of requests started after a moment it recorded (time.time(), as `date +%s.%N`), or those
    that had already failed before it (a request in flight at the moment may fail after it)."""
    host, port, path = args.url
    end = time.monotonic() + args.duration
    lock = threading.Lock()
    state = {"ok": 0}
    failures = []  # (start wall-clock, failure wall-clock, message)
    backends = collections.Counter()

    def worker():
        while time.monotonic() < end:
            started = time.time()
            try:
                name, _, _, _ = one_shot(host, port, path, args.timeout)
            except Exception as e:  # noqa: BLE001
                with lock:
                    failures.append((started, time.time(), err_msg(e)))
                time.sleep(0.01)  # an immediate failure must not turn into a busy loop
                continue
            with lock:
                state["ok"] += 1
                backends[name] += 1

    start = time.monotonic()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=args.duration + 2 * args.timeout + 5)
    elapsed = time.monotonic() - start
    with lock:
        fails = sorted(failures)
        ok = state["ok"]
    errors = collections.Counter(m for _, _, m in fails)
    res = {"ok": ok, "failed": len(fails), "errors": dict(errors), "backends": dict(backends),
           "fail_times": [round(t, 3) for t, _, _ in fails],
           "fail_ends": [round(t, 3) for _, t, _ in fails], "rate": round(ok / elapsed, 1),
           "elapsed_s": round(elapsed, 3)}
    return res, f"loop: ok={ok} failed={len(fails)} rate={res['rate']}/s backends: {fmt_counts(backends)}" + (
        f" errors: {fmt_counts(errors)}" if errors else "")


# ---------------------------------------------------------------- udp

def run_udp(args):
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    try:
        dest = socket.getaddrinfo(args.host, args.port, family, socket.SOCK_DGRAM)[0][4]
    except socket.gaierror as e:
        raise SystemExit(f"udp: cannot resolve {args.host}: {e}")
    bind_host = args.bind or ("::" if family == socket.AF_INET6 else "0.0.0.0")

    def new_sock(sport):
        s = socket.socket(family, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((bind_host, sport))
        s.settimeout(args.timeout)
        return s

    if args.sport_range:
        lo, hi = args.sport_range
        sports = [lo + i % (hi - lo + 1) for i in range(args.count)]
    elif args.sport is not None:
        sports = None
    else:
        sports = [0] * args.count  # ephemeral, one socket each: a new flow per datagram

    shared = new_sock(args.sport) if sports is None else None
    ok = lost = 0
    backends, peers, errors = collections.Counter(), collections.Counter(), collections.Counter()
    by_sport = {}
    nonce = f"{os.getpid()}-{time.monotonic_ns()}"
    start = time.monotonic()
    try:
        for i in range(args.count):
            sock = shared
            try:
                if sock is None:
                    sock = new_sock(sports[i])
                sport = sock.getsockname()[1]
                payload = f"seq={i} nonce={nonce}".encode()
                sock.sendto(payload, dest)
                deadline = time.monotonic() + args.timeout
                while True:  # skip late replies to earlier datagrams
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise socket.timeout("timed out")
                    sock.settimeout(left)
                    data, _ = sock.recvfrom(65535)
                    if data.endswith(b" " + payload):
                        break
                name, phost, _ = parse_body(data)
                ok += 1
                backends[name] += 1
                peers[phost] += 1
                by_sport.setdefault(str(sport), collections.Counter())[name] += 1
            except Exception as e:  # noqa: BLE001
                lost += 1
                errors[err_msg(e)] += 1
            finally:
                if sock is not None and sock is not shared:
                    sock.close()
    finally:
        if shared is not None:
            shared.close()
    single = len(backends) == 1
    res = {"ok": ok, "lost": lost, "backends": dict(backends), "peers": dict(peers),
           "errors": dict(errors), "single_backend": single,
           "by_sport": {k: dict(v) for k, v in by_sport.items()},
           "elapsed_s": round(time.monotonic() - start, 3)}
    return res, f"udp: ok={ok} lost={lost} backends: {fmt_counts(backends)}" + (
        f" errors: {fmt_counts(errors)}" if errors else "")


# ---------------------------------------------------------------- main

def port_range(text):
    try:
        a, b = (int(x) for x in text.split("-", 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected A-B, got {text!r}")
    if not (1 <= a <= b <= 65535):
        raise argparse.ArgumentTypeError(f"bad port range {text!r}")
    return a, b


def port_number(text):
    v = int(text)
    if not 0 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"bad port {text!r}")
    return v


def positive(kind):
    def conv(text):
        v = kind(text)
        if v <= 0:
            raise argparse.ArgumentTypeError(f"must be > 0: {text!r}")
        return v
    return conv


def main():
    ap = argparse.ArgumentParser(description="ferrovs e2e load-balancer client")
    sub = ap.add_subparsers(dest="cmd", required=True)

    for name, helptext in (("http", "N requests, each on a new TCP connection"),
                           ("persist", "like http, and whether all went to one backend")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("url", type=parse_url)
        p.add_argument("--count", type=positive(int), required=True)
        p.add_argument("--timeout", type=positive(float), default=2.0,
                       help="connect and read timeout per request (default 2)")
        p.add_argument("--concurrency", type=positive(int), default=1)

    p = sub.add_parser("hold", help="keep-alive connections held across a change")
    p.add_argument("url", type=parse_url)
    p.add_argument("--conns", type=positive(int), required=True)
    p.add_argument("--ready-file", required=True)
    p.add_argument("--go-file", required=True)
    p.add_argument("--timeout", type=positive(float), default=60.0,
                   help="how long to wait for the go file (default 60)")
    p.add_argument("--io-timeout", type=positive(float), default=2.0,
                   help="connect and read timeout per request (default 2)")

    p = sub.add_parser("stream", help="keep-alive connections looping requests")
    p.add_argument("url", type=parse_url)
    p.add_argument("--conns", type=positive(int), required=True)
    p.add_argument("--duration", type=positive(float), required=True)
    p.add_argument("--timeout", type=positive(float), default=2.0,
                   help="connect and read timeout per request (default 2)")
    p.add_argument("--interval-ms", type=float, default=10.0,
                   help="pause between requests on a connection (default 10)")
    p.add_argument("--no-reconnect", action="store_true",
                   help="a slot whose connection broke stops instead of reconnecting")

    p = sub.add_parser("loop", help="new connection per GET, C at a time, for S seconds")
    p.add_argument("url", type=parse_url)
    p.add_argument("--duration", type=positive(float), required=True)
    p.add_argument("--concurrency", type=positive(int), default=4)
    p.add_argument("--timeout", type=positive(float), default=1.0,
                   help="connect and read timeout per request (default 1)")

    p = sub.add_parser("udp", help="N datagrams, one reply each")
    p.add_argument("host")
    p.add_argument("port", type=port_number)
    p.add_argument("--count", type=positive(int), required=True)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--sport-range", type=port_range, metavar="A-B",
                   help="datagram i from port A+i (new socket each: a new flow each)")
    g.add_argument("--sport", type=port_number, metavar="P", help="all datagrams from one port")
    p.add_argument("--bind", metavar="ADDR", help="source address (default any)")
    p.add_argument("--timeout", type=positive(float), default=2.0,
                   help="reply wait per datagram (default 2)")

    args = ap.parse_args()
    run = {"http": run_http, "persist": run_persist, "hold": run_hold,
           "stream": run_stream, "udp": run_udp, "loop": run_loop}[args.cmd]
    try:
        res, summary = run(args)
    except (OSError, ValueError, OverflowError) as e:
        print(f"lbclient {args.cmd}: cannot run: {e}", file=sys.stderr)
        return 1
    emit(res, summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
