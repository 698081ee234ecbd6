"""The operation machinery: plans, their start, the executor and what a node's pillar holds."""
