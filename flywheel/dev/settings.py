"""Configuration sections of development and the demo: ``[simulate]`` and ``[demo]``."""

from __future__ import annotations

import dataclasses

from core.settings import setting


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
class DemoConfig:
    """The whole loop on this machine (`flywheel demo`)."""

    rounds: int = setting(3, "nightly rounds to run in compressed time (each followed by a day of traffic)")
    out: str = setting(
        "demo", "folder for everything the demo writes (lake, registry, runs, report)", path=True
    )
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
