"""Fixtures for the tiny local model world (owned by training)."""
