"""Salt engine `kubesalt_endpoint`: runs the controller's HTTPS endpoint inside salt-master,
so it starts and stops with the master. Configured by kubesalt-controller init."""

import logging

from kubesalt.master import endpoint, runner_support

log = logging.getLogger(__name__)


def start(interface, port):
    layout = runner_support.layout(__opts__)
    server = endpoint.EndpointServer(
        (interface, int(port)), layout.artifacts_dir,
        layout.kubesalt_pki / "endpoint.crt", layout.kubesalt_pki / "endpoint.key")
    log.info("kubesalt endpoint listening on https://%s:%s", interface, port)
    try:
        server.serve_forever()
    finally:
        server.server_close()


