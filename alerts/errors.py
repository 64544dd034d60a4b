"""What the alert domain raises when it refuses: each error names the field and the reason,
so the API can answer 400, 403 or 409 and the dashboard can show the sentence."""

from __future__ import annotations


class WorkflowError(Exception):
    """An action the workflow refuses; ``field`` names what was wrong (or "(request)")."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class InvalidInput(WorkflowError):
    """A value out of its bounds (a snooze too long, a reason too short)."""


class NotAllowed(WorkflowError):
    """The actor may not work this alert (not a clinician, or no access to the patient)."""


class AlreadyResolved(WorkflowError):
    """A resolved alert takes no more actions (notes excepted)."""
