# TRex stateless profile for ferrovs on real hardware (TRex port 0 -> ferrovs "outside",
# ferrovs "inside" -> TRex port 1). The counterpart of benches/harness.sh's cases.
#
#   ./t-rex-64 -i --cfg benches/hw/trex_cfg.yaml          # one shell
#   trex-console                                            # another:
#     start -f benches/hw/trex_ferrovs.py -p 0 -m 100% -t mode=syn                  # SYN flood
#     start -f benches/hw/trex_ferrovs.py -p 0 -m 1mpps -t mode=syn,flows=1000000,once=1
#                                                           # open 1M connections, then:
#     start -f benches/hw/trex_ferrovs.py -p 0 -m 100% -t mode=ack,flows=1000000  # established
#     start -f benches/hw/trex_ferrovs.py -p 0 -m 100% -t mode=udp,flows=1000000  # UDP flows
#   Read the rate ferrovs sustained from port 1's rx pps (tui, or `stats --ps`); the ratio to
#   port 0's tx is the loss. Run each case also with ferrovs replaced by dpdk-testpmd
#   (--forward-mode=io) on the same cores and ports: that is the ceiling the ratio uses.
#
# Tuples: clients 203.0.113.1-254, source ports 1024-65535,
# to the VIP 192.0.2.100:80. flows = clients x ports in use, each a distinct 5-tuple.
import argparse

from trex_stl_lib.api import (STLPktBuilder, STLProfile, STLScVmRaw, STLStream, STLTXCont,
                              STLTXSingleBurst, STLVmFixChecksumHw, STLVmFixIpv4, STLVmTupleGen,
                              STLVmWrFlowVar, CTRexVmInsFixHwCs, Ether, IP, TCP, UDP)

FIRST_PORT = 1024
PORTS = 65536 - FIRST_PORT


class FerrovsLb:
    def get_streams(self, tunables, **kwargs):
        parser = argparse.ArgumentParser(description="ferrovs load-balancer traffic")
        parser.add_argument("--mode", choices=["syn", "ack", "udp"], default="ack")
        parser.add_argument("--flows", type=int, default=1000000,
                            help="distinct tuples (syn without --once: every packet cycles through them)")
        parser.add_argument("--size", type=int, default=64, help="frame size with FCS")
        parser.add_argument("--vip", default="192.0.2.100")
        parser.add_argument("--vport", type=int, default=80)
        parser.add_argument("--once", type=int, default=0,
                            help="1: send each tuple once (a single burst), to open connections")
        args = parser.parse_args(tunables)

        clients = max(1, -(-args.flows // PORTS))
        ports = min(PORTS, args.flows)
        if args.mode == "udp":
            l4 = UDP(sport=FIRST_PORT, dport=args.vport)
        else:
            l4 = TCP(sport=FIRST_PORT, dport=args.vport, flags="S" if args.mode == "syn" else "A",
                     seq=1000, ack=0 if args.mode == "syn" else 1)
        base = Ether() / IP(src="203.0.113.1", dst=args.vip, flags="DF") / l4
        pad = max(0, args.size - 4 - len(base)) * b"\x00"
        if clients > 254:
            raise ValueError("more than 254 x %d flows: widen the client range in this profile" % PORTS)
        last_client = "203.0.113.%d" % clients
        vm = STLScVmRaw([
            STLVmTupleGen(ip_min="203.0.113.1", ip_max=last_client, port_min=FIRST_PORT,
                          port_max=FIRST_PORT + ports - 1, name="tuple"),
            STLVmWrFlowVar(fv_name="tuple.ip", pkt_offset="IP.src"),
            STLVmWrFlowVar(fv_name="tuple.port", pkt_offset="UDP.sport" if args.mode == "udp" else "TCP.sport"),
            STLVmFixIpv4(offset="IP"),
            STLVmFixChecksumHw(l3_offset="IP", l4_offset="UDP" if args.mode == "udp" else "TCP",
                               l4_type=CTRexVmInsFixHwCs.L4_TYPE_UDP if args.mode == "udp"
                               else CTRexVmInsFixHwCs.L4_TYPE_TCP),
        ])
        mode = STLTXSingleBurst(total_pkts=args.flows) if args.once else STLTXCont()
        return [STLStream(packet=STLPktBuilder(pkt=base / pad, vm=vm), mode=mode)]


def register():
    return FerrovsLb()
