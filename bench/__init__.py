"""Benchmarks: measured figures against the targets, never asserted in tests."""
