"""Salt engine `kubesalt_gateway`: the agent gateway (master/endpoint/gateway.py) inside
salt-master, so it starts and stops with the master, beside the endpoint. Configured by
kubesalt-controller init --gateway-port. Its own engine (a process of its own) rather than
part of the endpoint: it relays bytes for long-lived agent connections, the endpoint answers
short HTTP requests, and neither should be able to starve or take down the other."""

import logging

from kubesalt.master.endpoint import gateway
from kubesalt.master.verbs import support

log = logging.getLogger(__name__)
# The master listens on every address then; the gateway reaches it on loopback.
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1"}


def start(interface, port):
    settings = support.controller_settings(__opts__)
    layout = support.layout(__opts__)
    local = _WILDCARDS.get(settings["interface"], settings["interface"])
    targets = {"publish": (local, int(settings["publish_port"])),
               "return": (local, int(settings["ret_port"])),
               "https": (local, int(settings["https_port"]))}
    server = gateway.Gateway((interface, int(port)), layout.kubesalt_pki / "endpoint.crt",
                             layout.kubesalt_pki / "endpoint.key", targets,
                             presence_file=layout.gateway_presence)
    log.info("kubesalt agent gateway listening on %s:%s", interface, port)
    try:
        server.serve_forever()
    finally:
        server.close()
