import concurrent.futures
import multiprocessing
import os

import pytest

from . import matrix
from .renderer import quiet_salt_logs, render_matrix


def render_os_family(os_name, root):
    with quiet_salt_logs():
        return render_matrix(os_name, root, matrix.configurations(os_name))


@pytest.fixture(scope="session")
def records(tmp_path_factory):
    """Every SLS the plan applies, rendered for every OS family x cluster type x CNI x proxy
    on/off x node role: one record per (configuration, SLS)."""
    families = list(matrix.OS_GRAINS)
    roots = [tmp_path_factory.mktemp(f"render-{os_name}") for os_name in families]
    # Rendering is CPU-bound and the families are independent: one process each, as many at
    # once as there are cores. Spawned, not forked: this process may hold other tests' threads.
    workers = min(len(families), os.cpu_count() or 1)
    with concurrent.futures.ProcessPoolExecutor(
            workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return [record for rendered in pool.map(render_os_family, families, roots)
                for record in rendered]


def where(record):
    return (f"{record['sls']} on {record['os']} {record['type']} {record['cni']} "
            f"proxy={'on' if record['proxy'] else 'off'} {record['role']} ({record['node']})")
