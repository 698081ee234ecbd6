"""What conjurer reports about its node when it enrolls, so an operator sees what a
DISCOVERED node is (OS, kernel, CPUs, memory, blank disks, interfaces) before approving it:
Salt runs nothing on a node whose key is pending, so the controller's own probe comes only
after approval. Named like the grains the probe gathers later.

Gathering never stops an enrollment: a fact that cannot be read is left out.
"""

from . import prechecks


def gather(ctx):
    """{grain name: value} of what this node can tell about itself."""
    probes = ctx.probes
    facts = {}
    release = prechecks.os_release(ctx)
    for key, field in (("os", "ID"), ("osrelease", "VERSION_ID")):
        if release.get(field):
            facts[key] = release[field]
    for key, read in (("kernelrelease", probes.kernel_release), ("cpuarch", probes.arch),
                      ("num_cpus", probes.cpu_count),
                      ("mem_total", lambda: probes.mem_bytes() // (1024 * 1024)),
                      ("kubesalt_storage_candidates",
                       lambda: [device for device, _ in probes.raw_disks()]),
                      ("kubesalt_interfaces",
                       lambda: [{"name": name, "ipv4": addresses}
                                for name, addresses in probes.interfaces()])):
        try:
            value = read()
        except (OSError, ValueError):
            continue
        if value:
            facts[key] = value
    return facts
