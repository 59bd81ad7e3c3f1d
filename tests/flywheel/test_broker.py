"""The embedded broker: starts on loopback, creates partitioned topics, serves kafka-python, stops cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from flywheel.dev.broker import EmbeddedBroker, free_port

pytestmark = pytest.mark.broker
ROOT = Path(__file__).resolve().parents[2]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_embedded_broker_round_trip_and_clean_stop():
    with EmbeddedBroker(topics=("a.traces", "a.feedback"), partitions=3) as broker:
        assert broker.bootstrap == f"127.0.0.1:{broker.port}"
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        for i in range(30):
            producer.send("a.traces", f"m{i}".encode(), partition=i % 3)
        producer.flush()
        producer.close()
        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap, auto_offset_reset="earliest")
        assert consumer.partitions_for_topic("a.feedback") == {0, 1, 2}
        tps = [TopicPartition("a.traces", p) for p in range(3)]
        consumer.assign(tps)
        got = []
        while len(got) < 30:
            for records in consumer.poll(2000).values():
                got.extend(r.value for r in records)
        consumer.close()
        assert sorted(got) == sorted(f"m{i}".encode() for i in range(30))
        port = broker.port
    assert not _listening(port)


def test_flywheel_broker_prints_the_address_and_stops_on_sigterm():
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flywheel.cli", "broker", "--port", str(port)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = proc.stdout.readline().decode().strip()
        assert line == f"127.0.0.1:{port}"
        consumer = KafkaConsumer(bootstrap_servers=line)
        assert consumer.partitions_for_topic("llm.traces") == {0, 1, 2, 3}
        assert consumer.partitions_for_topic("llm.feedback") == {0, 1, 2, 3}
        consumer.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert not _listening(port)


def test_a_taken_port_is_a_clear_error():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        broker = EmbeddedBroker(port=port, start_timeout_s=5)
        with pytest.raises(Exception, match=str(port)):
            broker.start()
