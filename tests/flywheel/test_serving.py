"""Serving hand-off: files a serving user can read, a stable path to the champion, and the promotion
hooks (a command and a webhook on a real loopback HTTP server), retried, never undoing the switch."""

from __future__ import annotations

import http.server
import json
import os
import stat
import threading
from pathlib import Path
from typing import ClassVar

import pytest

from core.registry import Registry
from flywheel import cli
from flywheel.nightly import run
from tests.flywheel.nightly_standins import fake_model, make_config, seed_champion, stages


@pytest.fixture
def strict_umask():
    old = os.umask(0o077)  # what a hardened container (or a library writing via tempfile) gives
    try:
        yield
    finally:
        os.umask(old)


def test_versions_are_readable_by_other_users_whatever_the_umask(tmp_path: Path, strict_umask: None) -> None:
    reg = Registry(tmp_path / "registry")
    reg.register(fake_model(tmp_path / "base", "base"), champion=True, version="v1")
    with reg.stage("v2", {"kind": "candidate"}) as folder:
        fake_model(folder, "v2")
        (folder / "adapter").mkdir()
        (folder / "adapter" / "adapter_model.safetensors").write_bytes(b"a" * 64)
    for version in ("v1", "v2"):
        root = reg.models / version
        assert stat.S_IMODE(root.stat().st_mode) == 0o755
        for path in root.rglob("*"):
            want = 0o755 if path.is_dir() else 0o644
            assert stat.S_IMODE(path.stat().st_mode) == want, path
    assert stat.S_IMODE((reg.root / "champion").stat().st_mode) == 0o644


def test_serving_current_follows_the_champion_atomically(tmp_path: Path) -> None:
    reg = Registry(tmp_path / "registry")
    reg.register(fake_model(tmp_path / "base", "base"), champion=True, version="v1")
    link = reg.root / "serving" / "current"
    assert link.is_symlink() and os.readlink(link) == "../models/v1"
    assert (link / "model.safetensors").read_bytes() == (reg.models / "v1" / "model.safetensors").read_bytes()
    with reg.stage("v2", {"kind": "candidate"}) as folder:
        fake_model(folder, "v2")
    reg.promote("v2", reason="gate passed")
    assert link.resolve() == (reg.models / "v2").resolve()
    reg.rollback(reason="regression")
    assert link.resolve() == (reg.models / "v1").resolve()
    # relative: the registry volume may be mounted elsewhere in the serving pod
    moved = tmp_path / "mounted-elsewhere"
    reg.root.rename(moved)
    assert (moved / "serving" / "current" / "config.json").is_file()
    assert not list((moved / "serving").glob(".current.*"))


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Fails the first ``fail`` POSTs with 503, then accepts; keeps every body."""

    fail = 2
    bodies: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        type(self).bodies.append(json.loads(self.rfile.read(length)))
        code = 503 if len(type(self).bodies) <= type(self).fail else 200
        self.send_response(code)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def flaky_server():
    handler = type("Handler", (_Flaky,), {"bodies": [], "fail": 2})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/promoted", handler
    finally:
        server.shutdown()
        server.server_close()


def test_nightly_posts_the_webhook_after_the_switch_retrying_until_accepted(
    tmp_path: Path, flaky_server
) -> None:
    url, handler = flaky_server
    seed_champion(tmp_path)
    config = make_config(
        tmp_path,
        **{"serving.on_promote_webhook": url, "serving.hook_backoff_s": 0.01, "serving.hook_retries": 3},
    )
    result = run(config, stages=stages(tmp_path))
    assert result.outcome == "promoted" and result.exit_code == 0
    candidate = result.record["candidate"]
    assert len(handler.bodies) == 3  # 503, 503, 200
    body = handler.bodies[-1]
    assert (body["event"], body["version"], body["previous"]) == ("promote", candidate, "base-0")
    assert body["path"] == str((tmp_path / "registry" / "models" / candidate).resolve())
    assert body["reason"].startswith("nightly ") and "win rate" in body["reason"]
    [hook] = result.record["hooks"]
    assert (hook["kind"], hook["ok"], hook["attempts"]) == ("webhook", True, 3)


def test_a_hook_failing_every_attempt_is_reported_and_never_undoes_the_switch(
    tmp_path: Path, flaky_server
) -> None:
    url, handler = flaky_server
    handler.fail = 99
    seed_champion(tmp_path)
    script = tmp_path / "hook.sh"
    script.write_text(
        '#!/bin/sh\ncat > "$0.stdin"\necho "$CHAMPION_VERSION $PREVIOUS_CHAMPION" > "$0.env"\nexit 3\n'
    )
    script.chmod(0o755)
    config = make_config(
        tmp_path,
        **{
            "serving.on_promote_command": str(script),
            "serving.on_promote_webhook": url,
            "serving.hook_backoff_s": 0.0,
            "serving.hook_retries": 1,
        },
    )
    result = run(config, stages=stages(tmp_path))
    candidate = result.record["candidate"]
    assert result.outcome == "promoted" and Registry(tmp_path / "registry").champion() == candidate
    command, webhook = result.record["hooks"]
    assert (command["ok"], command["attempts"], command["detail"]) == (False, 2, "exit 3")
    assert (webhook["ok"], webhook["attempts"], webhook["detail"]) == (False, 2, "HTTP 503")
    assert json.loads(Path(f"{script}.stdin").read_text())["version"] == candidate
    assert Path(f"{script}.env").read_text().split() == [candidate, "base-0"]


def test_cli_promote_and_rollback_run_the_hooks(tmp_path: Path, flaky_server, capsys) -> None:
    url, handler = flaky_server
    handler.fail = 0
    seed_champion(tmp_path)
    reg = Registry(tmp_path / "registry")
    with reg.stage("v2", {"kind": "candidate"}) as folder:
        fake_model(folder, "v2")
    flags = [
        f"--set=paths.registry={tmp_path / 'registry'}",
        f"--set=serving.on_promote_webhook={url}",
    ]
    assert cli.main(["promote", "v2", "--reason", "by hand", *flags]) == 0
    assert cli.main(["rollback", "--reason", "regression", *flags]) == 0
    assert [(b["event"], b["version"], b["previous"], b["reason"]) for b in handler.bodies] == [
        ("promote", "v2", "base-0", "by hand"),
        ("rollback", "base-0", "v2", "regression"),
    ]
    handler.fail = 99
    assert cli.main(["promote", "v2", "--set=serving.hook_retries=0", *flags]) == 0
    assert "webhook hook" in capsys.readouterr().err and reg.champion() == "v2"
