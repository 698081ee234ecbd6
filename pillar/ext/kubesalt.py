"""ext_pillar `kubesalt`: hands each minion its own cluster's configuration from the
controller's records, and nothing of other clusters or other nodes.

Configured by kubesalt-controller init as `ext_pillar: [{kubesalt: {}}]`.
"""

import logging

log = logging.getLogger(__name__)


def __virtual__():
    return "kubesalt"


def ext_pillar(minion_id, pillar, *args, **kwargs):
    # Nodes join clusters through enrollment (conjurer); until a minion is enrolled it gets
    # nothing from kubesalt.
    return {}
