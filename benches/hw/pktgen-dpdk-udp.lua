-- Pktgen-DPDK run file: UDP over many flows through ferrovs on real hardware (port 0 ->
-- ferrovs "outside", ferrovs "inside" -> port 1). UDP needs no handshake: the first packet of
-- a tuple opens the connection. For SYN floods and established TCP use trex_ferrovs.py.
--
--   pktgen -l 0-4 -n 4 -a 0000:3b:00.0 -a 0000:3b:00.1 -- -P -m "[1:2].0,[3:4].1" \
--          -f benches/hw/pktgen-dpdk-udp.lua
--
-- Run it twice: through ferrovs (benches/hw/ferrovs-hw.yaml) and through dpdk-testpmd
-- (--forward-mode=io) on the same cores; ferrovs' rate / testpmd's is the harness ratio.
package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;"
require "Pktgen"

local ferrovs_outside_mac = "02:00:00:00:00:01"   -- adjust: ferrovs' MAC on "outside"
local seconds = 10

pktgen.set_mac("0", "dst", ferrovs_outside_mac)
pktgen.set_proto("0", "udp")
pktgen.set("0", "count", 0)
pktgen.set("0", "rate", 100)

-- 254 clients x 64512 source ports cycle independently (lcm: 8.2M distinct tuples).
pktgen.range.dst_mac("0", "start", ferrovs_outside_mac)
pktgen.range.src_ip("0", "start", "203.0.113.1")
pktgen.range.src_ip("0", "inc", "0.0.0.1")
pktgen.range.src_ip("0", "min", "203.0.113.1")
pktgen.range.src_ip("0", "max", "203.0.113.254")
pktgen.range.dst_ip("0", "start", "192.0.2.100")
pktgen.range.dst_ip("0", "inc", "0.0.0.0")
pktgen.range.dst_ip("0", "min", "192.0.2.100")
pktgen.range.dst_ip("0", "max", "192.0.2.100")
pktgen.range.src_port("0", "start", 1024)
pktgen.range.src_port("0", "inc", 1)
pktgen.range.src_port("0", "min", 1024)
pktgen.range.src_port("0", "max", 65535)
pktgen.range.dst_port("0", "start", 53)
pktgen.range.dst_port("0", "inc", 0)
pktgen.range.dst_port("0", "min", 53)
pktgen.range.dst_port("0", "max", 53)
pktgen.range.pkt_size("0", "start", 64)
pktgen.range.pkt_size("0", "inc", 0)
pktgen.range.pkt_size("0", "min", 64)
pktgen.range.pkt_size("0", "max", 64)
pktgen.set_range("0", "on")

pktgen.clr()
pktgen.start("0")
pktgen.delay(2000)                   -- warm-up: ferrovs resolves the backend, tables fill
local tx0 = pktgen.portStats("0", "port")[0].opackets
local rx0 = pktgen.portStats("1", "port")[1].ipackets
pktgen.delay(seconds * 1000)
local tx1 = pktgen.portStats("0", "port")[0].opackets
local rx1 = pktgen.portStats("1", "port")[1].ipackets
pktgen.stop("0")
printf("ferrovs udp: tx %.3f Mpps, rx %.3f Mpps over %d s\n",
       (tx1 - tx0) / seconds / 1e6, (rx1 - rx0) / seconds / 1e6, seconds)
