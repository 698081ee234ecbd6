# A minion started (or reconnected), or the health engine found an approved node unprobed
# (kubesalt/node/ID/reprobe): probe it if it is an approved kubesalt node.
# The runner re-derives everything from Salt's key store and the enrollment records; it takes
# nothing from the event but the node id.
Probe the node that started:
  runner.node.probe:
    - args:
      - node_id: {{ data['id'] }}
