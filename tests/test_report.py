"""The report, built from a fake but contract-complete results/ tree.

make_fake_run() writes every file the report reads, in the layout and formats
of docs/contracts.md, with provenance records made by usseg.provenance (real hashes of
the fake files), so these tests run in a second without the workflow.
"""

from __future__ import annotations

import base64
import copy
import csv
import dataclasses
import hashlib
import html as html_lib
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image, ImageDraw

from test_diagnostics_fixtures import rule_outputs
from usseg.checks.pipeline import sanity_experiments
from usseg.config import check_config
from usseg.experiment import Experiment
from usseg.figure_text import MAX_WIDTH_PX, MIN_FONT_PX
from usseg.names import Names
from usseg.provenance import provenance_record, write_provenance
from usseg.report import ReportInputError, ReportInputs, build_report, drop_sentence

REPO = Path(__file__).resolve().parents[1]

HOSTILE = '<script>window.__pwned=1;console.error("xss")</script>'
HOSTILE_ATTR = '"><img src=x onerror="window.__pwned=2">'

# The fake run's Dice of liver_unet: the drop sentence's numbers follow from these.
LIVER_AUS, LIVER_RUS = 0.82, 0.41


def full_config() -> dict:
    raw = yaml.safe_load((REPO / "config.yaml").read_text())
    # The fake run has no results/gap/ (config.yaml runs the gap study; its
    # section is tested in tests/test_gap_report.py).
    raw["gap_study"]["enabled"] = False
    return check_config(raw)


def _png(path: Path, size: tuple[int, int], seed: int) -> None:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(170, 250, size[0], dtype=np.float64)[None, :, None]
    arr = np.broadcast_to(ramp + rng.integers(-8, 8, 3)[None, None, :], (size[1], size[0], 3))
    img = Image.fromarray(arr.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(6):
        x0, y0 = int(rng.integers(0, size[0] - 20)), int(rng.integers(0, size[1] - 20))
        colour = tuple(int(c) for c in rng.integers(0, 200, 3))
        draw.rectangle([x0, y0, x0 + size[0] // 5, y0 + size[1] // 4], fill=colour)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path)


def _csv(path: Path, columns: list[str], rows: list[list]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(columns)
        w.writerows(rows)


def _json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))


# Offsets of the four subjects around each class's mean: the subject-level value is their mean.
_SUBJECT_OFFSETS = (-0.1, -0.03, 0.03, 0.1)
# On the real test set, spleen is in one subject only: no interval.
ONE_SUBJECT_CLASS = "spleen"


def _summary(exp: str, ts: str, classes: list[str], rng, real_absent=("bone", "pancreas", "adrenal")) -> dict:
    """A summary.json in the layout usseg.evaluate writes (subject-level, per_class)."""
    real = ts == "test_rus"
    n_subjects = 4
    subjects = ["a", "b", "g", "h"] if real else ["ct11", "ct12", "ct13", "ct14"]
    dice, ci, per_class = {}, {}, {}
    per_subject = {sub: {} for sub in subjects}
    for c in classes:
        if exp == "liver_unet" and c == "liver":
            v = LIVER_RUS if real else LIVER_AUS
        elif real and c in real_absent:
            v = None
        else:
            v = round(float(rng.uniform(0.15, 0.45) if real else rng.uniform(0.5, 0.9)), 4)
        one = real and c == ONE_SUBJECT_CLASS and v is not None
        n_sub = 0 if v is None else (1 if one else n_subjects)
        for k, sub in enumerate(subjects):
            per_subject[sub][c] = None if v is None or (one and k) else (v if one else round(v + _SUBJECT_OFFSETS[k], 4))
        dice[c] = v
        ci[c] = None if v is None or one else [round(max(v - 0.15, 0.0), 4), round(min(v + 0.1, 1.0), 4)]
        per_class[c] = {
            "n_images": 0 if v is None else (3 if one else 15), "n_subjects": n_sub, "dice": v, "ci95": ci[c],
            "ci_method": "t interval on subject means (Student t, n-1 df), clipped to the metric's range",
            "estimable": ci[c] is not None,
            "interval_note": "" if ci[c] else ("n = 1 subject: no interval" if one else "n = 0 subjects: no interval"),
            "nsd": None if v is None else round(v * 0.9, 4), "hd95": None if v is None else 12.5,
            "hd95_n_images": 0 if v is None else 12, "false_positive_images": 7 if c == "liver" else 2,
            "absent_images": 9, "missed_images": 1, "too_small_images": 2 if c == "liver" else 0,
            "predicted_images": 11, "pooled_image_dice": None if v is None else round(v + 0.05, 4),
        }
    scored = [v for v in dice.values() if v is not None]
    shared = [c for c in classes if c not in real_absent]
    return {
        "experiment": exp, "test_set": ts, "aggregation": "subject", "n_images": 60 if real else 293,
        "n_subjects": n_subjects, "dice": dice, "dice_mean_foreground": sum(scored) / len(scored),
        "mean_foreground": {"classes": shared, "dice": sum(scored) / len(scored), "n_subjects": n_subjects,
                            "ci95": None, "estimable": False,
                            "interval_note": "all 4 subjects have the same value: no interval (it would have "
                                             "zero width)"},
        "ci95": ci, "per_subject": per_subject, "unstable": real, "per_class": per_class,
        "pooled_image": {"dice": {c: per_class[c]["pooled_image_dice"] for c in classes}},
        "nsd_tolerance_px": 3.0, "min_reference_area_px": 64,
        "excluded": ([{"image_id": "RUS_test_h7", "subject_id": "h", "reason": "near-duplicate of a training image"},
                      {"image_id": "RUS_test_h8", "subject_id": "h", "reason": "near-duplicate of a training image"}]
                     if real else []),
        "excluded_subjects": [],
    }


# Output names of rule diagnostics (rules/diagnostics.smk) where they differ from the file's stem.
_DIAG_OUTPUT_NAMES = {
    "checklist.md": "checklist_md", "composition.csv": "composition_csv", "subjects.csv": "subjects_csv",
    "class_balance.csv": "class_balance_csv", "domain_shift.json": "domain_shift_json",
    "intensity_histograms.csv": "histograms", "baselines.csv": "baselines",
    "label_shift.csv": "label_shift_csv", "label_shift.json": "label_shift_json",
    "image_quality.csv": "image_quality_csv",
}


def make_fake_run(workdir: Path, config: dict) -> Path:
    """Write a complete fake results/ tree below `workdir` (which must be the cwd); return results/."""
    rng = np.random.default_rng(0)
    res = Path("results")
    diag = res / "diagnostics"
    classes = [c["name"] for c in config["dataset"]["classes"]]
    modalities = list(config["dataset"]["modalities"])

    def record(path, rule, inputs, outputs, params, wildcards=None):
        rec = provenance_record(rule, {k: [str(p) for p in v] for k, v in inputs.items()},
                                {k: [str(p) for p in v] for k, v in outputs.items()}, params, wildcards, REPO)
        write_provenance(res / "provenance" / path, rec)

    # manifest, labels, split
    _csv(res / "manifest.csv", ["image_id", "subject_id", "modality"], [["AUS_train_ct1-1", "ct1", "AUS"]])
    _csv(res / "manifest_issues.csv", ["path", "reason", "detail"], [
        ["RUS/annotations/test/z99.png", "orphan_annotation", "no image with this stem"],
        [f"AUS/images/train/{HOSTILE}.png", "bad_name", HOSTILE_ATTR],
    ])
    record("manifest.json", "manifest", {"data": ["data/demo/abdominal_US"]},
           {"manifest": [res / "manifest.csv"], "issues": [res / "manifest_issues.csv"]},
           {"data_root": "data/demo", "strict": False})
    _csv(res / "labels" / "decode_report.csv",
         ["image_id", "mask_path", "off_palette_fraction", "far_fraction", "max_distance", "classes_present",
          "flagged", "flag_reason"],
         [["AUS_train_ct1-1", "AUS/annotations/train/ct1-1.png", 0.0, 0.0, 0.0, "liver;kidney", False, ""],
          ["RUS_test_a3", "RUS/annotations/test/a3.png", 0.034, 0.021, 141.2, "liver", True,
           "off-palette tint (10,0,10)"]])
    np.save(res / "labels" / "AUS_train_ct1-1.npy", np.zeros((4, 4), np.uint8))
    record("decode_masks.json", "decode_masks", {"manifest": [res / "manifest.csv"]},
           {"labels": [res / "labels"]}, {"dataset": config["dataset"]})
    _csv(res / "splits.csv", ["image_id", "subject_id", "split"], [["AUS_train_ct1-1", "ct1", "train"]])
    record("split.json", "split", {"manifest": [res / "manifest.csv"], "labels": [res / "labels"]},
           {"splits": [res / "splits.csv"]}, {"val_fraction": 0.2, "seed": 42})

    # diagnostics
    checks = [
        ("composition", "Dataset composition", "FAIL", 0.039, {"warn_below": 0.3, "fail_below": 0.1},
         "only 3.9 % of the training labels are real scans"),
        ("subjects", "Labeled target subjects", "FAIL", 4, {"warn_below": 10, "fail_below": 5},
         "real labels come from 4 subjects"),
        ("class_balance", "Class balance", "WARN", ["adrenal", "pancreas"], 0.01, "2 rare classes"),
        ("domain_shift", "Domain shift", "FAIL", 0.97, {"warn_above": 0.75, "fail_above": 0.9},
         "simulator and real images are easy to tell apart"),
        ("label_verification", "Label verification", "WARN", 1, 0, f"1 mask flagged {HOSTILE}"),
        ("leakage", "Leakage", "PASS", 0, 0, "no subject in two splits"),
        ("published_baselines", "Published baselines", "WARN", 0.48, None, "published real-image liver Dice 0.48"),
    ]
    _json(diag / "checklist.json", {"overall": "FAIL", "checks": [
        dict(zip(("id", "title", "status", "value", "threshold", "reason"), c)) for c in checks]})
    (diag / "checklist.md").write_text(
        "# Dataset diagnostics\n\n| check | status |\n|---|---|\n\n## What to try next\n\n"
        "1. Collect and label **RUS** images from more distinct subjects.\n"
        f"2. Use the `557` unlabeled RUS images {HOSTILE}.\n")
    _png(diag / "composition.png", (900, 420), 1)
    _csv(diag / "composition.csv", ["modality", "orig_split", "labeled", "unlabeled"],
         [["AUS", "train", 633, 0], ["AUS", "test", 293, 0], ["RUS", "train", 0, 404], ["RUS", "test", 60, 153]])
    _png(diag / "subjects.png", (900, 380), 2)
    _csv(diag / "subjects.csv", ["modality", "subjects", "labeled_subjects"], [["AUS", 13, 13], ["RUS", 11, 4]])
    _csv(diag / "frames_per_subject.csv", ["modality", "subject_id", "frames", "labeled_frames"],
         [["RUS", "h", 40, 26], ["RUS", "a", 30, 16], ["RUS", HOSTILE, 1, 0]]
         + [["AUS", f"ct{i}", 70 + i, 70 + i] for i in range(1, 14)])
    _png(diag / "class_balance.png", (900, 400), 3)
    _csv(diag / "class_balance.csv", ["class", "pixel_share", "images"],
         [[c, round(float(s), 5), int(n)] for c, s, n in
          zip(classes, rng.dirichlet(np.ones(len(classes))), rng.integers(1, 900, len(classes)))])
    _json(diag / "class_weights.json", {c: round(float(w), 3) for c, w in zip(classes, rng.uniform(0.2, 3, 9))})
    _png(diag / "domain_shift.png", (1000, 360), 4)
    _json(diag / "domain_shift.json", {  # the layout usseg.diagnostics.domain_shift writes
        "field_of_view": {"threshold": 12, "method": "grey > threshold"},
        "per_modality": {m: {"n_pixels": 1000 + i, "mean": 40.5 + 30 * i, "std": 12.25} for i, m in enumerate(modalities)},
        "distances_synthetic_vs_real": {"ks_statistic": 0.412, "wasserstein1_grey_levels": 18.3,
                                        "js_divergence_bits": 0.221},
        "classifier": {"possible": True, "why_not": "", "auc": 0.973, "ci95": [0.941, 0.995], "folds": 4,
                       "n_images": {"real": 60, "synthetic": 120}, "n_subjects": {"real": 4, "synthetic": 13}},
        "unreadable_images": [],
    })
    _csv(diag / "intensity_histograms.csv", ["bin_low", "bin_high", "AUS", "RUS"],
         [[i * 4, i * 4 + 4, round(float(v), 5), round(float(w), 5)]
          for i, (v, w) in enumerate(zip(rng.random(64), rng.random(64)))])
    for i, m in enumerate(modalities):
        _png(diag / f"label_gallery_{m}.png", (1000, 500), 10 + i)
    _csv(diag / "label_flags.csv", ["image_id", "flag", "detail"], [["RUS_test_a3", "tint", HOSTILE]])
    _json(diag / "leakage.json", {"ok": True, "shared_subjects": [], "identical_files": []})
    _csv(diag / "near_duplicates.csv", ["image_a", "image_b", "hamming"], [])
    _png(diag / "label_shift.png", (1000, 700), 5)
    _csv(diag / "label_shift.csv", ["class", "modality", "presence_share", "area_fov_share_median"],
         [["kidney", "AUS", 0.9, 0.05], ["kidney", "RUS", 1.0, 0.03]])
    _json(diag / "label_shift.json", {"shifted_classes": ["kidney"], "classes": {}})
    _png(diag / "image_quality.png", (1000, 700), 6)
    _csv(diag / "image_quality.csv", ["image_id", "modality", "p95", "flags"],
         [["RUS_test_a3", "RUS", 0.05, "dark"], ["AUS_test_ct1-1", "AUS", 0.4, ""]])
    _csv(diag / "baselines.csv", ["source", "test_set", "class", "metric", "value"],
         [[b["source"], b["test_set"], b["class"], b["metric"], b["value"]]
          for b in config["diagnostics"]["published_baselines"]])
    diag_out = sorted(p for p in diag.iterdir() if p.is_file())
    record("diagnostics.json", "diagnostics",
           {"manifest": [res / "manifest.csv"], "issues": [res / "manifest_issues.csv"],
            "labels": [res / "labels"], "splits": [res / "splits.csv"],
            "code": ["src/usseg/class_balance.py"]},
           {**{_DIAG_OUTPUT_NAMES.get(p.name, p.stem): [p] for p in diag_out
              if not p.name.startswith("label_gallery")},
            "galleries": [p for p in diag_out if p.name.startswith("label_gallery")]},
           {"dataset": config["dataset"], "diagnostics": config["diagnostics"]})

    # experiments
    for k, exp in enumerate(config["experiments"]):
        spec = Experiment.from_config(config, exp)
        fg = spec.class_names(config["dataset"])[1:]
        e = res / "experiments" / exp
        epochs = spec.epochs
        _csv(e / "history.csv", ["epoch", "train_loss", "val_loss", *[f"val_dice_{c}" for c in fg],
                                 "val_dice_mean", "lr", "seconds"],
             [[i + 1, 1.2 / (i + 1), 1.3 / (i + 1), *[0.1 * i for _ in fg], 0.08 * i + 0.01 * k, 0.002, 3.5]
              for i in range(epochs)])
        _png(e / "curves.png", (800, 320), 20 + k)
        (e / "model.safetensors").write_bytes(b"weights" + bytes([k]))
        record(f"train/{exp}.json", "train",
               {"manifest": [res / "manifest.csv"], "splits": [res / "splits.csv"], "labels": [res / "labels"]},
               {"model": [e / "model.safetensors"], "history": [e / "history.csv"], "curves": [e / "curves.png"]},
               {"experiment": spec}, {"experiment": exp})
        for ts in config["test_sets"]:
            ev = e / "eval" / ts
            s = _summary(exp, ts, fg, rng)
            _json(ev / "summary.json", s)
            _csv(ev / "per_subject.csv", ["subject_id", *fg], [[sub, *v.values()] for sub, v in s["per_subject"].items()])
            _csv(ev / "per_image.csv", ["image_id", *fg], [])
            _png(ev / "overlays.png", (1000, 260), 40 + k)
            _png(ev / "confusion.png", (500, 450), 60 + k)
            names = ["background", *fg]
            counts = np.diag(np.full(len(names), 1000))
            if ts == "test_rus" and len(names) > 2:  # on real images the organs go to the last class
                counts[1:, :] = 0
                counts[1:, 1] = 100
                counts[1:, -1] += 900
            _csv(ev / "confusion.csv", ["reference", *[f"predicted_{c}" for c in names]],
                 [[c, *row] for c, row in zip(names, counts.tolist())])
            record(f"evaluate/{exp}/{ts}.json", "evaluate",
                   {"model": [e / "model.safetensors"], "splits": [res / "splits.csv"]},
                   {"per_image": [ev / "per_image.csv"], "per_subject": [ev / "per_subject.csv"],
                    "summary": [ev / "summary.json"], "overlays": [ev / "overlays.png"],
                    "confusion": [ev / "confusion.csv"], "confusion_png": [ev / "confusion.png"]},
                   {"experiment": spec}, {"experiment": exp, "test_set": ts})
    return workdir / res


def rule_inputs(config: dict, results: Path) -> dict[str, list[str]]:
    """The report rule's named inputs for a run under `results` (the layout of docs/contracts.md)."""
    experiments, test_sets = list(config["experiments"]), list(config["test_sets"])
    diag = rule_outputs(results / "diagnostics", list(config["dataset"]["modalities"]))
    named = {f"diagnostics_{f.name}": list(getattr(diag, f.name).values()) if f.name == "galleries"
             else [getattr(diag, f.name)] for f in dataclasses.fields(diag)}

    def per_experiment(name):
        return [str(results / "experiments" / e / name) for e in experiments]

    def per_evaluation(name):
        return [str(results / "experiments" / e / "eval" / t / name) for e in experiments for t in test_sets]

    return {**named, "issues": [str(results / "manifest_issues.csv")], "labels": [str(results / "labels")],
            "history": per_experiment("history.csv"), "curves": per_experiment("curves.png"),
            "timing": per_experiment("timing.csv"), "summaries": per_evaluation("summary.json"),
            "overlays": per_evaluation("overlays.png"), "confusion": per_evaluation("confusion.png"),
            "confusion_csv": per_evaluation("confusion.csv"),
            "sanity": [str(results / "sanity" / f"{e}.json") for e in sanity_experiments(config)],
            "round_trip": [str(results / "sanity" / "label_round_trip.json")],
            "nnunet": [str(results / "nnunet" / "eval" / t / "summary.json") for t in test_sets],
            "nnunet_info": [str(results / "nnunet" / "reference.json")]}


def run_inputs(config: dict, results: Path) -> ReportInputs:
    """The fake run's files as the report rule hands them over."""
    return ReportInputs.from_rule(rule_inputs(config, Path(results)), config, results)


# ----------------------------------------------------------------------------- HTML inspection


class _Page(HTMLParser):
    """Ids, images, links and table cells of the report, with the element that encloses each id."""

    VOID = frozenset({"img", "br", "meta", "hr", "input", "link", "col", "wbr"})

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, dict] = {}
        self.imgs: list[dict] = []
        self.hrefs: list[str] = []
        self.references: list[tuple[str, str, str]] = []
        self.stack: list[tuple[str, dict]] = []
        self.tables: dict[str, list[list[dict]]] = {}
        self._table: list | None = None
        self._cell: dict | None = None
        self._in_a = 0
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if "id" in a:
            assert a["id"] not in self.ids, f"duplicate id {a['id']}"
            self.ids[a["id"]] = {"tag": tag, "attrs": a, "ancestors": [dict(x[1]) for x in self.stack]}
        if tag == "img":
            self.imgs.append(a)
        for attr in ("src", "href", "srcset", "action", "poster", "data", "formaction"):
            if attr in a:
                self.references.append((tag, attr, a[attr] or ""))
        if tag == "a" and "href" in a:
            self.hrefs.append(a["href"])
        if tag == "table" and "id" in a:
            self._table = self.tables.setdefault(a["id"], [])
        if tag == "tr" and self._table is not None:
            self._table.append([])
        if tag in ("td", "th") and self._table is not None:
            self._cell = {"text": "", "class": a.get("class", ""), "tag": tag, "bold": False, "tr": None}
            self._table[-1].append(self._cell)
        if tag == "a":
            self._in_a += 1
        if tag == "strong" and self._cell is not None:
            self._cell["bold"] = True
        if tag not in self.VOID:
            self.stack.append((tag, a))

    def handle_endtag(self, tag):
        if tag in self.VOID:
            return
        if tag == "a":
            self._in_a -= 1
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break
        if tag == "table":
            self._table = None
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None and not self._in_a:  # cell text without its links
            self._cell["text"] += data


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """(config, workdir, results, html text) of one report built from the fake tree."""
    workdir = tmp_path_factory.mktemp("fake_run")
    mp = pytest.MonkeyPatch()
    mp.chdir(workdir)
    try:
        config = full_config()
        results = make_fake_run(workdir, config)
        out = workdir / "results" / "report" / "report.html"
        build_report(config, run_inputs(config, Path("results")), out)
    finally:
        mp.undo()
    return config, workdir, results, out.read_text()


@pytest.fixture()
def fresh(tmp_path, monkeypatch):
    """A fake run of one's own (to break), with the cwd set to it."""
    monkeypatch.chdir(tmp_path)
    config = full_config()
    results = make_fake_run(tmp_path, config)
    return config, tmp_path, results


def _rows(page: _Page, table_id: str) -> list[list[dict]]:
    return page.tables[table_id]


def _header_index(rows, name):
    return [c["text"].strip() for c in rows[0]].index(name)


def _group(rows: list[list[dict]], ts: str) -> list[list[dict]]:
    """Rows of one test-set group of the Dice table."""
    out, inside = [], False
    for row in rows[1:]:
        if len(row) == 1 and row[0]["tag"] == "th":
            inside = re.search(rf"\b{re.escape(ts)}\b", row[0]["text"]) is not None  # the heading names its key
            continue
        if inside:
            out.append(row)
    return out


# ----------------------------------------------------------------------------- tests


def test_sections_in_order(fake):
    html = fake[3]
    order = ["verdict", "checks", "pipeline-checks", "experiments", "provenance", "config"]
    positions = [html.index(f'<section id="{s}"') for s in order]
    assert positions == sorted(positions)
    page = _Page(html)
    for s in order:  # the table of contents reaches every section
        assert f"#{s}" in page.hrefs


def test_verdict_first_then_every_check_failures_first(fake):
    _config, _workdir, results, html = fake
    page = _Page(html)
    checklist = json.loads((results / "diagnostics/checklist.json").read_text())
    verdict = html.index('class="verdict FAIL"')
    assert verdict < html.index('<section id="checks"')
    assert re.search(r'<span class="big">FAIL</span>', html)
    box = html[verdict:html.index("</div>", verdict)]
    checks = html[html.index('<section id="checks"'):html.index('<section id="pipeline-checks"')]
    order = {"FAIL": 0, "WARN": 1, "PASS": 2}
    positions = []
    for check in checklist["checks"]:
        anchor = f"check-{check['id']}"
        assert anchor in page.ids, anchor
        # a failing or warning check is named in the verdict box and is a card of its own, open;
        # a passing one is a closed line that opens on its reason
        if check["status"] in ("FAIL", "WARN"):
            assert f'href="#{anchor}"' in box
            assert page.ids[anchor]["tag"] == "article"
        else:
            assert f'href="#{anchor}"' not in box and page.ids[anchor]["tag"] == "details"
        assert html_lib.escape(str(check["reason"])) in checks
        positions.append((order[check["status"]], checks.index(f'id="{anchor}"')))
    assert [p for _, p in sorted(positions)] == sorted(p for _, p in positions)


def test_each_failing_check_has_its_unit_meaning_and_threshold_in_the_verdict(fake):
    html = fake[3]
    box = html[html.index('class="verdict FAIL"'):html.index("</div>", html.index('class="verdict FAIL"'))]
    assert "domain classifier AUC 0.97 (0.5 = indistinguishable" in box  # not a bare "0.97"
    assert "4 labeled RUS (real) subjects" in box and "3.9 % of the training labels are RUS (real)" in box
    assert "(threshold: " in box
    assert "Pipeline ruled out?" in box  # the pipeline's answer is on the first screen too


def test_images_are_embedded_data_uris_without_network_references(fake):
    _config, _workdir, results, html = fake
    page = _Page(html)
    pngs = sorted(p for p in results.rglob("*.png") if "report" not in p.parts)
    # The report draws two figures itself, from the evaluation summaries.
    drawn = {"img-fig-forest", "img-fig-per-subject"}
    assert len(page.imgs) == len(pngs) + len(drawn) and pngs
    embedded = set()
    for img in page.imgs:
        src = img["src"]
        assert src.startswith("data:image/png;base64,"), src[:60]
        data = base64.b64decode(src.split(",", 1)[1], validate=True)
        Image.open(io.BytesIO(data)).verify()
        if img["id"] not in drawn:
            embedded.add(hashlib.sha256(data).hexdigest())
    assert embedded == {hashlib.sha256(p.read_bytes()).hexdigest() for p in pngs}
    assert "http://" not in html and "https://" not in html
    for tag, attr, value in page.references:
        assert value.startswith(("data:", "#")), f"<{tag} {attr}={value[:60]}> points outside the page"
    assert not re.search(r"url\((?!\s*['\"]?data:)", html) and "@import" not in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def _experiment_cell(config, exp) -> str:
    """How the Dice table names an experiment: its name, then its config key (usseg.names)."""
    name = Names(config).experiment(exp)
    return f"{name.text} {name.key}" if name.differs else name.key


def test_dice_table_marks_best_per_class_within_each_test_set(fake):
    config, _workdir, results, html = fake
    rows = _rows(_Page(html), "tab-dice")
    classes = [c["name"] for c in config["dataset"]["classes"][1:]]
    header = [c["text"].strip() for c in rows[0]]
    n_best_checked = 0
    for ts in config["test_sets"]:
        group = [r for r in _group(rows, ts) if not r[0]["text"].startswith("published")]
        assert [r[0]["text"].strip() for r in group] == [_experiment_cell(config, e) for e in config["experiments"]]
        for cls in [c for c in classes if c in header]:
            j = _header_index(rows, cls)
            values = {}
            for r, exp in zip(group, config["experiments"]):
                s = json.loads((results / f"experiments/{exp}/eval/{ts}/summary.json").read_text())
                if s["dice"].get(cls) is not None:
                    values[exp] = s["dice"][cls]
                    if s["ci95"][cls] is None:  # too few subjects: said in words, no interval
                        assert r[j]["text"].strip().startswith(f"{s['dice'][cls]:.2f} n = ")
                        assert "no interval" in r[j]["text"]
                        continue
                    low, high = s["ci95"][cls]
                    assert r[j]["text"].strip() == f"{s['dice'][cls]:.2f} [{low:.2f}, {high:.2f}]"
            rounded = {round(v, 2) for v in values.values()}
            if len(values) < 2 or len(rounded) < 2 or max(rounded) == 0:
                continue
            best = max(rounded)
            for r, exp in zip(group, config["experiments"]):
                should = exp in values and round(values[exp], 2) == best
                assert r[j]["bold"] == should, (ts, cls, exp)
                assert ("best" in r[j]["class"]) == should
            n_best_checked += 1
    assert n_best_checked >= 2


def test_no_best_is_marked_among_zeros(fresh):
    config, workdir, results = fresh
    for exp in ("multiorgan_unet", "multiorgan_unet_weighted"):
        path = results / f"experiments/{exp}/eval/test_rus/summary.json"
        s = json.loads(path.read_text())
        s["dice"]["kidney"] = 0.0
        path.write_text(json.dumps(s))
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    rows = _rows(_Page(out.read_text()), "tab-dice")
    j = _header_index(rows, "kidney")
    assert not any(r[j]["bold"] for r in _group(rows, "test_rus") if len(r) > j)


def test_unstable_estimates_are_flagged(fake):
    config, _workdir, results, html = fake
    rows = _rows(_Page(html), "tab-dice")
    headings = [r[0]["text"] for r in rows[1:] if len(r) == 1 and r[0]["tag"] == "th"]
    for ts, heading in zip(config["test_sets"], headings):
        s = json.loads((results / f"experiments/{next(iter(config['experiments']))}/eval/{ts}/summary.json")
                       .read_text())
        # one test set, one size: said once in its heading
        assert f"{s['n_images']} images of {s['n_subjects']} subjects" in heading
        assert ("⚠ unstable" in heading) == bool(s["unstable"])
    assert "⚠ unstable" in html


def test_published_baselines_sit_beside_matching_rows(fake):
    config, _workdir, _results, html = fake
    rows = _rows(_Page(html), "tab-dice")
    for b in config["diagnostics"]["published_baselines"]:
        if b["metric"] != "dice" or b["test_set"] not in config["test_sets"]:
            continue  # in the published-baselines check's table (e.g. MedSegBench's F1 on its own split)
        group = _group(rows, b["test_set"])
        published = [r for r in group if r[0]["text"].startswith("published")]
        assert len(published) == 1
        j = _header_index(rows, b["class"])
        assert published[0][j]["text"] == f"{b['value']:.2f}"
        assert b["source"] in html  # named in the note under the table


def test_drop_sentence_is_computed_from_the_summaries(fake, fresh):
    html = " ".join(fake[3].split())
    verdict = html[html.index('<section id="verdict"'):html.index('<section id="checks"')]
    # What every experiment shares is said once, then each experiment's own numbers with their intervals.
    assert verdict.count("rests on 4 test subjects") == 1 and "unstable (fewer than 5)" in verdict
    start = verdict.index(f"liver Dice {LIVER_AUS:.2f} [")
    sentence = verdict[start:verdict.index(".", verdict.index("interval of the drop", start))]
    assert f" on simulator images, {LIVER_RUS:.2f} [" in sentence and " on real images: " in sentence
    assert f"a drop of {LIVER_AUS - LIVER_RUS:.2f} (95 % interval of the drop " in sentence
    # Change the summary's subjects: the sentence follows.
    config, workdir, results = fresh
    path = results / "experiments/liver_unet/eval/test_rus/summary.json"
    s = json.loads(path.read_text())
    for subject, v in zip(s["per_subject"], (0.25, 0.35, 0.3, 0.3)):
        s["per_subject"][subject]["liver"] = v
    s.update(dice={**s["dice"], "liver": 0.3}, n_subjects=7, unstable=False)
    path.write_text(json.dumps(s))
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    text = " ".join(out.read_text().split())
    assert "liver Dice 0.82 [" in text and "0.30 [0.24, 0.36] on real images: a drop of 0.52" in text
    # its real-image subjects now differ from the others': said on its own line
    assert "(7 real test subjects)" in text
    assert "0.41 [" not in text


def test_drop_sentence_for_several_classes_and_a_gain():
    # Subject s2 shows no kidney. The headline is the class-macro mean (liver 0.85 and kidney 0.6: 0.725; 0.3 and
    # 0.8: 0.55), the same as the Dice table's, not the mean of each subject's own mean (0.80 and 0.40).
    syn = {"dice": {"liver": 0.85, "kidney": 0.6, "bone": 0.9}, "n_subjects": 2, "unstable": False,
           "per_subject": {"s1": {"liver": 0.8, "kidney": 0.6, "bone": 0.9}, "s2": {"liver": 0.9, "kidney": None}}}
    real = {"dice": {"liver": 0.3, "kidney": 0.8, "bone": None}, "n_subjects": 2, "unstable": True,
            "per_subject": {"s1": {"liver": 0.4, "kidney": 0.8}, "s2": {"liver": 0.2, "kidney": None}}}
    text = drop_sentence("m", "test_aus", "test_rus", syn, real, ["liver", "bone", "kidney"])
    assert text.startswith("m: class-macro mean Dice over liver, kidney 0.73 (n = 2 subjects: no interval) on "
                           "test_aus (2 subjects; subjects ")
    assert "0.55 (n = 2 subjects: no interval) on test_rus" in text and "a drop of 0.18 (24 %)" in text
    assert "liver 0.85 → 0.30, kidney 0.60 → 0.80" in text
    no_subjects = drop_sentence("m", "a", "b", {k: v for k, v in syn.items() if k != "per_subject"}, real,
                                ["liver", "kidney"])
    assert "no per-subject Dice over liver, kidney, so no drop can be stated" in no_subjects
    gain = drop_sentence("g", "test_aus", "test_rus", {"dice": {"liver": 0.5}}, {"dice": {"liver": 0.6},
                         "n_subjects": 9}, ["liver"])
    assert "a gain of 0.10 (20 %)" in gain and "unstable" not in gain
    from_nothing = drop_sentence("z", "test_aus", "test_rus", {"dice": {"liver": 0.01}},
                                 {"dice": {"liver": 0.16}}, ["liver"])
    assert "a gain of 0.15 from simulator to real images" in from_nothing
    none = drop_sentence("n", "a", "b", {"dice": {"liver": None}}, {"dice": {"liver": 0.6}}, ["liver"])
    assert "no drop can be stated" in none
    same = drop_sentence("s", "a", "b", {"dice": {"liver": 0.5}}, {"dice": {"liver": 0.502}}, ["liver"])
    assert "0.50 on a, 0.50 on b: no change from simulator to real images" in same


def test_dirty_code_is_shown(fresh):
    config, workdir, results = fresh
    for path in (results / "provenance").rglob("*.json"):  # most jobs: one clean commit
        rec = json.loads(path.read_text())
        rec["code"] = {"git_commit": "a" * 40, "dirty": False}
        path.write_text(json.dumps(rec))
    for exp, dirty in (("liver_unet", True), ("liver_rf", False)):
        path = results / f"provenance/train/{exp}.json"
        rec = json.loads(path.read_text())
        rec["code"] = {"git_commit": "f" * 40, "dirty": dirty}
        path.write_text(json.dumps(rec))
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    html = out.read_text()
    # A row names what differs from the shared code and versions.
    assert "git commit ffffffffff, uncommitted changes (dirty)" in _row(html, "rec-train-liver_unet")
    assert "uncommitted changes (dirty)" not in _row(html, "rec-train-liver_rf")
    assert "git commit ffffffffff" in _row(html, "rec-train-liver_rf")
    assert "code: several versions, see provenance" in html.split("</header>")[0]


def test_a_run_outside_git_says_so_instead_of_several_versions(fresh):
    config, workdir, results = fresh
    for path in (results / "provenance").rglob("*.json"):
        rec = json.loads(path.read_text())
        rec["code"] = {"git_commit": None, "dirty": None, "note": "not a git checkout"}
        path.write_text(json.dumps(rec))
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    head = out.read_text().split("</header>")[0]
    assert "code: not a git checkout, no commit recorded" in head and "several versions" not in head


def _row(html: str, record_id: str) -> str:
    """A job's row of the provenance table with its detail row (the files and their hashes)."""
    start = html.index(f'<tr id="{record_id}"')
    detail = html.index('<tr class="prov-more"', start)
    return html[start:html.index("</details></td></tr>", detail)]


def _provenance_of(html: str, ident: str) -> str:
    """Where the provenance link of the figure, table, row or sentence `ident` leads: the link inside it
    (a figure's caption, a row, a sentence), else the one in the heading just before it (a table)."""
    pos = html.index(f'id="{ident}"')
    tag = html[html.rindex("<", 0, pos) + 1:pos].split()[0]
    end = html.index(f"</{tag}>", pos)
    found = re.findall(r'class="prov-link" href="#([^"]+)"', html[pos:end])
    if found and tag != "table":
        return found[0]
    return re.findall(r'class="prov-link" href="#([^"]+)"', html[:pos])[-1]


def _entry(html: str, record_id: str) -> str:
    return _row(html, record_id)


def test_every_figure_and_table_links_to_its_provenance(fake):
    _config, _workdir, _results, html = fake
    page = _Page(html)
    shown = [i for i, v in page.ids.items()
             if i.startswith(("fig-", "tab-", "row-")) and v["tag"] in ("figure", "table", "tr", "p")]
    figures = [i for i in shown if i.startswith("fig-")]
    assert len(figures) == len(page.imgs)
    assert {"tab-composition", "tab-manifest-issues", "tab-flagged-masks", "tab-dice",
            "tab-domain-shift", "tab-label-flags"} <= set(shown)
    rows = {i for i in page.ids if i.startswith("rec-")}
    for ident in shown:
        if ident == "tab-provenance":
            continue
        target = _provenance_of(html, ident)
        assert target in rows, f"{ident}'s provenance link leads to {target}, not a job's row"
        # the row leads back to what it shows (the page's own row lists what it computed)
        assert f'href="#{ident}"' in _row(html, target)
    # what most jobs share is shown once, not in every row
    prov = html[html.index('<section id="provenance"'):html.index('<section id="config"')]
    assert prov.count("<b>monai</b>") == 2  # the shared versions and this page's own
    assert prov.count("palette:") <= 1


def test_provenance_row_names_rule_hashes_params_and_code(fake):
    config, _workdir, results, html = fake
    row = _row(html, _provenance_of(html, "fig-composition"))
    assert "<b>diagnostics</b>" in row
    manifest_sha = hashlib.sha256((results / "manifest.csv").read_bytes()).hexdigest()
    assert f'title="{manifest_sha}">{manifest_sha[:12]}<' in row  # short hash, full on hover
    assert 'href="#rec-manifest"' in row  # the input's own record
    assert "min_labeled_target_subjects" in row and "domain_auc" in row  # its own params as YAML
    assert 'href="#param-dataset"' in row  # a shared parameter block, shown once
    assert "✓ unchanged" in row and "shared" in row
    record = json.loads((results / "provenance/diagnostics.json").read_text())
    prov = html[html.index('<section id="provenance"'):]
    assert record["code"]["git_commit"][:12] in prov and f"<b>monai</b> {record['versions']['monai']}<" in prov
    # evaluation figures trace to their own evaluate record
    overlay = _row(html, _provenance_of(html, "fig-overlays-liver_unet-test_rus"))
    assert "<b>evaluate</b>" in overlay and "experiment=liver_unet" in overlay and "test_set=test_rus" in overlay
    # a file inside a folder output (decode_report.csv in labels/) traces to that folder's rule
    assert "<b>decode_masks</b>" in _row(html, _provenance_of(html, "tab-flagged-masks"))
    # the Dice table is computed here: the page's own row lists every summary it used
    assert _provenance_of(html, "tab-dice") == "rec-report"
    derived = _row(html, "rec-report")
    for exp in config["experiments"]:
        for ts in config["test_sets"]:
            assert f"experiments/{exp}/eval/{ts}/summary.json" in derived


def test_config_yaml_at_the_end(fake):
    config, _workdir, _results, html = fake
    page = _Page(html)
    assert page.ids["config-yaml"]["tag"] == "pre"
    start = html.index('id="config-yaml">') + len('id="config-yaml">')
    text = html[start:html.index("</pre>", start)]
    import html as html_mod
    assert yaml.safe_load(html_mod.unescape(text)) == json.loads(json.dumps(config))
    assert html.index('<section id="config"') > html.index('<section id="provenance"')


def test_hostile_strings_are_escaped(fake):
    html = fake[3]
    assert HOSTILE not in html and HOSTILE_ATTR not in html
    assert "window.__pwned" in html  # it is shown, as text
    import html as html_mod
    assert html_mod.escape(HOSTILE) in html
    assert html.count("<script>") == 1  # only the report's own image check


def test_quarantined_inputs_and_flagged_masks_shown(fake):
    _config, _workdir, _results, html = fake
    page = _Page(html)
    issues = _rows(page, "tab-manifest-issues")
    assert [c["text"] for c in issues[0]] == ["file", "reason", "detail"]  # headers in words
    assert len(issues) == 3 and issues[1][1]["text"] == "orphan_annotation"
    flagged = _rows(page, "tab-flagged-masks")
    assert len(flagged) == 2 and flagged[1][0]["text"] == "RUS_test_a3"  # only the flagged row
    assert page.ids["tab-near-duplicates"]["tag"] == "p"  # empty table: said so, not an empty grid


def test_empty_quarantine_says_none(fresh):
    config, workdir, results = fresh
    _csv(results / "manifest_issues.csv", ["path", "reason", "detail"], [])
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    page = _Page(out.read_text())
    assert page.ids["tab-manifest-issues"]["tag"] == "p"
    assert "none: every file was used." in out.read_text()


def test_domain_auc_with_interval(fake):
    html = fake[3]
    assert "tells the domains apart with AUC 0.97 (95 % interval 0.94 to 0.99)" in html
    rows = _rows(_Page(html), "tab-domain-shift")
    table = {r[0]["text"]: r[1]["text"] for r in rows[1:]}
    assert table == {"Kolmogorov-Smirnov statistic": "0.412", "Wasserstein-1 distance (grey levels)": "18.3",
                     "Jensen-Shannon divergence (bits)": "0.221"}
    assert "Images (subjects) per domain: real 60 (4), synthetic 120 (13)." in html
    stats = _rows(_Page(html), "tab-intensity-stats")
    assert [c["text"] for c in stats[0]] == ["", "pixels", "mean", "standard deviation"]


def test_domain_test_that_could_not_run_says_why(fresh):
    config, workdir, results = fresh
    path = results / "diagnostics/domain_shift.json"
    data = json.loads(path.read_text())
    data["classifier"].update(possible=False, auc=None, ci95=None, why_not="only the synthetic domain is present")
    path.write_text(json.dumps(data))
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    assert ("The two-sample test (domain classifier) did not run: only the synthetic domain is present"
            in out.read_text())


def test_next_steps_from_the_diagnostics(fake):
    html = fake[3]
    verdict = html[html.index('<section id="verdict"'):html.index('<section id="checks"')]
    assert "<li>Collect and label RUS images from more distinct subjects.</li>" in verdict
    assert "Use the 557 unlabeled RUS images &lt;script&gt;" in verdict


def test_missing_input_names_the_file(fresh):
    config, workdir, results = fresh
    out = workdir / "report.html"
    out.write_text("old report")
    (results / "diagnostics/domain_shift.png").unlink()
    (results / "experiments/liver_rf/eval/test_rus/summary.json").unlink()
    with pytest.raises(ReportInputError) as err:
        build_report(config, run_inputs(config, results), out)
    msg = str(err.value)
    assert str(results / "diagnostics/domain_shift.png") in msg and "rule diagnostics" in msg
    assert str(results / "experiments/liver_rf/eval/test_rus/summary.json") in msg and "rule evaluate" in msg
    assert out.read_text() == "old report"  # nothing half-written


def test_file_without_provenance_is_an_error(fresh):
    config, workdir, results = fresh
    path = results / "provenance/diagnostics.json"
    rec = json.loads(path.read_text())
    del rec["outputs"]["composition"]
    path.write_text(json.dumps(rec))
    with pytest.raises(ReportInputError, match=r"lists .*composition\.png"):
        build_report(config, run_inputs(config, results), workdir / "r.html")


def test_changed_file_is_marked_in_provenance(fresh):
    config, workdir, results = fresh
    _png(results / "diagnostics/composition.png", (300, 200), 99)
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    html = out.read_text()
    row = _row(html, "rec-diagnostics")
    assert "✗ 1 changed" in row and "changed since the rule ran" in row


def test_written_atomically_and_from_another_directory(fresh, tmp_path_factory, monkeypatch):
    config, _workdir, results = fresh
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    monkeypatch.chdir(elsewhere)  # provenance paths are relative to the run's directory, not this one
    out = elsewhere / "deep" / "report.html"
    build_report(config, run_inputs(config, results), out)
    assert [p.name for p in out.parent.iterdir()] == ["report.html"]
    assert _provenance_of(out.read_text(), "fig-composition") == "rec-diagnostics"


def test_inputs_follow_the_rule_and_the_config():
    config = full_config()
    small = copy.deepcopy(config)
    small["experiments"] = {"only": {}}
    small["test_sets"] = ["test_rus"]
    inputs = run_inputs(small, Path("results"))
    assert inputs.summaries == {("only", "test_rus"): Path("results/experiments/only/eval/test_rus/summary.json")}
    assert list(inputs.diagnostics.galleries) == list(config["dataset"]["modalities"])
    files = {str(p) for p, _ in inputs.required()}
    assert not any("test_aus" in f or "liver_unet" in f for f in files)
    assert "results/labels/decode_report.csv" in files
    assert inputs.gap == {} and inputs.nnunet_info == Path("results/nnunet/reference.json")


def test_inputs_listed_wrongly_are_named():
    config = full_config()
    named = rule_inputs(config, Path("results"))
    with pytest.raises(ReportInputError, match=r"3 file\(s\) as input 'summaries' for \d+ experiments x test sets"):
        ReportInputs.from_rule({**named, "summaries": named["summaries"][:3]}, config, "results")
    with pytest.raises(ReportInputError, match="names no input 'round_trip'"):
        ReportInputs.from_rule({k: v for k, v in named.items() if k != "round_trip"}, config, "results")


def test_the_rule_names_every_input():
    """The report rules (rules/report.smk) take their inputs from report_inputs (rules/report_common.smk),
    which names every file field of ReportInputs (diagnostics and gap by prefix)."""
    rules = (REPO / "rules/report.smk").read_text()
    assert rules.count("**report_inputs(with_training=") == 2
    text = (REPO / "rules/report_common.smk").read_text()
    block = text[text.index("def report_inputs"):]
    block = block[block.index("    return {"):]
    names = set(re.findall(r'^        "(\w+)": ', block, re.MULTILINE))
    assert '**named_inputs("diagnostics", rules.diagnostics.output)' in block and "**gap," in block
    fields = {f.name for f in dataclasses.fields(ReportInputs) if "made_by" in f.metadata} - {"diagnostics", "gap"}
    assert fields <= names, fields - names
    assert {"manifest", "splits"} <= names  # what usseg.trainability decides from


# ----------------------------------------------------------------------------- subject-level evaluation


def test_class_in_one_subject_shows_no_interval(fake):
    _config, _workdir, results, html = fake
    page = _Page(html)
    rows = _rows(page, "tab-dice")
    j = _header_index(rows, ONE_SUBJECT_CLASS)
    cell = _group(rows, "test_rus")[1][j]["text"]
    s = json.loads((results / "experiments/multiorgan_unet/eval/test_rus/summary.json").read_text())
    assert cell.strip() == f"{s['dice'][ONE_SUBJECT_CLASS]:.2f} n = 1, no interval"
    assert "[" not in cell
    assert 'title="n = 1 subject: no interval"' in html  # the whole note on hover


def test_the_class_macro_mean_names_its_classes(fake):
    _config, _workdir, results, html = fake
    rows = _rows(_Page(html), "tab-dice")
    j = _header_index(rows, "class-macro mean")
    s = json.loads((results / "experiments/multiorgan_unet/eval/test_aus/summary.json").read_text())
    row = _group(rows, "test_aus")[1]
    assert f"over {len(s['mean_foreground']['classes'])} classes" in row[j]["text"]
    assert f'title="over {", ".join(s["mean_foreground"]["classes"])}"' in html
    assert "no interval" in row[j]["text"]


def test_excluded_images_counted_with_reasons(fake):
    rows = _rows(_Page(fake[3]), "tab-excluded")
    by_ts = {r[0]["text"]: [c["text"] for c in r] for r in rows[1:]}
    assert by_ts["AUS test set (simulator)"] == ["AUS test set (simulator)", "0", "none", "none"]
    assert by_ts["RUS test set (real)"] == ["RUS test set (real)", "2", "none", "near-duplicate of a training image (2)"]


def test_errors_table_counts_false_positives_and_unscorable_classes(fake):
    config, _workdir, results, html = fake
    rows = _rows(_Page(html), "tab-errors")
    header = [c["text"] for c in rows[0]]
    s = json.loads((results / "experiments/multiorgan_unet/eval/test_rus/summary.json").read_text())
    found = {(r[0]["text"], r[1]["text"], r[2]["text"]): [c["text"] for c in r] for r in rows[1:]}
    name = Names(config).experiment("multiorgan_unet").text
    liver = found[(name, "RUS test set (real)", "liver")]
    c = s["per_class"]["liver"]
    assert liver[header.index("false positives / images without it")] == (
        f"{c['false_positive_images']} / {c['absent_images']}")
    assert liver[header.index("too small")] == str(c["too_small_images"])
    bone = found[(name, "RUS test set (real)", "bone")]
    assert "never annotated" in bone[-1] and "cannot be scored" in bone[-1]
    assert "tolerance 3 px" in html


def test_forest_and_per_subject_figures_are_drawn(fake):
    page = _Page(fake[3])
    for fig in ("fig-forest", "fig-per-subject"):
        assert page.ids[fig]["tag"] == "figure"
        assert _provenance_of(fake[3], fig) == "rec-report"
        img = next(i for i in page.imgs if i["id"] == f"img-{fig}")
        # made for the page: at most the column wide, its smallest text recorded and large enough
        assert int(img["width"]) <= MAX_WIDTH_PX and float(img["data-min-font-px"]) >= MIN_FONT_PX


def test_dominant_confusion_error_is_said_in_words(fake):
    config, _workdir, _results, html = fake
    section = html[html.index('<section id="experiments"'):html.index('<section id="provenance"')]
    # the fake's multi-organ models send 90 % of every organ's real pixels to the last class, adrenal
    assert "On the RUS test set (real), 90% of liver" in section and "are predicted as adrenal" in section
    assert "On the AUS test set (simulator)" not in section.split("What the confusion matrices show")[1].split(
        "</ul>")[0]


def test_drop_has_its_own_unpaired_interval(fake):
    from usseg.intervals import difference_interval

    _config, _workdir, results, html = fake
    aus, rus = (json.loads((results / f"experiments/liver_unet/eval/{ts}/summary.json").read_text())
                for ts in ("test_aus", "test_rus"))
    iv = difference_interval([v["liver"] for v in aus["per_subject"].values()],
                             [v["liver"] for v in rus["per_subject"].values()])
    assert iv["ci95"] is not None
    assert f"(95 % interval of the drop {iv['ci95'][0]:.2f} to {iv['ci95'][1]:.2f})" in html
    assert "Welch" in html


def test_verdict_says_when_the_data_are_the_demo(fake, fresh):
    html = fake[3]
    verdict = html[html.index('class="verdict'):html.index('<section id="checks"')]
    assert "Generated demo data" in verdict and "not a verdict on real ultrasound" in verdict
    config, workdir, results = fresh
    config = copy.deepcopy(config)
    config["data_root"] = str(workdir / "abdominal_US")
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    assert "not a verdict on real ultrasound" not in out.read_text()


def test_the_run_state_says_whether_every_recorded_output_is_current(fake, fresh):
    assert "Run state: <span class=\"ok\">current</span>" in fake[3]
    # An output changed (or gone) after its rule ran, e.g. by a failed or hand-run job:
    config, workdir, results = fresh
    summary = results / "experiments/liver_unet/eval/test_rus/summary.json"
    summary.write_text(summary.read_text().replace("0.41", "0.99"))
    (results / "experiments/liver_rf/model.safetensors").unlink()
    (results / "experiments/liver_rf/history.csv").write_text("epoch\n1\n")
    out = workdir / "r.html"
    build_report(config, run_inputs(config, results), out)
    text = out.read_text()
    assert "Run state: <span class=\"bad\">not current</span>" in text
    assert "summary.json</code>: changed since rule evaluate recorded it" in text
    assert "liver_rf/model.safetensors</code>: missing (recorded by rule train)" in text
