"""Tables as data: headers in words, rows of text, which columns are numbers. The `table` macro renders them.

A column of the run's files is shown by its words (usseg.names.column) with
its name in the header's tooltip; a share or fraction is shown as a
percentage, every other value by formatting.fmt_value.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from usseg.names import column as column_words
from usseg.report.formatting import flatten, fmt_percent, fmt_value, looks_numeric


@dataclass
class Table:
    columns: list[str]  # headers, in words
    rows: list[list[Any]]  # cell text, escaped by the template
    id: str | None = None
    numeric: set[int] = field(default_factory=set)
    row_classes: list[str] | None = None
    row_ids: list[str] | None = None
    keys: list[str] | None = None  # the columns' names in the file, shown on hover


def numeric_columns(columns: list[str], rows: list[dict]) -> set[int]:
    out = set()
    for i, c in enumerate(columns):
        values = [str(r.get(c, "")).strip() for r in rows if str(r.get(c, "")).strip()]
        if values and all(looks_numeric(v) for v in values):
            out.add(i)
    return out


def is_share(column: str) -> bool:
    """A column that holds a share of 1 (shown as a percentage)."""
    name = str(column)
    return name.endswith(("_share", "_fraction")) or name.startswith("share") or "_share_" in name


def cell(column: str, value: Any) -> str:
    if isinstance(value, str) and value.strip() in ("True", "False"):  # a CSV's boolean
        return "yes" if value.strip() == "True" else "no"
    if is_share(column):
        text = fmt_percent(value)
        if text is not None:
            return text
    return fmt_value(value)


def records_table(columns: list[str], rows: list[dict], table_id: str) -> Table:
    body = [[cell(c, r.get(c)) for c in columns] for r in rows]
    return Table([column_words(c) if c else "" for c in columns], body, table_id, numeric_columns(columns, rows),
                 keys=list(columns))


def json_table(obj: Any, table_id: str) -> Table:
    """A JSON object as the most natural table: records, a matrix, columns or key/value pairs."""
    if isinstance(obj, list) and obj and all(isinstance(r, dict) for r in obj):
        columns = list(dict.fromkeys(k for r in obj for k in r))
        return records_table(columns, obj, table_id)
    if isinstance(obj, dict) and obj and all(isinstance(v, dict) for v in obj.values()):
        columns = list(dict.fromkeys(k for v in obj.values() for k in v))
        rows = [{"": k, **v} for k, v in obj.items()]
        return records_table(["", *columns], rows, table_id)
    if isinstance(obj, dict):
        lists = {k: v for k, v in obj.items() if isinstance(v, list)}
        lengths = {len(v) for v in lists.values()}
        if len(lists) >= 2 and len(lists) == len(obj) and len(lengths) == 1 and not any(
                isinstance(x, (dict, list)) for v in lists.values() for x in v):
            n = lengths.pop()
            rows = [{k: obj[k][i] for k in obj} for i in range(n)]
            return records_table(list(obj), rows, table_id)
        rows = [{"key": key_words(k), "value": v} for k, v in flatten(obj)]
        return records_table(["key", "value"], rows, table_id)
    return records_table(["value"], [{"value": obj}], table_id)


def key_words(dotted: str) -> str:
    """A flattened JSON key ("near_duplicates.max_hamming") in words, each part by usseg.names.column."""
    return " · ".join(column_words(part) for part in str(dotted).split("."))
