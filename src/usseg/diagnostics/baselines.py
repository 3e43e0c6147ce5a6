"""Check 7: what others achieved on this dataset.

Low published scores are evidence that the dataset, not the model, sets the
ceiling. The configured results go to baselines.csv; the report later puts
our own results beside them.
"""

from __future__ import annotations

import pandas as pd

from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.status import PASS, WARN, CheckResult

COLUMNS = ["source", "test_set", "class", "metric", "value"]


def check_baselines(inputs: DiagnosticInputs, out_dir) -> CheckResult:
    entries = list(inputs.opt("published_baselines", []))
    table = pd.DataFrame([{c: e.get(c) for c in COLUMNS} for e in entries], columns=COLUMNS)
    table.to_csv(f"{out_dir}/baselines.csv", index=False)
    threshold = "at least one published result configured"
    if table.empty:
        return CheckResult(
            "published_baselines",
            "Published baselines",
            WARN,
            0,
            threshold,
            "no published baselines configured: look for published results on this dataset and add "
            "them under diagnostics.published_baselines, so our scores can be read against them.",
        )
    unknown = sorted(set(table["class"]) - set(inputs.class_names))
    results = "; ".join(
        f"{r['class']} {r['metric']} {r['value']:.2f} on {r['test_set']} ({r['source']})"
        for r in table.to_dict("records")
    )
    reason = f"{len(table)} published result(s): {results}."
    status = PASS
    if unknown:
        status = WARN
        reason += f" Class(es) {', '.join(unknown)} are not in dataset.classes: the report cannot compare them."
    return CheckResult(
        "published_baselines",
        "Published baselines",
        status,
        len(table),
        threshold,
        reason,
        {"baselines": table.to_dict("records")},
    )
