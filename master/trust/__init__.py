"""Certificates and the per-cluster secrets the controller issues."""
