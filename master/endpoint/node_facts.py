"""The facts conjurer reports about its node when it enrolls (OS, kernel, CPUs, memory, blank
disks, interfaces), kept within bounds before they are stored.

They let an operator see what a DISCOVERED node is before approving it: Salt runs nothing on a
node whose key is pending, so the probed facts (grains) only come after approval and then
replace these. They are the node's word, signed with the installer key like the rest of the
enrollment; nothing is decided from them (configuration is validated against the probed
facts). What does not fit the shape below is left out, never refused: the enrollment matters
more than a fact.
"""

import ipaddress
import re

MAX_TEXT = 64
MAX_ITEMS = 64
MAX_ADDRESSES = 16
_NAME = re.compile(r"^[A-Za-z0-9_.:@/+-]{1,64}$")
_TEXT = ("os", "osrelease", "kernelrelease", "cpuarch")
_COUNTS = {"num_cpus": 4096, "mem_total": 64 * 1024 * 1024}  # CPUs; MiB (64 TiB)


def clean(raw):
    """The reported facts that have the expected shape, as grain names the console and
    node.show use for probed facts too; {} for nothing usable."""
    if not isinstance(raw, dict):
        return {}
    facts = {}
    for key in _TEXT:
        value = raw.get(key)
        if isinstance(value, str) and 0 < len(value) <= MAX_TEXT and value.isprintable():
            facts[key] = value
    for key, limit in _COUNTS.items():
        value = raw.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= limit:
            facts[key] = value
    disks = [d for d in _items(raw.get("kubesalt_storage_candidates"))
             if isinstance(d, str) and d.startswith("/dev/") and _NAME.match(d)]
    if disks:
        facts["kubesalt_storage_candidates"] = disks
    interfaces = [i for i in (_interface(i) for i in _items(raw.get("kubesalt_interfaces")))
                  if i]
    if interfaces:
        facts["kubesalt_interfaces"] = interfaces
    return facts


def _items(value):
    return value[:MAX_ITEMS] if isinstance(value, list) else []


def _interface(raw):
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str) \
            or not _NAME.match(raw["name"]):
        return None
    addresses = []
    for address in _items(raw.get("ipv4"))[:MAX_ADDRESSES]:
        if not isinstance(address, str):  # IPv4Address takes an int too
            continue
        try:
            addresses.append(str(ipaddress.IPv4Address(address)))
        except (ipaddress.AddressValueError, ValueError, TypeError):
            continue
    return {"name": raw["name"], "ipv4": addresses}
