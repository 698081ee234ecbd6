"""Salt engine `kubesalt_endpoint`: runs the controller's HTTPS endpoint inside salt-master,
so it starts and stops with the master. Configured by kubesalt-controller init."""

import logging

from kubesalt.master.endpoint import server as endpoint
from kubesalt.master.endpoint import enrollment
from kubesalt.master.verbs import saltcalls
from kubesalt.master.verbs import support

log = logging.getLogger(__name__)


def _enroller(store, layout, relays):
    def enroll(payload, address):
        try:
            result = enrollment.enroll(store, layout, payload, address, relays=relays)
        except enrollment.EnrollmentRefused as exc:
            log.warning("enrollment from %s refused: %s", address, exc.reason)
            return exc.code, {"error": str(exc), "reason": exc.reason}
        saltcalls.fire(__opts__, support.node_tag(result["node_id"], result["status"]), result)
        return 200, result

    return enroll


def _checker(store, layout):
    def check(payload, address):
        try:
            return 200, enrollment.check(store, layout, payload)
        except enrollment.EnrollmentRefused as exc:
            log.warning("installer check from %s refused: %s", address, exc.reason)
            return exc.code, {"error": str(exc), "reason": exc.reason}

    return check


def _relays(interface):
    """The addresses the agent gateway's relayed requests come from: the controller's own
    (the gateway reaches the endpoint on its interface, or on loopback when that is a
    wildcard)."""
    return frozenset({interface, "127.0.0.1", "::1"})


def start(interface, port, max_per_address=endpoint.MAX_PER_ADDRESS,
          max_connections=endpoint.MAX_CONNECTIONS):
    """The caps are engine options (`engines: [{kubesalt_endpoint: {max_per_address: N}}]`)
    for a site whose nodes reach the controller through one NAT address."""
    layout = support.layout(__opts__)
    store = support.store(__opts__)
    server = endpoint.EndpointServer(
        (interface, int(port)), layout.artifacts_dir,
        layout.kubesalt_pki / "endpoint.crt", layout.kubesalt_pki / "endpoint.key",
        enroll=_enroller(store, layout, _relays(interface)), check=_checker(store, layout),
        max_per_address=int(max_per_address), max_connections=int(max_connections))
    log.info("kubesalt endpoint listening on https://%s:%s", interface, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
