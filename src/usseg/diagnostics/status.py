"""Check statuses and the record every check returns.

A check's status is one of PASS, WARN or FAIL; the checklist's overall status
is the worst of them. Thresholds come from config.yaml's `diagnostics:`
section and are compared here, in one place, so that "below" and "above"
mean the same thing in every check.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
_RANK = {PASS: 0, WARN: 1, FAIL: 2}


def worst(statuses) -> str:
    """The most severe of `statuses` (PASS when there are none)."""
    out = PASS
    for s in statuses:
        if _RANK[s] > _RANK[out]:
            out = s
    return out


def status_below(value: float, thresholds: dict) -> str:
    """FAIL below thresholds['fail_below'], WARN below thresholds['warn_below'], else PASS."""
    if value < thresholds["fail_below"]:
        return FAIL
    if value < thresholds["warn_below"]:
        return WARN
    return PASS


def status_above(value: float, thresholds: dict) -> str:
    """FAIL above thresholds['fail_above'], WARN above thresholds['warn_above'], else PASS."""
    if value > thresholds["fail_above"]:
        return FAIL
    if value > thresholds["warn_above"]:
        return WARN
    return PASS


@dataclass
class CheckResult:
    """One row of the checklist, plus the numbers behind it (`details`, not in checklist.json)."""

    id: str
    title: str
    status: str
    value: Any
    threshold: Any
    reason: str
    details: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.status not in _RANK:
            raise ValueError(f"status must be one of {sorted(_RANK)}, got {self.status!r}")

    def as_checklist_entry(self) -> dict:
        return {
            "id": self.id,
            "title": self.title,
            "status": self.status,
            "value": self.value,
            "threshold": self.threshold,
            "reason": self.reason,
        }
