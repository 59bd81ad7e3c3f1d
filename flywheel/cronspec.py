"""Cron expressions for the scheduler: crontab's five fields, or six with seconds first.

Six fields exist for tests and demos, where waiting a minute for a fire is too slow.
"""

from __future__ import annotations

from typing import Any


def cron_trigger(expr: str, timezone: str = "UTC") -> Any:
    """An APScheduler ``CronTrigger`` for ``expr``; raises ValueError on bad syntax."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) == 5:
        return CronTrigger.from_crontab(expr, timezone=timezone)
    if len(fields) == 6:
        second, minute, hour, day, month, dow = fields
        return CronTrigger(
            second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=timezone
        )
    raise ValueError(
        f"expected 5 fields (minute hour day month weekday) or 6 (seconds first), got {len(fields)}"
    )


def cron_problem(expr: str, timezone: str = "UTC") -> str | None:
    """A readable problem with ``expr``, or None when the scheduler can use it."""
    try:
        cron_trigger(expr, timezone)
    except Exception as exc:  # APScheduler raises ValueError, pytz/zoneinfo raise their own
        return (
            f"cron {expr!r} in time zone {timezone!r} is not usable: {exc} (e.g. '0 2 * * *' = 02:00 daily)"
        )
    return None
