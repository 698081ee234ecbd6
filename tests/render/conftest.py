import pytest

from . import matrix
from .renderer import quiet_salt_logs, render_matrix


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    """Every SLS the plan applies, rendered for every OS family x cluster type x CNI x proxy
    on/off x node role: one record per (configuration, SLS)."""
    out = []
    with quiet_salt_logs():
        for os_name in matrix.OS_GRAINS:
            root = tmp_path_factory.mktemp(f"render-{os_name}")
            out.extend(render_matrix(os_name, root, matrix.configurations(os_name)))
    return out


def where(record):
    return (f"{record['sls']} on {record['os']} {record['type']} {record['cni']} "
            f"proxy={'on' if record['proxy'] else 'off'} {record['role']} ({record['node']})")
