"""Soft preflight checks: reported as pass / warn / fail, never blocking the install."""

from .checks import fail, ok, run as run_checks, warn

GIB = 1024 ** 3
REQUIRED_PORTS = (6443, 2379, 2380, 10250, 10257, 10259)
RAW_DISK_MIN = 50 * GIB


def check_cpus(ctx):
    count = ctx.probes.cpu_count()
    if count < 2:
        return warn("cpus", "%d CPU; Kubernetes masters need at least 2" % count,
                    "give the node 2 or more CPUs")
    return ok("cpus", "%d CPUs" % count)


def check_memory(ctx):
    memory = ctx.probes.mem_bytes()
    text = "%.1f GiB" % (memory / GIB)
    if memory < 1 * GIB:
        return fail("memory", text + "; less than 1 GiB cannot run a kubelet", "add memory")
    if memory < 2 * GIB:
        return warn("memory", text + "; masters need at least 2 GiB", "add memory")
    return ok("memory", text)


def check_disk(ctx):
    results = []
    for path in ("/var", "/opt"):
        free = ctx.probes.disk_free(path)
        text = "%.1f GiB free on %s" % (free / GIB, path)
        if free < 2 * GIB:
            results.append(fail("disk" + path.replace("/", "-"), text, "free space on " + path))
        elif free < 10 * GIB:
            results.append(warn("disk" + path.replace("/", "-"), text + " (10 GiB advised)",
                                "free space on " + path))
        else:
            results.append(ok("disk" + path.replace("/", "-"), text))
    return results


def check_swap(ctx):
    if ctx.probes.swap_on():
        return warn("swap", "swap is on; the os stage turns it off for the kubelet",
                    "swapoff -a and remove swap from /etc/fstab")
    return ok("swap", "off")


def check_ports(ctx):
    busy = [p for p in REQUIRED_PORTS if ctx.probes.port_in_use(p, ("tcp",))]
    if busy:
        return fail("ports", "in use: " + ", ".join(str(p) for p in busy),
                    "stop what listens there; Kubernetes needs them")
    return ok("ports", "free: " + ", ".join(str(p) for p in REQUIRED_PORTS))


def check_modules(ctx):
    missing = [m for m in ("overlay", "br_netfilter") if not ctx.probes.kernel_module_loaded(m)]
    if missing:
        return warn("kernel-modules", "not loaded: " + ", ".join(missing),
                    "the os stage loads them; modprobe them now to check they exist")
    return ok("kernel-modules", "overlay, br_netfilter loaded")


def check_sysctls(ctx):
    wrong = []
    for name in ("net.ipv4.ip_forward", "net.bridge.bridge-nf-call-iptables"):
        if ctx.probes.sysctl(name) != "1":
            wrong.append("%s=%s" % (name, ctx.probes.sysctl(name)))
    if wrong:
        return warn("sysctls", "not 1: " + ", ".join(wrong), "the os stage sets them to 1")
    return ok("sysctls", "ip_forward and bridge-nf-call-iptables are 1")


def check_runtime(ctx):
    found = [b for b in ("/usr/bin/dockerd", "/usr/bin/containerd", "/usr/local/bin/containerd",
                         "/var/run/docker.sock", "/run/containerd/containerd.sock")
             if ctx.exists(b)]
    if any("docker" in f for f in found):
        return fail("container-runtime", "Docker is installed: " + ", ".join(found),
                    "remove Docker; kubesalt installs containerd")
    if found:
        return warn("container-runtime", "a container runtime exists: " + ", ".join(found),
                    "kubesalt installs its own containerd over it")
    return ok("container-runtime", "none")


def check_raw_disk(ctx):
    big = [(d, s) for d, s in ctx.probes.raw_disks() if s >= RAW_DISK_MIN]
    needed = not ctx.roles or set(ctx.roles) & {"master", "storage"}
    if big:
        return ok("raw-disk", ", ".join("%s (%d GiB)" % (d, s // GIB) for d, s in big))
    if needed:
        return warn("raw-disk", "no raw unformatted disk of 50 GB or more; masters and "
                                "storage nodes need one", "attach an empty disk")
    return ok("raw-disk", "not needed for this node's roles")


def check_search_domains(ctx):
    wildcards = []
    for line in (ctx.read("/etc/resolv.conf") or "").splitlines():
        fields = line.split()
        if fields and fields[0] in ("search", "domain"):
            wildcards.extend(f for f in fields[1:] if "*" in f)
    if wildcards:
        return warn("dns-search", "wildcard search domains: " + ", ".join(wildcards),
                    "remove them: they resolve cluster names to the wrong hosts")
    return ok("dns-search", "no wildcard search domains")


def check_time_sync(ctx):
    """Whether this node keeps its own clock right. The hard time check only says the clock
    is right now; a node that does not synchronise drifts out of the window later."""
    state, source = ctx.probes.time_sync()
    if state == "yes":
        return ok("time-sync", "synchronised (%s)" % source)
    if state == "no":
        return warn("time-sync", "this node's clock is not synchronised (%s)" % source,
                    "timedatectl set-ntp true, or install and start chrony, with the site's "
                    "NTP servers")
    return warn("time-sync", "unknown: neither timedatectl nor chronyc answers",
                "install chrony (or systemd-timesyncd) so the clock stays right")


def check_arch(ctx):
    arch = ctx.probes.arch()
    if arch in ("x86_64", "amd64"):
        return ok("arch", arch)
    if arch in ("aarch64", "arm64"):
        if set(ctx.roles) & {"master", "storage"}:
            return fail("arch", "arm64 nodes can only be workers", "use an x86_64 node")
        return warn("arch", "arm64: this node can only be a worker (Ubuntu)")
    return fail("arch", "%s is not supported" % arch, "use an x86_64 or arm64 node")


CHECKS = (check_cpus, check_memory, check_disk, check_swap, check_ports, check_modules,
          check_sysctls, check_runtime, check_raw_disk, check_search_domains, check_arch,
          check_time_sync)


def run(ctx):
    return run_checks(CHECKS, ctx)
