"""Free loopback ports, and the sockets a process listens on (to prove a test server is loopback-only)."""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Set

TCP_LISTEN = "0A"
UDP_UNCONNECTED = "07"


@dataclass(frozen=True)
class ListeningSocket:
    """One TCP listening (or bound UDP) socket owned by a process."""

    protocol: str  # "tcp", "tcp6", "udp" or "udp6"
    address: str
    port: int
    inode: int

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address).is_loopback


class NotLoopbackError(RuntimeError):
    """A test server listens on an address reachable from outside this machine."""


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (the kernel picks it; tiny race until the server binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _socket_inodes(pid: int) -> Set[int]:
    inodes: Set[int] = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for entry in fd_dir.iterdir():
        try:
            target = os.readlink(entry)
        except OSError:  # fd closed while we looked
            continue
        if target.startswith("socket:["):
            inodes.add(int(target[len("socket:["):-1]))
    return inodes


def _decode_address(hex_address: str) -> str:
    """/proc/net/tcp* stores addresses as 32-bit words in host byte order."""
    raw = bytes.fromhex(hex_address)
    if sys.byteorder == "little":
        raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    family = socket.AF_INET if len(raw) == 4 else socket.AF_INET6
    return socket.inet_ntop(family, raw)


def _proc_net_table(pid: int, protocol: str) -> Dict[int, ListeningSocket]:
    """Inode -> socket for the LISTEN (tcp) or bound (udp) entries of the process's network namespace."""
    table: Dict[int, ListeningSocket] = {}
    path = Path(f"/proc/{pid}/net/{protocol}")
    if not path.exists():
        return table
    wanted_state = TCP_LISTEN if protocol.startswith("tcp") else UDP_UNCONNECTED
    for line in path.read_text().splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted_state:
            continue
        address_hex, port_hex = fields[1].split(":")
        port = int(port_hex, 16)
        if protocol.startswith("udp") and port == 0:
            continue
        inode = int(fields[9])
        table[inode] = ListeningSocket(protocol, _decode_address(address_hex), port, inode)
    return table


def listening_sockets(pid: int) -> List[ListeningSocket]:
    """Every TCP listening socket and bound UDP socket whose file descriptor the process holds."""
    inodes = _socket_inodes(pid)
    found: List[ListeningSocket] = []
    for protocol in ("tcp", "tcp6", "udp", "udp6"):
        for inode, sock in _proc_net_table(pid, protocol).items():
            if inode in inodes:
                found.append(sock)
    return sorted(found, key=lambda s: (s.protocol, s.address, s.port))


def assert_loopback_only(pid: int, expected_port: int) -> List[ListeningSocket]:
    """Fail loudly unless the process listens on `expected_port` and on loopback addresses only."""
    sockets = listening_sockets(pid)
    exposed = [s for s in sockets if not s.loopback]
    if exposed:
        raise NotLoopbackError(f"process {pid} listens beyond loopback: {exposed}")
    if not any(s.port == expected_port and s.protocol.startswith("tcp") for s in sockets):
        raise NotLoopbackError(f"process {pid} does not listen on 127.0.0.1:{expected_port}: {sockets}")
    return sockets
