"""Nodes behind the `node.*` runners: status derived from Salt's key store and the controller's
enrollment records, never stored twice; facts from Salt's minion data cache.

Status: ENROLLED (credentials verified, agent not connected yet) -> DISCOVERED (its key is
pending) -> APPROVED (accepted) or REJECTED; then the provisioning phase recorded by the
operation's executor (PROVISIONING, READY, FAILED; UPGRADING, RESETTING, REMOVING during day-2
operations) while the key stays accepted.
"""

import fnmatch

from kubesalt.master.inventory import keys
from kubesalt.master.inventory import orphans
from kubesalt.master.errors import Refused
from kubesalt.master.inventory.store import NotFound

STATUSES = ("ENROLLED", "DISCOVERED", "APPROVED", "REJECTED", "KEY_MISMATCH", "PROVISIONING",
            "READY", "FAILED", "UPGRADING", "RESETTING", "REMOVING", orphans.STATUS)
# An accepted node that an operation has worked on.
PHASES = ("PROVISIONING", "READY", "FAILED", "UPGRADING", "RESETTING", "REMOVING")
_KEY_STATUS = {None: "ENROLLED", "pending": "DISCOVERED", "accepted": "APPROVED",
               "rejected": "REJECTED", "denied": "REJECTED", "mismatch": "KEY_MISMATCH"}
SORT_KEYS = {"hostname": "id", "status": "status", "created": "enrolled_at",
             "cluster": "cluster"}
FACT_GRAINS = ("os", "osrelease", "oscodename", "kernelrelease", "cpuarch", "num_cpus",
               "mem_total", "kubesalt_disks", "kubesalt_storage_candidates",
               "kubesalt_interfaces", "ipv4", "fqdn")
ROLES = ("master", "worker", "storage")


_refuse = Refused.one
# The most rows one node.list page holds (the API's schema says the same).
MAX_PAGE = 10000


def status_of(record, key_state):
    status = _KEY_STATUS[key_state]
    if status == "APPROVED" and record.get("phase"):
        return record["phase"]
    return status


def view(record, key_state, grains=None, connected=None, health=None):
    data = {
        "id": record["id"],
        "hostname": record["id"],
        "cluster": record["cluster"],
        "status": status_of(record, key_state),
        "address": record["address"],
        "enrolled_at": record["enrolled_at"],
        "config": record["config"],
    }
    if grains is not None:
        data["facts"] = {g: grains[g] for g in FACT_GRAINS if g in grains}
        # What conjurer reported when it enrolled: all there is to see of a DISCOVERED node,
        # which runs nothing from the controller until it is approved and probed.
        data["reported_facts"] = dict(record.get("reported_facts") or {})
    if connected is not None:
        data["connected"] = connected
    if health is not None:
        # what the last health check found (master/health), for nodes with accepted keys
        data["health"] = health.get(record["id"])
    return data


def list_nodes(store, pki_dir, cluster=None, status=None, search=None, sort="hostname",
               connected_ids=None, health=None, limit=None, offset=0):
    """The node views, filtered and sorted; with `limit`, the page of at most that many rows
    from `offset` on (the API's schema bounds both)."""
    sort_field = sort.lstrip("-") if sort else "hostname"
    if sort_field not in SORT_KEYS:
        raise _refuse("sort", f"{sort!r} is not a sort order; use hostname, -hostname, status, "
                              "-status, created, -created, cluster or -cluster")
    if limit is not None and int(limit) > MAX_PAGE:
        raise _refuse("limit", f"{limit} is more than {MAX_PAGE}; ask for at most {MAX_PAGE} "
                               "rows at a time")
    if status is not None and str(status).upper() not in STATUSES:
        raise _refuse("status", f"{status!r} is not a node status; use one of "
                                f"{', '.join(STATUSES)}")
    if cluster is not None:
        try:
            store.get_cluster(cluster)
        except NotFound:
            raise _refuse("cluster", f"no cluster named {cluster!r}") from None
    states, records = keys.key_states(pki_dir), store.list_nodes(cluster)
    rows = [view(record, keys.state_for(states.get(record["id"]), record["pub_sha256"]),
                 connected=None if connected_ids is None else record["id"] in connected_ids,
                 health=health)
            for record in records]
    if cluster is None:
        # keys no node owns belong to no cluster: listed only when no cluster is asked for
        rows += [orphans.view(node_id, key_state, connected=None if connected_ids is None
                              else node_id in connected_ids)
                 for node_id, key_state in orphans.unowned(
                     states, {record["id"] for record in records}).items()]
    rows = [row for row in rows
            if (status is None or row["status"] == str(status).upper())
            and (not search or _matches(row, str(search)))]
    # an orphaned key has no cluster and no enrollment time: those sort after the others
    field = SORT_KEYS[sort_field]
    rows.sort(key=lambda r: (r[field] is None, 0 if r[field] is None else r[field], r["id"]),
              reverse=bool(sort) and sort.startswith("-"))
    offset = int(offset or 0)
    return rows[offset:] if limit is None else rows[offset:offset + int(limit)]


def _with_key_states(store, pki_dir, cluster=None):
    """(record, key state) of every enrolled node (of `cluster`), from one read of the
    records and of the key store."""
    states = keys.key_states(pki_dir)
    for record in store.list_nodes(cluster):
        yield record, keys.state_for(states.get(record["id"]), record["pub_sha256"])


def counts(store, pki_dir, cluster=None):
    """{cluster: {"total": enrolled nodes, "ready": READY ones}} (one cluster's with
    `cluster`)."""
    found = {}
    for record, key_state in _with_key_states(store, pki_dir, cluster):
        tally = found.setdefault(record["cluster"], {"total": 0, "ready": 0})
        tally["total"] += 1
        tally["ready"] += status_of(record, key_state) == "READY"
    return found


def _matches(row, text):
    text = text.lower()
    haystack = " ".join(str(row.get(k) or "") for k in ("id", "cluster", "status", "address"))
    if any(ch in text for ch in "*?["):
        return fnmatch.fnmatch(haystack.lower(), f"*{text}*")
    return text in haystack.lower()


def get(store, pki_dir, node_id, grains=None, connected=None, health=None):
    try:
        record = store.get_node(node_id)
    except NotFound:
        raise orphans.unknown_node(pki_dir, node_id) from None
    key_state = keys.state_for(keys.key_states(pki_dir).get(node_id), record["pub_sha256"])
    return record, view(record, key_state, grains, connected, health)


def check_approvable(store, pki_dir, node_id):
    record, shown = get(store, pki_dir, node_id)
    if shown["status"] == "APPROVED" or shown["status"] in PHASES:
        raise _refuse("node", f"{node_id} is already approved")
    if shown["status"] == "ENROLLED":
        raise _refuse("node", f"{node_id} has enrolled but its agent has not connected yet; "
                              "check kubesalt-minion on the node")
    if shown["status"] == "KEY_MISMATCH":
        raise _refuse("node", f"the key {node_id} presents is not the one it enrolled with; "
                              "reject it and run conjurer again on the real node")
    if shown["status"] == "REJECTED":
        raise _refuse("node", f"{node_id} was rejected; run conjurer -d and conjurer again on "
                              "the node to enroll it anew")
    return record


def check_rejectable(store, pki_dir, node_id):
    record, shown = get(store, pki_dir, node_id)
    if shown["status"] == "REJECTED":
        raise _refuse("node", f"{node_id} is already rejected")
    return record


# A node in one of these runs nothing from the controller: there is nothing to probe.
NOT_PROBED = ("ENROLLED", "DISCOVERED", "REJECTED", "KEY_MISMATCH")


def probe_refusal(store, pki_dir, node_id):
    """Why `node_id` is not probed, or None when it is: only enrolled nodes whose key is
    accepted are (the id is all this trusts of the event that asks)."""
    try:
        _, shown = get(store, pki_dir, node_id)
    except Refused:
        return "not an enrolled node"
    if shown["status"] in NOT_PROBED:
        return shown["status"]
    return None


# ---- configuration -----------------------------------------------------------------------

def _as_list(value):
    if value is None or value == "":
        return []
    if isinstance(value, (list, tuple)):
        return [str(v).strip() for v in value if str(v).strip()]
    return [v.strip() for v in str(value).split(",") if v.strip()]


def validate_config(cluster_spec, grains, roles, interface, storage_devices):
    """Check a node's roles, interface and storage devices against its probed facts and its
    cluster's type; return the configuration to store or raise Refused with every problem."""
    errors = []
    roles = _as_list(roles)
    devices = _as_list(storage_devices)
    unknown = [r for r in roles if r not in ROLES]
    if not roles:
        errors.append({"field": "roles", "message": "give at least one role: master, worker, "
                                                    "storage (comma separated)"})
    for role in unknown:
        errors.append({"field": "roles", "message": f"{role!r} is not a role; use master, "
                                                    "worker or storage"})
    dedicated = cluster_spec.dedicated_master
    if dedicated and "master" in roles and "worker" in roles:
        errors.append({"field": "roles", "message": "this cluster has dedicated masters: a "
                                                    "master cannot also be a worker"})
    if not dedicated and "master" in roles and "worker" not in roles:
        roles.append("worker")  # converged: every master also runs workloads
    arch = grains.get("cpuarch")
    if arch in ("aarch64", "arm64"):
        if "master" in roles or "storage" in roles:
            errors.append({"field": "roles", "message": "arm64 nodes can only be workers"})
        if str(grains.get("os", "")).lower() != "ubuntu":
            errors.append({"field": "roles", "message": "arm64 workers must run Ubuntu"})
    interfaces = {i["name"]: i for i in grains.get("kubesalt_interfaces", [])}
    if not interface:
        errors.append({"field": "interface", "message": "name the network interface Kubernetes "
                                                        f"uses, one of {', '.join(interfaces)}"})
    elif interface not in interfaces:
        errors.append({"field": "interface", "message": f"{interface!r} does not exist on this "
                                                        "node; it has "
                                                        f"{', '.join(interfaces) or 'none'}"})
    elif not interfaces[interface]["ipv4"]:
        errors.append({"field": "interface", "message": f"{interface!r} has no IPv4 address"})
    candidates = set(grains.get("kubesalt_storage_candidates", []))
    if "storage" in roles and not devices:
        errors.append({"field": "storage_devices", "message": "a storage node needs at least "
                                                              "one device, e.g. /dev/sdb"})
    if devices and "storage" not in roles:
        errors.append({"field": "storage_devices", "message": "only storage nodes take storage "
                                                              "devices; add the storage role"})
    for device in devices:
        if device not in candidates:
            errors.append({"field": "storage_devices",
                           "message": f"{device} is not an unused, unformatted disk or "
                                      "partition on this node; candidates: "
                                      f"{', '.join(sorted(candidates)) or 'none'}"})
    if errors:
        raise Refused(errors)
    address = interfaces[interface]["ipv4"][0]
    return {"roles": sorted(set(roles)), "interface": interface, "address": address,
            "storage_devices": devices}


def configure(store, pki_dir, node_id, grains, roles, interface, storage_devices):
    """Check an APPROVED, probed node's roles, interface and storage devices against its
    probed facts (`grains`, from the master's cache) and its cluster's type, and store them;
    returns the configuration or raises Refused."""
    record, shown = get(store, pki_dir, node_id)
    if shown["status"] != "APPROVED":
        raise _refuse("node", f"{node_id} is {shown['status']}; only APPROVED nodes are "
                              "configured")
    if not grains.get("kubesalt_interfaces"):
        raise _refuse("node", f"{node_id} has not been probed yet; wait for it to connect")
    spec = store.cluster(record["cluster"]).spec
    config = validate_config(spec, grains, roles, interface, storage_devices)
    store.set_node_config(node_id, config)
    return config
