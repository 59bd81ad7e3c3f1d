"""Structured logging: one JSON object per line in production, readable text at a terminal."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

# Attributes every LogRecord has; anything else was passed through `extra=` and is structured data.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        base = f"{self.formatTime(record, '%H:%M:%S')} {record.levelname:<7} {record.name}: {record.getMessage()}"
        extras = {k: v for k, v in vars(record).items() if k not in _STANDARD and not k.startswith("_")}
        if extras:
            base += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        if record.exc_info:
            base += "\n" + self.formatException(record.exc_info)
        return base


# Whether progress may draw bars: only text logs on a terminal; whether logs are JSON (setup_logging).
_bars = False
_json = False
# Libraries that attach a stderr handler of their own; adopt_libraries routes them to ours.
_LIBRARIES = ("transformers", "datasets", "trl", "peft", "accelerate", "huggingface_hub")


def progress_bars() -> bool:
    """Draw progress bars (stderr on a terminal, text logs); otherwise progress is log lines."""
    return _bars


def json_logs() -> bool:
    """Whether stderr carries JSON lines only (``--log-format json``)."""
    return _json


def setup_logging(level: str | None = None, fmt: str | None = None) -> None:
    """Configure the root logger once: level and format from flags, else FLYWHEEL_LOG_LEVEL / _FORMAT.

    Everything but a command's result goes to stderr through it: ``warnings.warn`` (as logger
    ``py.warnings``) and, after :func:`adopt_libraries`, the ML libraries' own loggers. Progress
    bars are drawn only for text logs on a terminal; elsewhere progress comes as log lines.
    """
    global _bars, _json
    level = (level or os.environ.get("FLYWHEEL_LOG_LEVEL") or "INFO").upper()
    fmt = fmt or os.environ.get("FLYWHEEL_LOG_FORMAT") or ("text" if sys.stderr.isatty() else "json")
    _bars = fmt == "text" and sys.stderr.isatty()
    _json = fmt == "json"
    if not _bars:
        # read when huggingface_hub / datasets are imported (transformers follows the hub's setting)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        os.environ.setdefault("HF_DATASETS_DISABLE_PROGRESS_BARS", "1")
    logging.captureWarnings(True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Third-party loggers that are chatty at INFO.
    for noisy in ("kafka", "urllib3", "great_expectations", "apscheduler.executors", "httpx"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def adopt_libraries() -> None:
    """Route the Hugging Face libraries' loggers through the root handler (so JSON logs stay JSON)
    and turn their progress bars off unless bars are drawn. Imports transformers and datasets:
    call it only for commands that load them anyway (train, eval, nightly)."""
    import datasets.utils.logging as dl
    import transformers.utils.logging as tl

    tl.disable_default_handler()
    for name in _LIBRARIES:
        lib = logging.getLogger(name)
        lib.handlers[:] = [h for h in lib.handlers if not isinstance(h, logging.StreamHandler)]
        lib.propagate = True
    if not _bars:
        import huggingface_hub.utils as hub

        hub.disable_progress_bars()
        tl.disable_progress_bar()
        dl.disable_progress_bar()
