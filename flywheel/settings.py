"""Configuration sections owned by the shared `flywheel` package."""

from __future__ import annotations

import dataclasses

from flywheel.config import setting


@dataclasses.dataclass(frozen=True)
class SimulateConfig:
    """Simulated production traffic (`flywheel simulate`)."""

    seed: int = setting(0, "random seed: the same seed sends the same traffic")
    count: int = setting(1000, "responses (traces) to simulate; feedback and malformed records come on top")
    rate: float = setting(0.0, "records sent per second; 0 = as fast as the broker takes them")
    users: int = setting(50, "distinct pseudonymous users")
    model_versions: tuple[str, ...] = setting(
        ("sim-v1", "sim-v2", "sim-v3"), "model versions serving the traffic (later ones answer better)"
    )
    feedback_share: float = setting(0.6, "share of responses that get a thumb or an edit")
    edit_share: float = setting(0.1, "share of feedback that is an edit rather than a thumb")
    flip_share: float = setting(0.05, "share of thumbs the same user later reverses")
    duplicate_share: float = setting(0.03, "share of feedback the client sends twice (same event id)")
    late_share: float = setting(0.05, "share of feedback that arrives hours after the response, at the end")
    malformed_share: float = setting(0.01, "share of records that break the contract, every kind in turn")
    start_time: str = setting("", "RFC 3339 time of the first response (empty = now)")

    def validate(self) -> list[str]:
        problems = []
        if self.count < 0 or self.users < 1 or self.rate < 0:
            problems.append("count must be >= 0, users >= 1 and rate >= 0")
        if not self.model_versions:
            problems.append("model_versions is empty")
        for name in (
            "feedback_share",
            "edit_share",
            "flip_share",
            "duplicate_share",
            "late_share",
            "malformed_share",
        ):
            if not 0.0 <= getattr(self, name) <= 1.0:
                problems.append(f"{name} must be between 0 and 1, got {getattr(self, name)}")
        if self.start_time:
            try:
                import datetime as dt

                if dt.datetime.fromisoformat(self.start_time).tzinfo is None:
                    problems.append(f"start_time {self.start_time!r} needs a UTC offset (Z or +HH:MM)")
            except ValueError:
                problems.append(f"start_time {self.start_time!r} is not RFC 3339")
        return problems


@dataclasses.dataclass(frozen=True)
class RegistryConfig:
    """The model registry."""

    status_last: int = setting(
        10, "history events `flywheel status` shows (the history itself is never trimmed)"
    )
    aliases: dict[str, str] | None = setting(  # noqa: RUF009 (None; a file's table is copied)
        None,
        "names the app serves (the model_version its traces carry) for registry versions, e.g. "
        '{"qwen-prod" = "v3"}; with those of `flywheel register --alias`, curation keeps their rows '
        "when it keeps the version",
    )

    keep_last: int = setting(
        10,
        "`flywheel gc` keeps the newest this many versions (0 = all); the champion and every former "
        "champion are always kept",
    )

    def validate(self) -> list[str]:
        problems = [
            f"aliases: {name!r} -> {version!r}: both must be non-empty, on one line"
            for name, version in (self.aliases or {}).items()
            if not name.strip() or not version.strip() or "\n" in name + version
        ]
        if self.keep_last < 0:
            problems.append(f"keep_last must be >= 0 (0 keeps every version), got {self.keep_last}")
        return problems


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


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """The whole loop on this machine (`flywheel demo`)."""

    rounds: int = setting(3, "nightly rounds to run in compressed time (each followed by a day of traffic)")
    out: str = setting("demo", "folder for everything the demo writes (lake, registry, runs, report)")
    requests_per_round: int = setting(1000, "responses served to simulated users per simulated day")
    seed: int = setting(0, "random seed of the simulated users")
    broker_port: int = setting(0, "port of the embedded broker (0 = any free port)")
    partitions: int = setting(2, "partitions per topic on the embedded broker")
    prompts: str = setting(
        "all", "which of the tiny world's 200 prompts the simulated users ask: all | train (160 of them)"
    )
    eval_fraction: float = setting(
        0.5,
        "curation.eval_fraction of the demo's rounds: with so few distinct prompts, a prompt-disjoint "
        "held-out slice needs half the sessions to reach the gate's min_evidence",
    )

    def validate(self) -> list[str]:
        problems = []
        if self.prompts not in ("all", "train"):
            problems.append(f"prompts must be all or train, got {self.prompts!r}")
        if not 0.0 < self.eval_fraction < 1.0:
            problems.append(f"eval_fraction must be in (0, 1), got {self.eval_fraction}")
        if self.rounds < 0:
            problems.append(f"rounds must be >= 0 (0 serves one day of traffic only), got {self.rounds}")
        if self.requests_per_round < 20:
            problems.append(f"requests_per_round must be >= 20, got {self.requests_per_round}")
        return problems
