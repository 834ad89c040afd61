"""The benchmarks' slow link: a private network namespace (`unshare -n`, root) whose loopback the
kernel rate-limits with `tc ... tbf` (the kernel here has no netem).

Server and client both live in the namespace, so nothing else shares the link and no traffic can
leave the machine. The loopback MTU is set to 1500 for a rate limit: tbf stalls on 64 KB loopback
packets. Byte counters come from /proc/self/net/dev, which is per namespace (/sys/class/net is not:
it shows the namespace that mounted sysfs).
"""
from __future__ import annotations

import json
import os
import subprocess
from typing import Dict, List, Optional, Sequence

LOOPBACK = "loopback"  # the name of the unlimited link in --rates lists
INSIDE_ENV = "PDF_BENCH_NETNS"  # set in the re-executed process: it runs inside the namespace
TBF_BURST = "64kb"
TBF_LATENCY = "50ms"
LIMITED_MTU = 1500

_UNITS = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


def rate_bits(text: str) -> Optional[float]:
    """'30mbit' -> 30e6 bits per second (tc's units); 'loopback' -> None (no limit)."""
    name = text.strip().lower()
    if name == LOOPBACK:
        return None
    for unit, factor in _UNITS.items():
        if name.endswith(unit):
            try:
                value = float(name[: -len(unit)])
            except ValueError:
                break
            if value > 0:
                return value * factor
            break
    raise ValueError(f"rate {text!r}: use e.g. 30mbit, 100mbit, 1gbit or {LOOPBACK}")


def inside() -> bool:
    return os.environ.get(INSIDE_ENV) == "1"


def start_inside(command: Sequence[str], limited: bool) -> "subprocess.Popen[bytes]":
    """Start `command` in a fresh private network namespace (loopback up; MTU 1500 if `limited`)."""
    mtu = f" mtu {LIMITED_MTU}" if limited else ""
    script = f'ip link set lo{mtu} up && exec "$@"'
    env = dict(os.environ, **{INSIDE_ENV: "1", "PYTHONUNBUFFERED": "1"})
    return subprocess.Popen(["unshare", "-n", "sh", "-c", script, "sh", *command], env=env)


def run_inside(command: Sequence[str], limited: bool) -> int:
    """start_inside() and wait: the exit code."""
    return start_inside(command, limited).wait()


def limit_loopback(rate: str) -> None:
    """Rate-limit this namespace's loopback (call it after uploading: only fetches cross the limit)."""
    if not inside():
        raise RuntimeError("limit_loopback outside a private namespace would throttle the machine's loopback")
    subprocess.run(["tc", "qdisc", "replace", "dev", "lo", "root", "tbf", "rate", rate, "burst", TBF_BURST,
                    "latency", TBF_LATENCY], check=True)


def loopback_bytes() -> int:
    """Bytes sent over this namespace's loopback so far: every packet, both directions, headers and
    ACKs included -- what the tbf meters."""
    with open("/proc/self/net/dev") as handle:
        for line in handle:
            name, _, counters = line.partition(":")
            if name.strip() == "lo":
                fields: List[str] = counters.split()
                return int(fields[8])  # transmit bytes
    raise RuntimeError("no loopback in /proc/self/net/dev")


def qdisc_counters() -> Dict[str, int]:
    """The loopback qdisc's counters: bytes and packets as the tbf meters them (every segment's
    headers count, while /proc/net/dev counts a 64 KB GSO packet's headers once), packets it
    dropped (TCP retransmits them) and times it held packets back; zeros without a limit."""
    listing = subprocess.run(["tc", "-s", "-j", "qdisc", "show", "dev", "lo"], check=True, capture_output=True,
                             text=True).stdout
    qdiscs = [q for q in json.loads(listing or "[]") if q.get("kind") == "tbf"]
    return {key: sum(int(q.get(key, 0)) for q in qdiscs) for key in ("bytes", "packets", "drops", "overlimits")}
