"""ext_pillar `kubesalt`: hands each minion its own cluster's configuration from the
controller's records, and nothing of other clusters or other nodes' secrets.

Configured by kubesalt-controller init as `ext_pillar: [{kubesalt: {}}]`; the logic is
kubesalt.master.pillar_builder, which unit tests call without a master.
"""

from kubesalt.master import pillar_builder, runner_support


def __virtual__():
    return "kubesalt"


def ext_pillar(minion_id, pillar, *args, **kwargs):
    return pillar_builder.build(runner_support.store(__opts__),
                                runner_support.layout(__opts__), minion_id)
