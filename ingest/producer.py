"""The app side's producer, as flywheel imports it.

It lives in the light ``flywheel-events`` distribution
(clients/python/flywheel_events/producer.py), which apps install without
flywheel; these are the very same objects, not a copy.
"""

from __future__ import annotations

from flywheel_events.producer import (
    DEFAULT_BOOTSTRAP_SERVERS,
    DEFAULT_FEEDBACK_TOPIC,
    DEFAULT_TRACES_TOPIC,
    EventProducer,
    KafkaSettings,
    encode_event,
    now_rfc3339,
)

__all__ = [
    "DEFAULT_BOOTSTRAP_SERVERS",
    "DEFAULT_FEEDBACK_TOPIC",
    "DEFAULT_TRACES_TOPIC",
    "EventProducer",
    "KafkaSettings",
    "encode_event",
    "now_rfc3339",
]
