"""Alert severities and statuses: the one definition every layer uses.

Pure (no Django): the models, the workflow, the sink's SQL, the detectors' messages,
the OpenAPI enums and the dashboard all read these names from here.
"""

from __future__ import annotations

INFO, YELLOW, RED = "info", "yellow", "red"
#: Lowest first: a rank comparison is an index comparison.
SEVERITIES = (INFO, YELLOW, RED)

OPEN, ACKNOWLEDGED, SNOOZED, ESCALATED, RESOLVED = (
    "open", "acknowledged", "snoozed", "escalated", "resolved",
)
STATUSES = (OPEN, ACKNOWLEDGED, SNOOZED, ESCALATED, RESOLVED)
#: Statuses that want attention now. A snoozed alert joins them once its snooze ends
#: (``AlertQuerySet.active``), so "active" never depends on a job waking it up.
ATTENTION = (OPEN, ACKNOWLEDGED, ESCALATED)
#: Statuses a clinician set the alert aside with: a rise in severity re-opens them.
SET_ASIDE = (ACKNOWLEDGED, SNOOZED, RESOLVED)
#: A resolving clinician's verdict on an alert (the feedback loop reads them).
ACTIONABLE, NOT_ACTIONABLE, UNSURE = "actionable", "not_actionable", "unsure"
VERDICTS = (ACTIONABLE, NOT_ACTIONABLE, UNSURE)
#: What a status filter (API, dashboard) accepts besides one status.
ACTIVE, ALL = "active", "all"
STATUS_FILTERS = (ACTIVE, *STATUSES, ALL)


def severity_rank(severity: str) -> int:
    """0 for info up to 2 for red; a ValueError names an unknown severity."""
    try:
        return SEVERITIES.index(severity)
    except ValueError:
        raise ValueError(f"unknown severity {severity!r}; use one of {', '.join(SEVERITIES)}") from None


def sql_list(values: tuple[str, ...]) -> str:
    """A SQL list of these constant names, for the sink's hand-written SQL."""
    return ", ".join(f"'{v}'" for v in values)
