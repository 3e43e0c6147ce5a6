"""Check 7: what others achieved on this dataset.

Low published scores are evidence that the dataset, not the model, sets the
ceiling - but only if they were measured on the same data, and a name proves
nothing: a dataset description left at its default names the Kaggle data
whatever folder data_root points at. So a configured result is comparable
only when this run's data is shown to be the data it was measured on:

- an entry with a `fingerprint` (the sha256 of a dataset's file list, as
  `data_fingerprint` computes it and this check reports it for the data at
  hand) is comparable when it equals this data's fingerprint: a lab records
  the fingerprint of its own data beside its own published numbers;
- an entry measured on a reference dataset whose facts usseg records
  (REFERENCE_DATASETS: the Kaggle abdominal_US counts, names and labeled
  frames per subject, checked against the manifest; usseg holds no copy of
  its files to hash) is comparable when every fact holds;
- anything else, and anything on the generated demo, is not comparable.

The check PASSes only when at least one comparable result is configured, and
WARNs otherwise: a number measured elsewhere cannot bound this dataset. The
configured results go to baselines.csv; the report later puts our own
results beside them, marked "not comparable" where they are.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import pandas as pd

from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.diagnostics.status import PASS, WARN, CheckResult

COLUMNS = ["source", "test_set", "class", "metric", "value", "measured_on", "comparable", "note"]
DEMO_ID = "the generated demo dataset"


@dataclass(frozen=True)
class ReferenceFacts:
    """What is known of a reference dataset, to be checked against a manifest and its issues table.

    images: (modality, original split) -> (images, their extension); subjects: -> distinct subjects;
    labeled: -> images with a mask; labeled_per_subject: modality -> subject -> labeled images;
    orphan_annotations: (modality, original split) -> masks without an image.
    """

    images: dict = field(default_factory=dict)
    subjects: dict = field(default_factory=dict)
    labeled: dict = field(default_factory=dict)
    labeled_per_subject: dict = field(default_factory=dict)
    orphan_annotations: dict = field(default_factory=dict)


# The Kaggle dataset the article and the configured results were measured on
# ("US simulation & segmentation", ignaciorlando/ussimandsegm; Vitale et al. 2020).
KAGGLE_ABDOMINAL_US = "abdominal_US (Kaggle, Vitale et al. 2020)"
REFERENCE_DATASETS = {
    KAGGLE_ABDOMINAL_US: ReferenceFacts(
        images={("AUS", "train"): (633, ".png"), ("AUS", "test"): (293, ".png"),
                ("RUS", "train"): (404, ".jpg"), ("RUS", "test"): (213, ".jpg")},
        subjects={("AUS", "train"): 9, ("AUS", "test"): 4},
        labeled={("RUS", "train"): 0, ("RUS", "test"): 60},
        labeled_per_subject={"RUS": {"h": 26, "a": 16, "g": 10, "b": 8}},
        orphan_annotations={("RUS", "test"): 1},
    ),
}


def data_fingerprint(images: pd.DataFrame) -> str:
    """sha256 over the manifest's sorted (image path, image sha256, mask path, mask sha256) lines: the data at
    hand, by content. Record it beside a result measured on this data (published_baselines[].fingerprint)."""
    lines = sorted(
        f"{r.image_path}\t{r.sha256}\t{r.mask_path}\t{r.mask_sha256}\n"
        for r in images[["image_path", "sha256", "mask_path", "mask_sha256"]].itertuples(index=False)
    )
    return hashlib.sha256("".join(lines).encode("utf-8", errors="backslashreplace")).hexdigest()


def reference_mismatches(inputs: DiagnosticInputs, facts: ReferenceFacts) -> list[str]:
    """The facts of a reference dataset that this run's manifest (and issues table) contradicts."""
    images = inputs.images
    out = []
    for (mod, split), (count, ext) in facts.images.items():
        rows = images[(images["modality"] == mod) & (images["orig_split"] == split)]
        exts = Counter(PurePosixPath(str(p)).suffix.lower() for p in rows["image_path"])
        if len(rows) != count or set(exts) - {ext}:
            found = ", ".join(f"{n} {e or '(none)'}" for e, n in sorted(exts.items())) or "none"
            out.append(f"{mod}/{split}: {len(rows)} images ({found}), the reference {count} {ext}")
    for (mod, split), count in facts.subjects.items():
        n = images[(images["modality"] == mod) & (images["orig_split"] == split)]["subject_id"].nunique()
        if n != count:
            out.append(f"{mod}/{split}: {n} subjects, the reference {count}")
    for (mod, split), count in facts.labeled.items():
        n = int(images[(images["modality"] == mod) & (images["orig_split"] == split)]["has_mask"].sum())
        if n != count:
            out.append(f"{mod}/{split}: {n} labeled images, the reference {count}")
    for mod, expected in facts.labeled_per_subject.items():
        rows = images[(images["modality"] == mod) & images["has_mask"]]
        found = {str(k): int(v) for k, v in rows.groupby("subject_id").size().items()}
        if found != expected:
            shown = ", ".join(f"{k} {v}" for k, v in sorted(found.items(), key=lambda kv: -kv[1])) or "none"
            want = ", ".join(f"{k} {v}" for k, v in expected.items())
            out.append(f"{mod} labeled frames per subject: {shown}; the reference {want}")
    for (mod, split), count in facts.orphan_annotations.items():
        n = 0
        for path, reason in zip(inputs.issues["path"], inputs.issues["reason"]):
            place = inputs.dataset.locate(str(path))
            if reason == "orphan_annotation" and place is not None and place[0] == mod and place[2] == split:
                n += 1
        if n != count:
            out.append(f"{mod}/{split}: {n} masks without an image, the reference {count}")
    return out


@dataclass
class Comparability:
    """Whether results measured on a named dataset are comparable with this run, and why."""

    fingerprint: str
    data_is_demo: bool
    mismatches: dict = field(default_factory=dict)  # reference name -> contradicted facts ([] = it is that data)

    def comparable(self, entry: dict) -> bool:
        if self.data_is_demo:
            return False
        if entry.get("fingerprint"):
            return str(entry["fingerprint"]).lower() == self.fingerprint
        return self.mismatches.get(str(entry.get("measured_on")), ["unknown"]) == []

    def why_not(self, entry: dict) -> str:
        """Why an entry is not comparable, in a clause."""
        if self.data_is_demo:
            return "this run diagnoses the generated demo"
        if entry.get("fingerprint"):
            return "its fingerprint is not this data's"
        name = str(entry.get("measured_on"))
        if name in self.mismatches:
            facts = self.mismatches[name]
            return f"this data is not {name} ({'; '.join(facts[:3])}{'; ...' if len(facts) > 3 else ''})"
        return (f"usseg cannot tell that {name} is this data (give the entry the fingerprint of the data it was "
                "measured on)")


def comparability(inputs: DiagnosticInputs, data_is_demo: bool, entries) -> Comparability:
    names = {str(e.get("measured_on")) for e in entries if not e.get("fingerprint")}
    mismatches = {n: reference_mismatches(inputs, REFERENCE_DATASETS[n]) for n in names if n in REFERENCE_DATASETS}
    return Comparability(data_fingerprint(inputs.images), data_is_demo, mismatches)


def baseline_table(entries, comp: Comparability) -> pd.DataFrame:
    rows = []
    for e in entries:
        row = {c: e.get(c) for c in COLUMNS[:6]}
        row["comparable"] = comp.comparable(e)
        row["note"] = e.get("note", "") or ""
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def check_baselines(inputs: DiagnosticInputs, outputs: DiagnosticsOutputs, data_is_demo: bool = False) -> CheckResult:
    entries = list(inputs.opt("published_baselines", []))
    comp = comparability(inputs, data_is_demo, entries)
    table = baseline_table(entries, comp)
    table.to_csv(outputs.baselines, index=False)
    threshold = ("PASS when at least one published result was measured on this data, shown by its fingerprint "
                 "or by the facts of a reference dataset usseg records")
    n_comparable = int(table["comparable"].sum()) if len(table) else 0
    details = {"baselines": table.to_dict("records"), "dataset": DEMO_ID if data_is_demo else "",
               "fingerprint": comp.fingerprint}
    own = f"This data's fingerprint is {comp.fingerprint}."
    if table.empty:
        return CheckResult(
            "published_baselines",
            "Published baselines",
            WARN,
            0,
            threshold,
            "no published baselines configured: look for published results on this dataset and add "
            f"them under diagnostics.published_baselines, so our scores can be read against them. {own}",
            details,
        )
    unknown = sorted(set(table.loc[table["comparable"], "class"]) - set(inputs.class_names))

    def describe(r, e) -> str:
        text = f"{r['class']} {r['metric']} {r['value']:.2f} on {r['test_set']} ({r['source']}; measured on {r['measured_on']})"
        return text if r["comparable"] else f"{text} - not comparable: {comp.why_not(e)}"

    results = "; ".join(describe(r, e) for r, e in zip(table.to_dict("records"), entries))
    if n_comparable:
        status = PASS
        reason = f"{n_comparable} of {len(table)} published result(s) measured on this data: {results}."
    else:
        status = WARN
        where = "this run diagnoses the generated demo" if data_is_demo else "none is shown to be this data"
        reason = (
            f"none of {len(table)} published result(s) was measured on this data ({where}), so none bounds "
            f"what this dataset allows: {results}. {own}"
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
        details,
    )
