"""Where the installed kubesalt tree is: states, pillar, runners, modules, reactor.

The master configuration points Salt at these directories, so they are resolved from the
installed `kubesalt.*` packages (an editable checkout or site-packages alike), never from the
current directory.
"""

import importlib.util
from pathlib import Path


def _package_dir(name):
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"kubesalt is not installed completely: package {name} is missing")
    return Path(list(spec.submodule_search_locations)[0]).resolve()


def states_dir():
    return _package_dir("kubesalt.states")


def pillar_dir():
    return _package_dir("kubesalt.pillar")


def runners_dir():
    return _package_dir("kubesalt.runners")


def modules_dir():
    return _package_dir("kubesalt.modules")


def master_dir():
    return Path(__file__).resolve().parent


def console_dir():
    """The web console's static files, served by the REST API under /console/."""
    return master_dir() / "console"


def reactor_dir():
    return master_dir() / "reactor"
