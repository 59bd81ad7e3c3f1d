"""Serving hand-off: tell the serving tier the champion changed.

After every switch of the champion (``nightly``'s promotion, ``flywheel promote``, ``rollback``,
``register --champion``) two optional hooks run, each retried with exponential backoff:

- ``serving.on_promote_command``: a command (split like a shell line, no shell: use
  ``sh -c '...'`` for pipes) run with the JSON body on stdin and ``CHAMPION_VERSION``,
  ``CHAMPION_PATH``, ``SERVING_PATH``, ``PREVIOUS_CHAMPION``, ``PROMOTE_REASON``,
  ``PROMOTE_ACTION`` in its environment; exit 0 is success.
- ``serving.on_promote_webhook``: an HTTP(S) URL the JSON body is POSTed to; a 2xx is success.

The body: ``{"event", "version", "path", "serving_path", "previous", "reason", "registry", "ts"}``.
The switch is done before a hook runs and is never undone by one: a hook that fails every attempt
is logged and reported (the nightly record's ``hooks``, the command's stderr), and the serving
tier can always read the champion from ``<registry>/serving/current``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shlex
import subprocess
import time
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any

from core.registry import Registry

if TYPE_CHECKING:
    from flywheel.config import Config

log = logging.getLogger("flywheel.hooks")


@dataclasses.dataclass
class HookResult:
    """One hook's outcome after all its attempts."""

    kind: str  # command | webhook
    target: str
    ok: bool
    attempts: int
    detail: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def body(registry: Registry, version: str, previous: str | None, reason: str, action: str) -> dict[str, Any]:
    return {
        "event": action,
        "version": version,
        "path": str((registry.models / version).resolve()),
        "serving_path": str(registry.serving_path.absolute()),
        "previous": previous,
        "reason": reason,
        "registry": str(registry.root.resolve()),
        "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _command_once(argv: list[str], payload: dict[str, Any], timeout: float) -> str | None:
    """None on success, else why it failed."""
    env = {
        **os.environ,
        "CHAMPION_VERSION": payload["version"],
        "CHAMPION_PATH": payload["path"],
        "SERVING_PATH": payload["serving_path"],
        "PREVIOUS_CHAMPION": payload["previous"] or "",
        "PROMOTE_REASON": payload["reason"],
        "PROMOTE_ACTION": payload["event"],
    }
    try:
        done = subprocess.run(
            argv,
            input=json.dumps(payload).encode(),
            env=env,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{type(exc).__name__}: {exc}"
    if done.returncode != 0:
        err = done.stderr.decode(errors="replace").strip()[-300:]
        return f"exit {done.returncode}" + (f": {err}" if err else "")
    return None


def _webhook_once(url: str, payload: dict[str, Any], timeout: float) -> str | None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json", "User-Agent": "flywheel-promote-hook"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
    return None if 200 <= status < 300 else f"HTTP {status}"


def _with_retries(kind: str, target: str, once: Any, serving: Any) -> HookResult:
    started = time.monotonic()
    attempts = 1 + serving.hook_retries
    problem: str | None = None
    for attempt in range(1, attempts + 1):
        problem = once()
        if problem is None:
            log.info("promote hook %s %s: ok (attempt %d)", kind, target, attempt)
            return HookResult(kind, target, True, attempt, "ok", round(time.monotonic() - started, 3))
        log.warning(
            "promote hook %s %s: attempt %d of %d failed: %s", kind, target, attempt, attempts, problem
        )
        if attempt < attempts:
            time.sleep(serving.hook_backoff_s * 2 ** (attempt - 1))
    log.error(
        "promote hook %s %s failed %d times (%s); the champion switch stands", kind, target, attempts, problem
    )
    return HookResult(kind, target, False, attempts, str(problem), round(time.monotonic() - started, 3))


def on_promote(
    config: Config, version: str, previous: str | None, reason: str, action: str = "promote"
) -> list[HookResult]:
    """Run the configured hooks for a champion switch that has already happened."""
    serving = config.serving
    if not serving.on_promote_command and not serving.on_promote_webhook:
        return []
    registry = Registry.from_config(config)
    payload = body(registry, version, previous, reason, action)
    results = []
    if serving.on_promote_command:
        argv = shlex.split(serving.on_promote_command)
        results.append(
            _with_retries(
                "command",
                serving.on_promote_command,
                lambda: _command_once(argv, payload, serving.hook_timeout_s),
                serving,
            )
        )
    if serving.on_promote_webhook:
        url = serving.on_promote_webhook
        results.append(
            _with_retries(
                "webhook", url, lambda: _webhook_once(url, payload, serving.hook_timeout_s), serving
            )
        )
    return results
