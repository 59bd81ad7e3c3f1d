"""Configuration sections of the roof: ``[serving]``, ``[nightly]`` and ``[scheduler]``."""

from __future__ import annotations

import dataclasses

from core.settings import setting


@dataclasses.dataclass(frozen=True)
class ServingConfig:
    """The hand-off to serving: hooks run after every champion switch (flywheel.hooks)."""

    on_promote_command: str = setting(
        "",
        "command run after the champion changes, with the JSON body on stdin and CHAMPION_VERSION, "
        "CHAMPION_PATH, SERVING_PATH, PREVIOUS_CHAMPION, PROMOTE_REASON in its environment, e.g. "
        '"infra/k8s/roll-serving.sh" (split like a shell line; no shell)',
    )
    on_promote_webhook: str = setting(
        "", "URL the JSON body (version, path, previous, reason) is POSTed to after the champion changes"
    )
    hook_retries: int = setting(3, "retries of a failed hook (so 1 + this many attempts)")
    hook_backoff_s: float = setting(2.0, "wait before the first retry; doubled before each next one")
    hook_timeout_s: float = setting(60.0, "one attempt of a hook is stopped after this long")

    def validate(self) -> list[str]:
        problems = []
        url = self.on_promote_webhook
        if url and not url.startswith(("http://", "https://")):
            problems.append(f"on_promote_webhook must be an http:// or https:// URL, got {url!r}")
        if self.on_promote_command:
            import shlex

            try:
                shlex.split(self.on_promote_command)
            except ValueError as exc:
                problems.append(f"on_promote_command cannot be split like a shell line: {exc}")
        if self.hook_retries < 0 or self.hook_backoff_s < 0 or self.hook_timeout_s <= 0:
            problems.append("hook_retries and hook_backoff_s must be >= 0, hook_timeout_s > 0")
        return problems


@dataclasses.dataclass(frozen=True)
class NightlyConfig:
    """One round: curate, train, gate, promote."""

    min_train_rows: int = setting(64, "a snapshot with fewer training rows skips training")
    resume: bool = setting(True, "re-use the snapshot and candidate of an interrupted round")
    gc: bool = setting(
        False,
        "run `flywheel gc` after every round that did not fail (old versions, finished checkpoints, "
        "temporary report folders)",
    )

    def validate(self) -> list[str]:
        return [] if self.min_train_rows >= 1 else [f"min_train_rows must be >= 1, got {self.min_train_rows}"]


@dataclasses.dataclass(frozen=True)
class SchedulerConfig:
    """The always-on scheduler (`flywheel schedule`)."""

    cron: str = setting(
        "0 2 * * *", "when the nightly round runs: crontab (5 fields), or 6 with seconds first"
    )
    timezone: str = setting("UTC", "time zone the cron is read in")
    misfire_grace_hours: float = setting(6.0, "a fire missed while down still runs (once) within this")
    round_timeout_hours: float = setting(8.0, "the round's subprocess is stopped after this long")
    jobstore_url: str = setting("", "SQLAlchemy URL of the job store (default: sqlite in paths.runs)")
    metrics_host: str = setting("127.0.0.1", "address of the /metrics and /healthz endpoint")
    metrics_port: int = setting(9464, "port of the /metrics and /healthz endpoint (0 = any free, -1 = off)")
    run_on_start: bool = setting(False, "also run one round as soon as the scheduler starts")

    def validate(self) -> list[str]:
        from flywheel.cronspec import cron_problem

        problems = []
        if (p := cron_problem(self.cron, self.timezone)) is not None:
            problems.append(p)
        if self.misfire_grace_hours <= 0 or self.round_timeout_hours <= 0:
            problems.append("misfire_grace_hours and round_timeout_hours must be > 0")
        if not -1 <= self.metrics_port <= 65535:
            problems.append(f"metrics_port must be -1 (off) or 0-65535, got {self.metrics_port}")
        return problems
