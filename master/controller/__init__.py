"""The controller's daemons: their configuration, start, stop and recovery."""
