#!/usr/bin/python3
"""Summarise the IPv4 frames seen on one interface (Python 3 stdlib only; needs root).

    capture.py IFACE [--seconds N] [--in-only]

Opens an AF_PACKET raw socket bound to IFACE in the current namespace, prints `ready` once
bound, and counts IPv4 frames until N seconds have passed (no limit by default) or
SIGTERM/SIGINT. Then prints ONE JSON line (the last line of stdout):
  {"iface": IFACE, "total": N, "flows": [{"src_mac", "dst_mac", "src", "dst", "proto",
   "dir", "count"}, ...]}
aggregated by (src_mac, dst_mac, src, dst, proto, dir); dir is "in" (received) or "out"
(sent by this namespace); --in-only ignores sent frames. proto is the IP protocol number.
Used to prove that DR/TUN replies reach the client straight from the backends: source is
the VIP and src_mac is not ferrovs' port.
"""
import argparse
import collections
import json
import signal
import socket
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_8021Q = 0x8100
PACKET_OUTGOING = 4


def mac(b):
    return ":".join(f"{x:02x}" for x in b)


def main():
    ap = argparse.ArgumentParser(description="count IPv4 frames on an interface")
    ap.add_argument("iface")
    ap.add_argument("--seconds", type=float, default=0, help="stop after N s (0: until SIGTERM)")
    ap.add_argument("--in-only", action="store_true", help="ignore frames this namespace sends")
    args = ap.parse_args()

    state = {"stop": False}
    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
    signal.signal(signal.SIGINT, lambda *_: state.update(stop=True))
    try:
        s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        s.bind((args.iface, ETH_P_ALL))
        s.settimeout(0.2)
    except OSError as e:
        print(f"capture: cannot open {args.iface}: {e}", file=sys.stderr)
        return 1
    print("ready", flush=True)

    flows = collections.Counter()
    deadline = time.monotonic() + args.seconds if args.seconds > 0 else None
    while not state["stop"] and (deadline is None or time.monotonic() < deadline):
        try:
            frame, addr = s.recvfrom(65535)
        except (socket.timeout, InterruptedError):
            continue
        except OSError:  # the interface went away (ENETDOWN): report what was seen
            break
        direction = "out" if addr[2] == PACKET_OUTGOING else "in"
        if args.in_only and direction == "out":
            continue
        if len(frame) < 14:
            continue
        off = 12
        etype = int.from_bytes(frame[off:off + 2], "big")
        while etype == ETH_P_8021Q and len(frame) >= off + 6:
            off += 4
            etype = int.from_bytes(frame[off:off + 2], "big")
        ip = frame[off + 2:]
        if etype != ETH_P_IP or len(ip) < 20 or ip[0] >> 4 != 4:
            continue
        key = (mac(frame[6:12]), mac(frame[0:6]), socket.inet_ntoa(ip[12:16]),
               socket.inet_ntoa(ip[16:20]), ip[9], direction)
        flows[key] += 1
    s.close()

    out = {
        "iface": args.iface,
        "total": sum(flows.values()),
        "flows": [
            {"src_mac": k[0], "dst_mac": k[1], "src": k[2], "dst": k[3], "proto": k[4],
             "dir": k[5], "count": n}
            for k, n in sorted(flows.items(), key=lambda kv: -kv[1])
        ],
    }
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
