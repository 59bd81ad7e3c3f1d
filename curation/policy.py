"""Pure decisions of the curation stage: which model versions are on-policy, and KTO balance."""

from __future__ import annotations

from typing import Any

# KTO's class balance is core.kto's, the one rule curation and training share.
from core.kto import Balance, balance

__all__ = ["Balance", "balance", "on_policy_versions", "with_aliases"]


def on_policy_versions(history: list[Any], keep_last: int) -> tuple[list[str] | None, str]:
    """The last ``keep_last`` distinct champions (promotions and rollbacks), newest first.

    ``None`` means "keep every version", with the reason: no champion history yet,
    or ``keep_last`` is 0.
    """
    if keep_last == 0:
        return None, "curation.keep_last_champions = 0: every model version kept"
    champions = [e.version for e in history if e.action in ("promote", "rollback")]
    if not champions:
        return None, "the registry has no champion history: every model version kept"
    kept: list[str] = []
    for version in reversed(champions):
        if version not in kept:
            kept.append(version)
        if len(kept) == keep_last:
            break
    return kept, f"versions of the last {keep_last} champion(s) kept: {', '.join(kept)}"


def with_aliases(versions: list[str] | None, aliases: dict[str, str]) -> list[str] | None:
    """``versions`` plus every served name (``registry.aliases``) that stands for one of them."""
    if versions is None:
        return None
    return versions + sorted(name for name, version in aliases.items() if version in versions)
