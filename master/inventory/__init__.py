"""The records and what they describe: cluster specs, clusters, nodes, keys, artifacts."""
