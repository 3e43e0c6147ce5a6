"""Check 7: what others achieved on this dataset.

Low published scores are evidence that the dataset, not the model, sets the
ceiling - but only if they were measured on the same data. Every configured
result names the data it was measured on (`measured_on`); it is comparable
only when that equals `diagnostics.dataset_id`, the name of the data this
run reads. On the generated demo no published result is comparable. The
check PASSes only when at least one comparable result is configured, and
WARNs otherwise: a number measured elsewhere cannot bound this dataset.
The configured results go to baselines.csv; the report later puts our own
results beside them, marked "not comparable" where they are.
"""

from __future__ import annotations

import pandas as pd

from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.diagnostics.status import PASS, WARN, CheckResult

COLUMNS = ["source", "test_set", "class", "metric", "value", "measured_on", "comparable", "note"]
DEMO_ID = "the generated demo dataset"


def this_dataset(inputs: DiagnosticInputs, data_is_demo: bool) -> str:
    """The name published results must have been measured on to be comparable with this run."""
    return DEMO_ID if data_is_demo else str(inputs.opt("dataset_id", ""))


def baseline_table(entries, dataset: str, data_is_demo: bool) -> pd.DataFrame:
    rows = []
    for e in entries:
        row = {c: e.get(c) for c in COLUMNS[:6]}
        row["comparable"] = (not data_is_demo) and bool(dataset) and row["measured_on"] == dataset
        row["note"] = e.get("note", "") or ""
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def check_baselines(inputs: DiagnosticInputs, outputs: DiagnosticsOutputs, data_is_demo: bool = False) -> CheckResult:
    dataset = this_dataset(inputs, data_is_demo)
    table = baseline_table(list(inputs.opt("published_baselines", [])), dataset, data_is_demo)
    table.to_csv(outputs.baselines, index=False)
    threshold = "PASS when at least one published result was measured on this data (measured_on = dataset_id)"
    n_comparable = int(table["comparable"].sum()) if len(table) else 0
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
    unknown = sorted(set(table.loc[table["comparable"], "class"]) - set(inputs.class_names))

    def describe(r) -> str:
        text = f"{r['class']} {r['metric']} {r['value']:.2f} on {r['test_set']} ({r['source']}; measured on {r['measured_on']})"
        return text if r["comparable"] else text + " - not comparable"

    results = "; ".join(describe(r) for r in table.to_dict("records"))
    if n_comparable:
        status = PASS
        reason = f"{n_comparable} of {len(table)} published result(s) measured on {dataset}: {results}."
    else:
        status = WARN
        where = "this run diagnoses the generated demo" if data_is_demo else f"this run diagnoses {dataset or 'an unnamed dataset (set diagnostics.dataset_id)'}"
        reason = (
            f"none of {len(table)} published result(s) was measured on this data ({where}), so none bounds "
            f"what this dataset allows: {results}."
        )
    if unknown:
        status = WARN
        reason += f" Class(es) {', '.join(unknown)} are not in dataset.classes: the report cannot compare them."
    return CheckResult(
        "published_baselines",
        "Published baselines",
        status,
        n_comparable,
        threshold,
        reason,
        {"baselines": table.to_dict("records"), "dataset": dataset},
    )
