"""Fixtures for the embedded Kafka-compatible broker (owned by ingest)."""
