"""Grains kubesalt needs about a node: disks usable for storage and interfaces with addresses.

Synced to kubesalt's minions (saltutil.sync_grains); the master caches them in its minion data
cache, which is where `node.show` and `node.configure` read node facts from.
"""

import os

import psutil

SYS_BLOCK = "/sys/block"
# Devices that are never storage candidates. Loop devices are kept: an attached loop device is
# a disk for all a node can tell (and the lab's storage disks are loop devices).
_SKIP_PREFIXES = ("ram", "zram", "dm-", "sr", "fd", "md", "nbd")
# Filesystem and partition-table signatures at fixed offsets (offset, magic).
_SIGNATURES = (
    (0x438, b"\x53\xef"),  # ext2/3/4 superblock magic
    (0x0, b"XFSB"),
    (0x10040, b"_BHRfS_M"),  # btrfs
    (0x1FE, b"\x55\xaa"),  # MBR / protective MBR of GPT
    (0x200, b"EFI PART"),
    (0xFF6, b"SWAPSPACE2"),
    (0x0, b"LUKS\xba\xbe"),
    (0x218, b"LVM2 001"),
)


def _read(path, default=""):
    try:
        with open(path, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return default


def _mounted_devices():
    devices = set()
    for part in psutil.disk_partitions(all=True):
        devices.add(os.path.realpath(part.device))
    try:
        with open("/proc/swaps", encoding="ascii") as handle:
            for line in handle.readlines()[1:]:
                devices.add(os.path.realpath(line.split()[0]))
    except OSError:
        pass
    return devices


def _has_signature(device):
    try:
        with open(device, "rb") as handle:
            for offset, magic in _SIGNATURES:
                handle.seek(offset)
                if handle.read(len(magic)) == magic:
                    return True
    except OSError:
        return True  # unreadable: never offer it as free storage
    return False


def _block_entry(name, sys_path, mounted, parent=None):
    device = "/dev/" + name
    size = int(_read(os.path.join(sys_path, "size"), "0") or 0) * 512
    holders = os.listdir(os.path.join(sys_path, "holders")) if os.path.isdir(
        os.path.join(sys_path, "holders")) else []
    rotational = _read(os.path.join(SYS_BLOCK, parent or name, "queue", "rotational"), "1")
    in_use = device in mounted or bool(holders)
    formatted = in_use or (os.path.exists(device) and _has_signature(device))
    return {
        "name": device,
        "size_bytes": size,
        "type": "part" if parent else "disk",
        "rotational": rotational == "1",
        "mounted": device in mounted,
        "formatted": formatted,
    }


def _disks():
    if not os.path.isdir(SYS_BLOCK):
        return []
    mounted = _mounted_devices()
    disks = []
    for name in sorted(os.listdir(SYS_BLOCK)):
        if name.startswith(_SKIP_PREFIXES):
            continue
        sys_path = os.path.join(SYS_BLOCK, name)
        entry = _block_entry(name, sys_path, mounted)
        if entry["size_bytes"] == 0:  # detached loop device, empty card reader
            continue
        partitions = [p for p in sorted(os.listdir(sys_path)) if p.startswith(name)]
        entry["partitions"] = [_block_entry(p, os.path.join(sys_path, p), mounted, parent=name)
                               for p in partitions]
        if entry["partitions"]:
            entry["formatted"] = True
        disks.append(entry)
    return disks


def _storage_candidates(disks):
    """Whole unformatted disks, and unformatted unmounted partitions."""
    candidates = []
    for disk in disks:
        if not disk["partitions"] and not disk["formatted"]:
            candidates.append(disk["name"])
        for part in disk["partitions"]:
            if not part["formatted"]:
                candidates.append(part["name"])
    return candidates


def _interfaces():
    interfaces = []
    stats = psutil.net_if_stats()
    for name, addresses in sorted(psutil.net_if_addrs().items()):
        if name == "lo":
            continue
        ipv4 = [a.address for a in addresses if a.family.name == "AF_INET"]
        interfaces.append({
            "name": name,
            "ipv4": ipv4,
            "up": bool(stats.get(name) and stats[name].isup),
            "mtu": stats[name].mtu if name in stats else None,
        })
    return interfaces


def kubesalt_facts():
    disks = _disks()
    return {
        "kubesalt_disks": disks,
        "kubesalt_storage_candidates": _storage_candidates(disks),
        "kubesalt_interfaces": _interfaces(),
    }
