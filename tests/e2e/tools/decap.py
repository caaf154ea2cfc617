#!/usr/bin/python3
"""Userspace tunnel decapsulation for ferrovs TUN-mode backends (Python 3 stdlib only).

    decap.py [--dev NAME] [--gue PORT]

The test kernel has no ipip/fou module, so a backend cannot terminate ferrovs' tunnels
itself. Run this inside the backend's namespace (as root): it creates the TUN device NAME
(default decap0; IFF_TUN|IFF_NO_PI), brings it up, sets rp_filter=0 for it and for
all/default (the inner packets come from the client, whose route is not via NAME), and then
  * reads IP-in-IP (IP protocol 4) with a raw socket: the kernel hands over the outer IPv4
    header + the inner packet. With no ipip module the raw socket is what keeps the kernel
    from answering "protocol unreachable";
  * reads IPv6-in-IPv6 (next header 41) with an IPv6 raw socket: the kernel hands over the
    inner packet (an IPv6 raw socket never sees the outer IPv6 header);
  * with --gue PORT, reads UDP datagrams on PORT, over IPv4 or IPv6, whose payload is an
    inner IPv4 or IPv6 packet (GUE variant 1: the inner IP header right after the 8-byte UDP
    header);
strips the outer header(s), checks the inner packet (IPv4 or IPv6, its length) and writes it
to the TUN device, so the kernel receives it as if it had arrived there. The VIP must be on
the backend (e.g. on lo, see fvs_dsr_return in scripts/lib.sh) for the kernel to accept it.

Prints `ready` once listening. SIGUSR1 prints the counters as one JSON line and goes on;
SIGTERM/SIGINT print them and exit 0:
  {"ipip": N, "ip6ip6": N, "gue": N, "gue6": N, "bad": N, "write_errors": N, "bad_reasons": {...}}
ipip/ip6ip6/gue count inner packets written to the TUN device; gue6 counts those of them
(GUE) that carried an IPv6 packet.
"""
import argparse
import collections
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IFF_UP = 0x1
SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IPPROTO_IPIP = 4
IPPROTO_IPV6_IN_IP = 41


def write_sysctl(path, value):
    try:
        with open(path, "w") as fh:
            fh.write(value)
        return True
    except OSError:
        return False


def tun_open(name):
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    ifr = struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI)
    fcntl.ioctl(fd, TUNSETIFF, ifr)
    return fd


def link_up(name):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        ifr = struct.pack("16sh14x", name.encode(), 0)
        flags = struct.unpack("16sh14x", fcntl.ioctl(s, SIOCGIFFLAGS, ifr))[1]
        fcntl.ioctl(s, SIOCSIFFLAGS, struct.pack("16sh14x", name.encode(), flags | IFF_UP))
    finally:
        s.close()


def inner_ip(data):
    """The IPv4 or IPv6 packet at the start of data, trimmed to its length, or (None, reason)."""
    if len(data) >= 40 and data[0] >> 4 == 6:
        total = 40 + struct.unpack_from("!H", data, 4)[0]
        if total > len(data):
            return None, "inner bad IPv6 length"
        return data[:total], None
    return inner_ipv4(data)


def inner_ipv4(data):
    """The IPv4 packet at the start of data, trimmed to its total length, or (None, reason)."""
    if len(data) < 20:
        return None, "inner too short"
    if data[0] >> 4 != 4:
        return None, "inner not IPv4"
    ihl = (data[0] & 0x0F) * 4
    total = struct.unpack_from("!H", data, 2)[0]
    if ihl < 20 or total < ihl or total > len(data):
        return None, "inner bad header"
    return data[:total], None


def strip_outer(data):
    """Raw IPIP socket data: outer IPv4 header (IHL checked) + inner packet."""
    if len(data) < 20 or data[0] >> 4 != 4:
        return None, "outer not IPv4"
    ihl = (data[0] & 0x0F) * 4
    total = struct.unpack_from("!H", data, 2)[0]
    if ihl < 20 or len(data) < ihl:
        return None, "outer bad header"
    if data[9] != IPPROTO_IPIP:
        return None, "outer not IPIP"
    if ihl <= total <= len(data):
        data = data[:total]
    return inner_ipv4(data[ihl:])


def main():
    ap = argparse.ArgumentParser(description="userspace IPIP/GUE decapsulation into a TUN device")
    ap.add_argument("--dev", default="decap0", help="TUN device name (default decap0)")
    ap.add_argument("--gue", type=int, metavar="PORT", help="also decapsulate GUE on UDP PORT")
    args = ap.parse_args()
    if len(args.dev.encode()) > 15:
        ap.error("--dev: at most 15 characters")

    counts = collections.Counter(ipip=0, ip6ip6=0, gue=0, gue6=0, bad=0, write_errors=0)
    reasons = collections.Counter()
    state = {"stop": False, "dump": False}

    def report():
        out = dict(counts)
        out["bad_reasons"] = dict(reasons)
        print(json.dumps(out), flush=True)

    signal.signal(signal.SIGTERM, lambda *_: state.update(stop=True))
    signal.signal(signal.SIGINT, lambda *_: state.update(stop=True))
    signal.signal(signal.SIGUSR1, lambda *_: state.update(dump=True))

    try:
        # Before the device exists, so it inherits them; again on the device itself below.
        for conf in ("all", "default"):
            write_sysctl(f"/proc/sys/net/ipv4/conf/{conf}/rp_filter", "0")
        tun = tun_open(args.dev)
        write_sysctl(f"/proc/sys/net/ipv4/conf/{args.dev}/rp_filter", "0")
        # IPv6 stays on (inner IPv6 packets arrive here) but with no address of its own, so
        # the kernel has little to say on it; what it sends anyway is read and dropped below.
        write_sysctl(f"/proc/sys/net/ipv6/conf/{args.dev}/addr_gen_mode", "1")
        write_sysctl(f"/proc/sys/net/ipv6/conf/{args.dev}/accept_ra", "0")
        link_up(args.dev)
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
        raw.setblocking(False)
        raw6 = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6_IN_IP)
        raw6.setblocking(False)
        gue = None
        if args.gue is not None:
            # Dual stack: GUE over IPv4 arrives as from ::ffff:a.b.c.d.
            gue = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
            gue.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            gue.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            gue.bind(("::", args.gue))
            gue.setblocking(False)
    except OSError as e:
        print(f"decap: cannot start: {e}", file=sys.stderr)
        return 1

    poller = select.poll()
    poller.register(raw, select.POLLIN)
    poller.register(raw6, select.POLLIN)
    poller.register(tun, select.POLLIN)
    if gue is not None:
        poller.register(gue, select.POLLIN)
    sources = {raw.fileno(): ("ipip", raw), raw6.fileno(): ("ip6ip6", raw6), tun: ("tun", None)}
    if gue is not None:
        sources[gue.fileno()] = ("gue", gue)
    print("ready", flush=True)

    def deliver(kind, inner, why):
        if inner is None:
            counts["bad"] += 1
            reasons[f"{kind}: {why}"] += 1
            return
        try:
            os.write(tun, inner)
            counts[kind] += 1
            if kind == "gue" and inner[0] >> 4 == 6:
                counts["gue6"] += 1
        except OSError as e:
            counts["write_errors"] += 1
            reasons[f"write: {e.strerror}"] += 1

    while not state["stop"]:
        if state["dump"]:
            state["dump"] = False
            report()
        try:
            events = poller.poll(200)
        except InterruptedError:
            continue
        for fd, _ in events:
            kind, sock = sources[fd]
            for _ in range(64):  # bounded burst per source, then poll again
                try:
                    if sock is None:
                        os.read(tun, 65535)  # whatever the kernel sends out of the device: drop
                        continue
                    data = sock.recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    break
                if kind == "ipip":
                    deliver(kind, *strip_outer(data))
                else:
                    deliver(kind, *inner_ip(data))
    report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
