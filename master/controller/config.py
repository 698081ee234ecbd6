"""Writes the salt-master configuration that makes a plain master the kubesalt controller.

`DIR/etc/salt/master` holds where the daemon lives and listens (root_dir, interface, ports);
`master.d/kubesalt.conf` wires in kubesalt's tree (states, pillar, runners, modules, reactor,
ext_pillar); `master.d/kubesalt-api.conf` configures the REST API (salt-api with kubesalt's
`kubesalt_api` netapi module, TLS, eauth and ACLs; salt-api reads the master configuration).
All are generated: re-running keeps earlier choices unless new ones are given, and never
touches keys, records or API users.
"""

import os
import socket
from pathlib import Path

import yaml

from kubesalt.master.api import model as api
from kubesalt.master import tree

DEFAULTS = {"interface": "127.0.0.1", "publish_port": 4505, "ret_port": 4506,
            "https_port": 4507, "api_port": 8443, "advertise": None, "ntp_server": None,
            "gateway_port": 0}
_WILDCARDS = ("0.0.0.0", "::")

HEADER = "# Written by kubesalt-controller init; re-run it instead of editing by hand.\n"

# Reactor SLS files under master/reactor, by the event tag they react to.
REACTORS = {"salt/minion/*/start": ["minion_start.sls"],
            # the health engine's second try at a node whose probe failed
            "kubesalt/node/*/reprobe": ["minion_start.sls"]}


def read_settings(layout):
    """The settings an earlier init chose, or {} on a fresh root."""
    try:
        with open(layout.kubesalt_conf, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        return {}
    return dict(data.get("kubesalt", {}).get("controller", {}))


def settings_for(layout, **requested):
    settings = dict(DEFAULTS)
    settings.update(read_settings(layout))
    settings.update({k: v for k, v in requested.items() if v is not None})
    if not settings["advertise"] or (requested.get("interface")
                                     and not requested.get("advertise")):
        settings["advertise"] = _advertise_for(settings["interface"])
    return settings


def _advertise_for(interface):
    """The address nodes are told to reach the controller at."""
    if interface not in _WILDCARDS:
        return interface
    return socket.gethostbyname(socket.gethostname())


def master_config(layout, settings):
    config = {
        "interface": settings["interface"],
        "publish_port": int(settings["publish_port"]),
        "ret_port": int(settings["ret_port"]),
        "user": "root",
        "log_level_logfile": "info",
    }
    if layout.embedded:
        config["root_dir"] = str(layout.root)
    return config


def kubesalt_config(layout, settings):
    reactor_dir = tree.reactor_dir()
    return {
        "file_roots": {"base": [str(tree.states_dir()), str(tree.modules_dir()),
                                str(layout.fileserver_dir)]},
        "pillar_roots": {"base": [str(tree.pillar_dir())]},
        "runner_dirs": [str(tree.runners_dir())],
        "pillar_dirs": [str(tree.pillar_dir() / "ext")],
        "ext_pillar": [{"kubesalt": {}}],
        "engines_dirs": [str(tree.master_dir() / "engines")],
        # salt-run prints operations as stage tables and progress as lines by default;
        # --out=json (or yaml) still gives the full data.
        "outputter_dirs": [str(tree.master_dir() / "output")],
        "output": "kubesalt",
        "engines": [{"kubesalt_endpoint": {"interface": settings["interface"],
                                           "port": int(settings["https_port"])}},
                    {"kubesalt_health": {}},
                    *([{"kubesalt_gateway": {"interface": settings["interface"],
                                             "port": int(settings["gateway_port"])}}]
                      if settings.get("gateway_port") else [])],
        # Runners and the executor need the minions' grains without asking them again.
        "minion_data_cache": True,
        "reactor": [{tag: [str(reactor_dir / sls) for sls in files]}
                    for tag, files in REACTORS.items()],
        "kubesalt": {
            "state_dir": str(layout.state_dir),
            "controller": dict(settings),
        },
    }


def api_config(layout, settings):
    """salt-api's part of the master configuration. Only client=runner is enabled, and each
    user's ACL names kubesalt's runner functions one by one (master/api/model.py renders them from
    master/api/openapi.yaml), so no other runner, wheel or execution function is reachable."""
    return {
        "netapi_dirs": [str(tree.master_dir() / "netapi")],
        "netapi_enable_clients": ["runner"],
        "kubesalt_api": {
            "host": settings["interface"],
            "port": int(settings["api_port"]),
            "ssl_crt": str(layout.kubesalt_pki / "api.crt"),
            "ssl_key": str(layout.kubesalt_pki / "api.key"),
            "installers_dir": str(layout.installers_dir),
        },
        "external_auth": api.external_auth(layout),
    }


def write_api(layout, settings):
    api.ensure_user_store(layout)
    _write(layout.api_conf, api_config(layout, settings))


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(HEADER)
        yaml.safe_dump(data, handle, default_flow_style=False, sort_keys=True)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def make_private_dirs(layout):
    """Directories only root may read. Salt's cachedir among them: its job cache keeps every
    runner's arguments and return (a proxy password given to cluster.create, say) and its
    minion data cache the nodes' pillar, in files Salt creates world-readable. Also the
    cachedir's parent: the master adds o+x to its cachedir whenever it starts (for `salt` CLI
    users' key files), and under systemd, at boot or on a restart, nothing of kubesalt's runs
    after that to take it away again."""
    for directory in (layout.state_dir, layout.kubesalt_pki, layout.installers_dir,
                      layout.master_cachedir.parent, layout.master_cachedir):
        Path(directory).mkdir(parents=True, exist_ok=True)
        os.chmod(directory, 0o700)


def write(layout, settings):
    _write(layout.master_conf, master_config(layout, settings))
    _write(layout.kubesalt_conf, kubesalt_config(layout, settings))
    write_api(layout, settings)
    make_private_dirs(layout)
    layout.artifacts_dir.mkdir(parents=True, exist_ok=True)
