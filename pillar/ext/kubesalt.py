"""ext_pillar `kubesalt`: hands each minion its own cluster's configuration from the
controller's records, and nothing of other clusters or other nodes' secrets.

Configured by kubesalt-controller init as `ext_pillar: [{kubesalt: {}}]`; the logic is
kubesalt.master.ops.pillar (node_pillar decides, build reads the records), which
tests/unit/test_pillar.py and the render matrix call without a master.
"""

from kubesalt.master.ops import pillar as kubesalt_pillar
from kubesalt.master.verbs import support


def __virtual__():
    return "kubesalt"


def ext_pillar(minion_id, pillar, *args, **kwargs):
    return kubesalt_pillar.build(support.store(__opts__), support.layout(__opts__), minion_id)
