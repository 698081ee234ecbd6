"""Cluster and node health: what the controller last found when it asked the nodes' agents
and, through any master that answers, Kubernetes."""
