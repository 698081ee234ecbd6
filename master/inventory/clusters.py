"""Cluster operations behind the `cluster.*` runners: plain functions over a Store.

Each function validates completely before it writes, so a refused request changes nothing.
"""

import os
import shutil
import tempfile
import time
from datetime import UTC
from pathlib import Path

from kubesalt.master.health import assess
from kubesalt.master.inventory import matrix as matrix_mod
from kubesalt.master.agent import conjurer_zipapp
from kubesalt.master.trust import pki
from kubesalt.master.inventory import spec as spec_mod
from kubesalt.master.errors import Refused
from kubesalt.master.inventory.store import AlreadyExists, NotFound
from kubesalt.minion_bootstrap import credentials


_refuse = Refused.one


def record(store, name):
    """The cluster record, or Refused naming the `name` field."""
    try:
        return store.cluster(name)
    except NotFound:
        raise _refuse("name", f"no cluster named {name!r}; see salt-run cluster.list") from None


NO_NODES = {"total": 0, "ready": 0}


# A cluster the health checks have not reached yet (master/health).
NOT_CHECKED = {"state": "unknown", "reason": "not checked yet", "problems": []}


def _view(cluster, matrix, counts=None, health=None):
    data = spec_mod.describe(cluster.spec, matrix)
    data.update(state=cluster.state, created_at=cluster.created_at,
                updated_at=cluster.updated_at, revision=cluster.revision)
    if counts is not None:
        data["nodes"] = dict(counts.get(cluster.spec.name, NO_NODES))
    if health is not None:
        data["health"] = health.get(cluster.spec.name) or dict(NOT_CHECKED)
    return data


def create(store, name, matrix=None, **options):
    matrix = matrix or matrix_mod.default()
    try:
        spec = spec_mod.build(name, matrix, **options)
    except spec_mod.ValidationError as exc:
        raise Refused(exc.as_dict()) from None
    try:
        store.create_cluster(name, spec)
    except AlreadyExists:
        raise _refuse("name", f"a cluster named {name!r} already exists; choose another name "
                              "or delete it first") from None
    # a new cluster has no nodes yet: its health says so from the start, as checks will
    state, detail = assess.cluster_state({})
    store.record_health(name, state, detail, {})
    return show(store, name, matrix, counts={}, health=store.cluster_health())


def show(store, name, matrix=None, counts=None, health=None):
    """The cluster's settings and state; with `counts` (nodes.counts) its nodes ready/total,
    with `health` ({cluster: health}, master/health/check.views) its health."""
    return _view(record(store, name), matrix or matrix_mod.default(), counts, health)


def list_(store, matrix=None, counts=None, health=None):
    matrix = matrix or matrix_mod.default()
    return [_view(c, matrix, counts, health) for c in store.clusters()]


def update(store, name, matrix=None, **changes):
    matrix = matrix or matrix_mod.default()
    record(store, name)
    if not changes:
        raise _refuse("update", "nothing to change; pass e.g. labels='{env: prod}' or "
                                "auto_approve=True")

    def change(current):
        try:
            return spec_mod.apply_update(current, matrix, **changes)
        except spec_mod.ValidationError as exc:
            raise Refused(exc.as_dict()) from None

    return _view(store.update_spec(name, change), matrix)


def installer(store, layout_settings, pki_dir, master_pub, name, dest, now=None, rotate=False):
    """Issue a new installer credential set for `name` and write it to `dest`; with `rotate`,
    revoke every earlier set (a node presenting one is refused from then on).

    Writes <name>.pem and <name>-passphrase.txt (both 0600) and the `conjurer` executable,
    and returns where they are and the conjurer command line; the passphrase itself is never
    returned.
    """
    spec = record(store, name).spec
    if not Path(master_pub).exists():
        raise _refuse("controller", "the controller has no master key yet; run "
                                    "kubesalt-controller init first")
    dest = _destination(dest)
    now = time.time() if now is None else now
    ca = pki.ensure_ca(pki_dir)
    issued = pki.issue_installer(ca, name, spec.installer_ttl_days, now=now)
    controller = {
        "address": layout_settings["advertise"],
        "publish_port": int(layout_settings["publish_port"]),
        "ret_port": int(layout_settings["ret_port"]),
        "https_port": int(layout_settings["https_port"]),
        "master_finger": pki.master_fingerprint(master_pub),
        **({"ntp_server": layout_settings["ntp_server"]}
           if layout_settings.get("ntp_server") else {}),
        # Only when the controller runs its agent gateway (init --gateway-port).
        **({"gateway_port": int(layout_settings["gateway_port"])}
           if layout_settings.get("gateway_port") else {}),
    }
    passphrase = credentials.generate_passphrase()
    sealed = credentials.seal(name, controller, ca.cert_pem, issued.cert_pem, issued.serial,
                              issued.not_after, issued.private_numbers, passphrase,
                              proxy=spec.to_dict()["proxy"])
    pem_path = dest / f"{name}.pem"
    pass_path = dest / f"{name}-passphrase.txt"
    _write_files(dest, {pem_path.name: sealed, pass_path.name: passphrase + "\n"})
    not_after = issued.not_after.astimezone(UTC)
    revoked = store.add_installer(name, issued.serial, now, not_after.timestamp(),
                                  rotate=rotate)
    result = {
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
    recent = [r for r in store.installers(name)
              if r["serial"] in revoked and r["issued_at"] > now - CONCURRENT_ROTATION]
    if recent:
        # Two rotations at once: each revokes what the other issued a moment before, and
        # only the later one stays valid. Say so rather than let both look successful.
        result["warning"] = (f"this rotation also revoked {len(recent)} set(s) issued in the "
                             "last minute (serial "
                             f"{', '.join(str(r['serial']) for r in recent)}), e.g. by another "
                             "rotation at the same time; only this set enrolls nodes now")
    return result


# Where installer credentials may not go: the system's own directories, and anything below
# the trees that hold the OS itself.
SYSTEM_DIRS = frozenset({"/", "/etc", "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64",
                         "/boot", "/dev", "/proc", "/sys", "/var", "/run", "/opt", "/srv",
                         "/home", "/root", "/tmp", "/mnt", "/media", "/var/lib",  # noqa: S108
                         "/var/tmp"})  # noqa: S108
SYSTEM_TREES = ("/proc", "/sys", "/dev", "/boot", "/usr", "/bin", "/sbin", "/lib", "/lib32",
                "/lib64")
# A rotation that revokes a set issued this recently raced with another one.
CONCURRENT_ROTATION = 60


def _destination(dest):
    """The directory credentials go to, created (0700) when only it is missing; refused
    with a `dest` error for a system directory, a non-directory or a missing parent."""
    if not dest or not isinstance(dest, str | os.PathLike):
        raise _refuse("dest", "say where to write the credentials, e.g. dest=/root/edge1")
    path = Path(dest).resolve()
    if str(path) in SYSTEM_DIRS or any(path.is_relative_to(t) for t in SYSTEM_TREES):
        raise _refuse("dest", f"{path} is a system directory; use a directory of its own, "
                              "e.g. /root/<cluster>")
    if path.exists() and not path.is_dir():
        raise _refuse("dest", f"{path} exists and is not a directory; name a directory")
    if not path.exists():
        if not path.parent.is_dir():
            raise _refuse("dest", f"{path.parent} does not exist; create it first or name an "
                                  "existing directory")
        try:
            path.mkdir(mode=0o700)
        except FileExistsError:
            pass
        except OSError as exc:
            raise _refuse("dest", f"cannot create {path}: {exc.strerror}") from None
    return path


def _write_files(dest, secrets):
    """Write the secret files (0600) and conjurer into `dest` without ever following a link
    planted there: each is written in a fresh private directory inside `dest` and renamed
    into place (a rename replaces a link, it does not write through it)."""
    try:
        staging = Path(tempfile.mkdtemp(prefix=".installer-", dir=dest))
    except OSError as exc:
        raise _refuse("dest", f"cannot write to {dest}: {exc.strerror}") from None
    try:
        for name, text in secrets.items():
            fd = os.open(staging / name,
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
        conjurer_zipapp.build(staging / "conjurer")
        for name in (*secrets, "conjurer"):
            target = dest / name
            if target.is_dir() and not target.is_symlink():
                raise _refuse("dest", f"{target} is a directory; remove it or choose another "
                                      "dest")
            os.rename(staging / name, target)
    except OSError as exc:
        raise _refuse("dest", f"cannot write the credentials to {dest}: {exc.strerror}") \
            from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
