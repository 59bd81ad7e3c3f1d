"""Errors of the curation stage (both terminal: rerunning without a change will not help)."""

from __future__ import annotations

from core.errors import ExitCode, TerminalError


class CurationError(TerminalError):
    """The raw lake or the options cannot make a snapshot (no data, a bad --as-of)."""


class DataQualityError(TerminalError):
    """A critical data-quality expectation failed; no snapshot was published.

    ``failures`` lists ``(check, why)``; ``report`` is the folder with the Data Docs
    and summary of the failed round, kept for the reviewer.
    """

    exit_code = ExitCode.DATA_QUALITY

    def __init__(self, failures: list[tuple[str, str]], report: str | None = None) -> None:
        self.failures = list(failures)
        self.report = report
        lines = "\n".join(f"  - {name}: {why}" for name, why in self.failures)
        where = f"; the report is in {report}" if report else ""
        super().__init__(
            f"{len(self.failures)} critical data-quality check(s) failed, no snapshot was published{where}:\n"
            f"{lines}",
            hint="fix the raw data or its producer, or (if the data is right) move the check out of "
            "curation.critical_checks or loosen its threshold in [curation]",
        )
