# A minion started (or reconnected): probe it if it is an approved kubesalt node.
# The runner re-derives everything from Salt's key store and the enrollment records; it takes
# nothing from the event but the id Salt authenticated.
Probe the node that started:
  runner.node.probe:
    - args:
      - node_id: {{ data['id'] }}
