"""Retry strategies compared in virtual time on cometsync's own call flow; throughput vs peers."""
