"""Values as a reader wants them: numbers, intervals, JSON and YAML as short text.

Nothing here makes markup; the templates escape what these functions return.
"""

from __future__ import annotations

import math
import re
from typing import Any

import yaml

_FLOAT_RE = re.compile(r"^[+-]?(\d+\.\d*|\.\d+|\d+(\.\d*)?[eE][+-]?\d+|nan|inf)$", re.IGNORECASE)


def slug(text: str) -> str:
    """`text` as an HTML id fragment."""
    return re.sub(r"[^A-Za-z0-9_-]+", "-", str(text)).strip("-") or "x"


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def fmt_number(x: float) -> str:
    """A number as a reader wants it: integers whole, fractions to three places."""
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return str(x)
    if math.isnan(x):
        return "—"
    if math.isinf(x):
        return "∞" if x > 0 else "−∞"
    if x == int(x) and abs(x) < 1e15:
        return str(int(x))
    a = abs(x)
    if a >= 1000:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 0.01:
        return f"{x:.3f}".rstrip("0").rstrip(".")
    return f"{x:.2e}"


def looks_numeric(text: str) -> bool:
    """Whether a CSV cell holds an integer or a float."""
    return bool(re.match(r"^[+-]?\d+$", text) or _FLOAT_RE.match(text))


def fmt_value(value: Any) -> str:
    """Any JSON or CSV value as short text."""
    if value is None:
        return "—"
    if isinstance(value, str):
        return fmt_number(float(value)) if _FLOAT_RE.match(value.strip()) else value
    if is_number(value) or isinstance(value, bool):
        return fmt_number(value)
    if isinstance(value, (dict, list, tuple)) and not value:
        return "none"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {fmt_value(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(fmt_value(v) for v in value)
    return str(value)


def fmt_percent(value: Any) -> str | None:
    """A share of 1 as a percentage with the digits that matter (24.7 %, 0.83 %, 0.0083 %); None: no number."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(x):
        return "—"
    pct = 100 * x
    if pct == 0 or abs(pct) >= 10:
        return f"{pct:.0f} %" if pct == int(pct) or abs(pct) >= 10 else f"{pct:.1f} %"
    if abs(pct) >= 1:
        return f"{pct:.1f} %"
    return f"{pct:.2g} %"


def truthy(value: Any) -> bool:
    return str(value).strip().lower() in ("true", "1", "yes", "y")


def dice_text(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def interval(ci: Any) -> tuple[float, float] | None:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(is_number(v) for v in ci):
        return float(ci[0]), float(ci[1])
    return None


def plain(value: Any) -> Any:
    """Config and params as plain YAML-able types (Snakemake passes dict subclasses)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def as_yaml(value: Any) -> str:
    return yaml.safe_dump(plain(value), sort_keys=False, default_flow_style=None, width=100, allow_unicode=True)


def size_text(n_bytes: Any) -> str:
    if not is_number(n_bytes):
        return str(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if n_bytes < 1000 or unit == "GB":
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1000
    return str(n_bytes)


def flatten(obj: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """(dotted key, leaf value) of a nested JSON object."""
    if isinstance(obj, dict) and obj:
        out = []
        for k, v in obj.items():
            out += flatten(v, f"{prefix}.{k}" if prefix else str(k))
        return out
    if isinstance(obj, list) and any(isinstance(v, (dict, list)) for v in obj):
        out = []
        for i, v in enumerate(obj):
            out += flatten(v, f"{prefix}[{i}]")
        return out
    return [(prefix, obj)]


def find_key(obj: Any, keys: tuple[str, ...]) -> Any:
    """The first non-empty value stored under one of `keys`, searching nested objects."""
    if isinstance(obj, dict):
        for k in keys:
            if obj.get(k) not in (None, "", [], {}):
                return obj[k]
        for v in obj.values():
            found = find_key(v, keys)
            if found is not None:
                return found
    return None


def next_steps_from_markdown(text: str) -> list[str]:
    """The numbered items under the "What to try next" heading of checklist.md, as plain text."""
    steps, inside = [], False
    for line in text.splitlines():
        if line.startswith("#"):
            inside = "next" in line.lower()
            continue
        m = re.match(r"^\s*\d+[.)]\s+(.*)$", line)
        if inside and m:
            steps.append(re.sub(r"(\*\*|`)", "", m.group(1)).strip())
        elif inside and steps and line.strip() and not line.startswith((" ", "\t")):
            break
    return steps
