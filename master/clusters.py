"""Cluster operations behind the `cluster.*` runners: plain functions over a Store.

Each function validates completely before it writes, so a refused request changes nothing.
"""

import os
import time
from datetime import UTC
from pathlib import Path

from . import matrix as matrix_mod
from . import conjurer_zipapp, pki, spec as spec_mod
from .errors import Refused
from .store import AlreadyExists, NotFound
from kubesalt.minion_bootstrap import credentials


class ClusterError(Refused):
    """A refused cluster request."""


_refuse = ClusterError.one


def _record(store, name):
    try:
        return store.get_cluster(name)
    except NotFound:
        raise _refuse("name", f"no cluster named {name!r}; see salt-run cluster.list") from None


def _view(record, matrix):
    spec = spec_mod.ClusterSpec.from_dict(record["spec"])
    data = spec_mod.describe(spec, matrix)
    data.update(state=record["state"], created_at=record["created_at"],
                updated_at=record["updated_at"], revision=record["revision"])
    return data


def create(store, name, matrix=None, **options):
    matrix = matrix or matrix_mod.default()
    try:
        spec = spec_mod.build(name, matrix, **options)
    except spec_mod.ValidationError as exc:
        raise ClusterError(exc.as_dict()) from None
    try:
        store.create_cluster(name, spec.to_dict())
    except AlreadyExists:
        raise _refuse("name", f"a cluster named {name!r} already exists; choose another name "
                              "or delete it first") from None
    return show(store, name, matrix)


def show(store, name, matrix=None):
    return _view(_record(store, name), matrix or matrix_mod.default())


def list_(store, matrix=None):
    matrix = matrix or matrix_mod.default()
    return [_view(r, matrix) for r in store.list_clusters()]


def update(store, name, matrix=None, **changes):
    matrix = matrix or matrix_mod.default()
    _record(store, name)
    if not changes:
        raise _refuse("update", "nothing to change; pass e.g. labels='{env: prod}' or "
                                "auto_approve=True")

    def change(current):
        try:
            new = spec_mod.apply_update(spec_mod.ClusterSpec.from_dict(current), matrix,
                                        **changes)
        except spec_mod.ValidationError as exc:
            raise ClusterError(exc.as_dict()) from None
        return new.to_dict()

    return _view(store.update_cluster(name, change), matrix)


def delete(store, name):
    _record(store, name)
    store.delete_cluster(name)
    return {"deleted": name}


def installer(store, layout_settings, pki_dir, master_pub, name, dest, now=None, rotate=False):
    """Issue a new installer credential set for `name` and write it to `dest`; with `rotate`,
    revoke every earlier set (a node presenting one is refused from then on).

    Writes <name>.pem and <name>-passphrase.txt (both 0600) and the `conjurer` executable,
    and returns where they are and the conjurer command line; the passphrase itself is never
    returned.
    """
    record = _record(store, name)
    spec = spec_mod.ClusterSpec.from_dict(record["spec"])
    if not Path(master_pub).exists():
        raise _refuse("controller", "the controller has no master key yet; run "
                                    "kubesalt-controller init first")
    dest = Path(dest).resolve() if dest else None
    if dest is None:
        raise _refuse("dest", "say where to write the credentials, e.g. dest=/root/edge1")
    now = time.time() if now is None else now
    ca = pki.ensure_ca(pki_dir)
    issued = pki.issue_installer(ca, name, spec.installer_ttl_days, now=now)
    controller = {
        "address": layout_settings["advertise"],
        "publish_port": int(layout_settings["publish_port"]),
        "ret_port": int(layout_settings["ret_port"]),
        "https_port": int(layout_settings["https_port"]),
        "master_finger": pki.master_fingerprint(master_pub),
        "ntp_server": layout_settings.get("ntp_server") or layout_settings["advertise"],
    }
    passphrase = credentials.generate_passphrase()
    sealed = credentials.seal(name, controller, ca.cert_pem, issued.cert_pem, issued.serial,
                              issued.not_after, issued.private_numbers, passphrase)
    dest.mkdir(parents=True, exist_ok=True)
    pem_path = dest / f"{name}.pem"
    pass_path = dest / f"{name}-passphrase.txt"
    _write_secret(pem_path, sealed)
    _write_secret(pass_path, passphrase + "\n")
    conjurer_zipapp.build(dest / "conjurer")
    not_after = issued.not_after.astimezone(UTC)
    revoked = store.add_installer(name, issued.serial, now, not_after.timestamp(),
                                  rotate=rotate)
    return {
        "cluster": name,
        "serial": issued.serial,
        "revoked": revoked,
        "expires": not_after.isoformat(),
        "creds_file": str(pem_path),
        "passphrase_file": str(pass_path),
        "conjurer": str(dest / "conjurer"),
        "command": (f"sudo ./conjurer -edge-name={name} -passphrase-file={pass_path.name} "
                    f"-creds-file={pem_path.name}"),
    }


def _write_secret(path, text):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
