"""Run configuration: the run's full config, defaults filled in, as YAML."""

from __future__ import annotations

from usseg.report.formatting import as_yaml

ID, TITLE, HEADING, TEMPLATE = "config", "Run configuration", "Run configuration", "config.html"
NUMBERED = False


def build(ctx) -> dict:
    return {"yaml": as_yaml(ctx.config)}
