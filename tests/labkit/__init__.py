"""The lab: simulated edge nodes on one machine, for tests and the demo.

Each node is a small Debian bookworm machine booted by systemd-nspawn (systemd as PID 1, its
own network namespace with an address on the lab bridge, its own hostname, its own root as an
overlay of a cached base), so conjurer installs real systemd units and the states start real
services, and nothing leaks to the host.

    lab = Lab()
    lab.up(4)                       # node1..node4 at 10.77.0.11.. on bridge kslab0 (10.77.0.1)
    lab.node("node1").run(["hostname"])
    lab.node("node1").reboot()      # or power_cut(), or power_off() ... boot(): same disk
    lab.down()

NTP: the lab's NTP server is chrony in a dedicated infra node `ntp` (10.77.0.2), run under
faketime so a test can make it serve skewed time (`lab.skew_ntp(120)`) or stop it
(`lab.stop_ntp()`); lab nodes share the host's kernel clock, so the server is what differs.
What cannot exist here (kubeadm, kubelet, kubectl, consul) has stand-ins in tests/labkit/bin,
installed on nodes by the provisioning states like the real binaries.
"""

from .lab import BRIDGE_ADDRESS, Lab, LabError, Node

__all__ = ["BRIDGE_ADDRESS", "Lab", "LabError", "Node"]
