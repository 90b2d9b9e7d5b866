"""A small DNS server on loopback: A records from a table the test changes while it runs.

It stands in for a cluster's DNS (Kubernetes, Docker) so the proxy's
discovered-replicas configuration resolves names as it would there. It
answers A queries only; any other question gets an empty answer.
"""

from __future__ import annotations

import asyncio
import ipaddress
import struct

_A, _IN = 1, 1
_ANSWER_FLAGS, _NXDOMAIN_FLAGS = 0x8180, 0x8183


def _question(packet: bytes) -> tuple[str, int, int]:
    """(name, qtype, end offset) of the first question."""
    labels, at = [], 12
    while (length := packet[at]) != 0:
        labels.append(packet[at + 1:at + 1 + length].decode("ascii").lower())
        at += 1 + length
    qtype, _ = struct.unpack("!HH", packet[at + 1:at + 5])
    return ".".join(labels), qtype, at + 5


class DnsServer(asyncio.DatagramProtocol):
    def __init__(self, records: dict[str, list[str]]) -> None:
        self.records = records  # name -> IPv4 addresses; change it at any time
        self.transport: asyncio.DatagramTransport | None = None
        self.port = 0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, local_addr=("127.0.0.1", 0))
        self.transport = transport
        self.port = transport.get_extra_info("sockname")[1]

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        name, qtype, end = _question(data)
        addresses = self.records.get(name)
        answers = [a for a in addresses or [] if qtype == _A]
        flags = _ANSWER_FLAGS if addresses is not None else _NXDOMAIN_FLAGS
        header = struct.pack("!HHHHHH", struct.unpack("!H", data[:2])[0], flags, 1, len(answers), 0, 0)
        body = b"".join(struct.pack("!HHHIH", 0xC00C, _A, _IN, 1, 4) + ipaddress.IPv4Address(a).packed
                        for a in answers)
        assert self.transport is not None
        self.transport.sendto(header + data[12:end] + body, addr)
