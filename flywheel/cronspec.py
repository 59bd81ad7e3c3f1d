"""Cron expressions for the scheduler: crontab's five fields, or six with seconds first.

Six fields exist for tests and demos, where waiting a minute for a fire is too slow.

The day-of-week field means what it means in crontab and in a Kubernetes CronJob:
0 and 7 are Sunday, 1 is Monday ... 6 is Saturday, names ``sun``..``sat``, with ranges
(``1-5``), lists (``1,3,5``) and steps (``*/2``, ``1-5/2``). APScheduler 3 numbers
weekdays from Monday = 0, so :func:`crontab_weekdays` rewrites the field as the
names of the days it selects before APScheduler sees it. Crontab fires when *either*
a restricted day of the month or a restricted day of the week matches, APScheduler only
when both do; a cron restricting both is refused rather than read differently.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


def _day(token: str) -> int:
    low = token.strip().lower()
    if low in _NAMES:
        return _NAMES.index(low)
    if low.isdigit() and 0 <= int(low) <= 7:
        return int(low)
    raise ValueError(f"day of week {token!r} is not 0-7 (0 and 7 = Sunday) or a name sun..sat")


def crontab_weekdays(field: str) -> str:
    """A crontab day-of-week field as APScheduler's comma-separated day names (``*`` stays ``*``).

    >>> crontab_weekdays("0"), crontab_weekdays("1-5"), crontab_weekdays("5-7")
    ('sun', 'mon,tue,wed,thu,fri', 'sun,fri,sat')
    """
    if field.strip() == "*":
        return "*"
    days: set[int] = set()
    for part in field.split(","):
        part = part.strip()
        if not part:
            raise ValueError(f"day of week {field!r} has an empty list item")
        rng, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"step {step_text!r} in day of week {field!r} is not a positive integer")
            step = int(step_text)
        if rng == "*":
            first, last = 0, 6
        elif "-" in rng:
            lo, hi = rng.split("-", 1)
            first, last = _day(lo), _day(hi)
            if first == 7:
                first = 0
            if last < first:
                raise ValueError(
                    f"range {rng!r} in day of week {field!r} runs backwards (write e.g. 5-7 for Friday to Sunday)"
                )
        else:
            first = _day(rng)
            last = 6 if step_text else first
        days.update(d % 7 for d in range(first, last + 1, step))
    return ",".join(_NAMES[d] for d in sorted(days))


def cron_trigger(expr: str, timezone: str = "UTC") -> Any:
    """An APScheduler ``CronTrigger`` for ``expr``; raises ValueError on bad syntax."""
    from apscheduler.triggers.cron import CronTrigger

    fields = expr.split()
    if len(fields) == 5:
        second = "0"
        minute, hour, day, month, dow = fields
    elif len(fields) == 6:
        second, minute, hour, day, month, dow = fields
    else:
        raise ValueError(
            f"expected 5 fields (minute hour day month weekday) or 6 (seconds first), got {len(fields)}"
        )
    if day not in ("*", "?") and dow not in ("*", "?"):
        raise ValueError(
            f"both day of month ({day!r}) and day of week ({dow!r}) are restricted: crontab fires when "
            "either matches, the scheduler only when both do; restrict one of them and leave the other '*'"
        )
    return CronTrigger(
        second=second,
        minute=minute,
        hour=hour,
        day=day if day != "?" else "*",
        month=month,
        day_of_week=crontab_weekdays(dow if dow != "?" else "*"),
        timezone=timezone,
    )


def next_fires(
    expr: str, timezone: str = "UTC", count: int = 5, after: datetime | None = None
) -> list[datetime]:
    """The next ``count`` fire times of ``expr`` after ``after`` (default: now), in its time zone."""
    trigger = cron_trigger(expr, timezone)
    now = after or datetime.now(trigger.timezone)
    if now.tzinfo is None:
        raise ValueError("after must carry a time zone")
    out: list[datetime] = []
    previous = None
    while len(out) < count:
        fire = trigger.get_next_fire_time(previous, now)
        if fire is None:
            break
        out.append(fire)
        previous = fire
        now = fire
    return out


def cron_problem(expr: str, timezone: str = "UTC") -> str | None:
    """A readable problem with ``expr``, or None when the scheduler can use it."""
    try:
        cron_trigger(expr, timezone)
    except Exception as exc:  # APScheduler raises ValueError, pytz/zoneinfo raise their own
        return (
            f"cron {expr!r} in time zone {timezone!r} is not usable: {exc} (e.g. '0 2 * * *' = 02:00 daily)"
        )
    return None
