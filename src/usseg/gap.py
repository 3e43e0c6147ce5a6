"""The gap study's orchestration: which models it trains, and its result tables (docs/remedies.md).

The study compares, on the same test subjects:

- every remedy experiment (`remedy_experiments`: each network experiment with
  the baseline's classes) with the baseline experiment (`gap_study.baseline`):
  results/gap/gap_closure.csv, paired subject-level deltas of Dice and surface
  Dice on every test set, the domain classifier's AUC after the remedy's
  harmonisation, and the training seconds;
- leave-one-subject-out folds of the baseline trained on the simulator plus all
  but one labeled real subject (`loso_experiment`): results/gap/loso.csv;
- the baseline trained on nested shares of the simulator's training subjects:
  results/gap/learning_curve.csv;
- "when to stop" (results/gap/when_to_stop.json);
- gap_closure.json and learning_curve_dice.csv: the same numbers shaped for
  `dvc metrics` and `dvc plots` (docs/dvc.md).

Each trained model is scored by usseg.evaluate; this module reads its
per_subject.csv and summary.json. The statistics are usseg.remedies.gap_stats.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from usseg import composite, contracts
from usseg.contracts import CURVE_COLUMNS, LOSO_COLUMNS, SPLIT_COLUMNS
from usseg.errors import DataError
from usseg.experiment import Experiment
from usseg.remedies import gap_stats
from usseg.remedies.spec import gap_baseline

# usseg.data (MONAI, torch) is imported inside the functions that read tables:
# the rules import this module at every Snakemake start-up.

# The two per-subject scores of the study: column of gap_closure.csv's `metric`
# -> the per-class column prefix in per_subject.csv.
METRICS = {"dice": "dice", "surface_dice": "nsd"}
# The fewest per-subject differences from which the SD of "when to stop" is estimated.
MIN_SUBJECTS_FOR_SD = 2


# ----------------------------------------------------------------------------- what is trained


def remedy_experiments(config: dict) -> list[str]:
    """The experiments compared with the baseline: every other network experiment with its classes."""
    baseline = gap_baseline(config)
    ds = config["dataset"]
    classes = Experiment.from_config(config, baseline).class_names(ds)
    out = []
    for name in config["experiments"]:
        exp = Experiment.from_config(config, name)
        if name != baseline and exp.is_network and exp.class_names(ds) == classes:
            out.append(name)
    return out


def loso_experiment(config: dict) -> Experiment:
    """The baseline's settings, trained on the simulator and the labeled real subjects of its fold."""
    exp = Experiment.from_config(config, gap_baseline(config))
    target = config["dataset"]["target_modality"]
    mods = list(exp.train_modalities)
    return exp.with_settings(name=f"{exp.name}_loso", train_modalities=mods + [target] * (target not in mods))


def curve_experiment(config: dict, fraction: str) -> Experiment:
    """The baseline's settings, trained on a share of the simulator's training subjects."""
    exp = Experiment.from_config(config, gap_baseline(config))
    return exp.with_settings(name=f"{exp.name}_share{fraction}")


def fraction_names(config: dict) -> list[str]:
    """The learning curve's shares as wildcard values ('0.25', '0.5', '1')."""
    return [f"{float(f):g}" for f in config["gap_study"]["learning_curve_fractions"]]


def _split_table(table: pd.DataFrame) -> pd.DataFrame:
    t = table.copy()
    for col in SPLIT_COLUMNS:
        if col not in t.columns:
            t[col] = ""
    return t[SPLIT_COLUMNS]


def write_loso_folds(manifest_csv, splits_csv, target_modality: str, out_dir) -> list[str]:
    """One splits.csv per held-out labeled real subject, out_dir/{subject}/splits.csv; the subjects."""
    table = contracts.read_split_table(manifest_csv, splits_csv)
    out_dir = Path(out_dir)
    subjects = []
    for fold in gap_stats.loso_folds(table, target_modality):
        if not fold.held_out or "/" in fold.held_out or fold.held_out.startswith("."):
            raise DataError(f"{splits_csv}: subject id {fold.held_out!r} cannot name a folder; rename it.")
        (out_dir / fold.held_out).mkdir(parents=True, exist_ok=True)
        contracts.write_table(_split_table(fold.splits), out_dir / fold.held_out / "splits.csv", SPLIT_COLUMNS)
        subjects.append(fold.held_out)
    return subjects


def write_curve_split(manifest_csv, splits_csv, fraction: str, fractions: Sequence[float],
                      modalities: Sequence[str], seed: int, out_csv) -> None:
    """splits.csv of one learning-curve share (nested shares, usseg.remedies.gap_stats.learning_curve_splits)."""
    table = contracts.read_split_table(manifest_csv, splits_csv)
    tables = gap_stats.learning_curve_splits(table, fractions, modalities, seed)
    contracts.write_table(_split_table(tables[float(fraction)]), out_csv, SPLIT_COLUMNS)


# ----------------------------------------------------------------------------- reading the evaluations


def subject_scores(eval_dir) -> pd.DataFrame:
    """One row per test subject of one evaluation: subject_id, n_images, dice, surface_dice.

    Each is the subject's term of the class-macro mean over the classes of the evaluation's composite
    (summary.json mean_foreground.classes; usseg.composite.subject_terms): their mean over subjects is the
    evaluation's class-macro mean, so a paired change here is a change in the composite the report shows.
    """
    eval_dir = Path(eval_dir)
    summary_path, table_path = eval_dir / "summary.json", eval_dir / "per_subject.csv"
    summary = contracts.read_summary(summary_path)
    classes = (summary.get("mean_foreground") or {}).get("classes")
    if not isinstance(classes, list):
        raise DataError(f"{summary_path} lacks mean_foreground.classes (docs/contracts.md); re-run the evaluation.")
    table = contracts.read_per_subject(table_path)
    out = table[contracts.PER_SUBJECT_KEY_COLUMNS].copy()
    for metric, prefix in METRICS.items():
        cols = [f"{prefix}_{c}" for c in classes]
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise DataError(f"{table_path}: column(s) {', '.join(missing)} missing; re-run the evaluation.")
        out[metric] = composite.subject_terms(table[cols].astype(float)).to_numpy()
    return out


def _series(scores: pd.DataFrame, metric: str) -> pd.Series:
    return pd.Series(scores[metric].to_numpy(float), index=scores["subject_id"].astype(str))


# ----------------------------------------------------------------------------- result tables


def loso_table(fold_eval_dirs: Mapping[str, str | Path]) -> pd.DataFrame:
    """loso.csv: one row per held-out subject (first column held_out_subject), its scores on its own images."""
    rows = []
    for held, eval_dir in sorted(fold_eval_dirs.items()):
        scores = subject_scores(eval_dir)
        own = scores[scores["subject_id"].astype(str) == str(held)]
        if len(own) != 1:
            raise DataError(f"{eval_dir}: the held-out subject {held!r} is not the one subject scored there.")
        rows.append({"held_out_subject": held, **own.iloc[0].drop("subject_id").to_dict()})
    return pd.DataFrame(rows, columns=LOSO_COLUMNS)


def learning_curve_table(curve_eval_dirs: Mapping[tuple[str, str], str | Path]) -> pd.DataFrame:
    """learning_curve.csv: per test set and metric, one row per share (level) with a t-interval
    over test subjects and the paired step from the previous share."""
    long = []
    for (fraction, test_set), eval_dir in curve_eval_dirs.items():
        scores = subject_scores(eval_dir)
        for metric in METRICS:
            long.append(pd.DataFrame({"test_set": test_set, "metric": metric, "fraction": float(fraction),
                                      "subject": scores["subject_id"].astype(str), "value": scores[metric]}))
    if not long:
        return pd.DataFrame(columns=CURVE_COLUMNS)
    long_df = pd.concat(long, ignore_index=True)
    parts = []
    for (test_set, metric), group in long_df.groupby(["test_set", "metric"], sort=True):
        summary = gap_stats.learning_curve_summary(group, level="fraction")
        summary.insert(0, "metric", metric)
        summary.insert(0, "test_set", test_set)
        parts.append(summary)
    return pd.concat(parts, ignore_index=True)[CURVE_COLUMNS]


# gap_closure.csv's remedy name of "adding real labels" (defined with the statistics, which the
# report reads without importing the training stack).
LOSO_REMEDY = gap_stats.LOSO_REMEDY


def loso_rows(loso: pd.DataFrame, baseline_scores: pd.DataFrame, target_test_set: str) -> list[dict]:
    """gap_closure rows of adding real labels: LOSO held-out scores paired with the baseline's on the same
    subjects (the baseline was trained without any real label)."""
    rows = []
    for metric in METRICS:
        held = pd.Series(loso[metric].to_numpy(float), index=loso["held_out_subject"].astype(str))
        base = _series(baseline_scores, metric)
        missing = sorted(set(held.index) - set(base.index))
        if missing:
            raise DataError(f"gap study: held-out subject(s) {', '.join(missing)} are not in the baseline's "
                            f"{target_test_set} evaluation; LOSO and baseline must share the real test subjects.")
        comparison = gap_stats.paired_delta(base[held.index], held)
        rows.append(gap_stats.gap_closure_row(LOSO_REMEDY, target_test_set, metric, comparison))
    return rows


def training_seconds(timing_csv) -> float:
    """The training's seconds: the sum over its epochs in timing.csv."""
    return float(contracts.read_timing(timing_csv)["seconds"].sum())


def gap_closure(baseline: str, remedies: Sequence[str], eval_dirs: Mapping[tuple[str, str], str | Path],
                test_sets: Sequence[str], seconds: Mapping[str, float],
                domain: Mapping[str, Mapping] | None = None) -> pd.DataFrame:
    """gap_closure.csv: each remedy against the baseline, paired over the test subjects of each test set.

    eval_dirs: (experiment, test_set) -> evaluation folder; seconds: experiment -> training
    seconds; domain: remedy -> its domain_auc result (usseg.remedies.domain_check), where the
    remedy harmonises images.
    """
    rows = []
    for test_set in test_sets:
        base = subject_scores(eval_dirs[(baseline, test_set)])
        for remedy in remedies:
            scores = subject_scores(eval_dirs[(remedy, test_set)])
            for metric in METRICS:
                comparison = gap_stats.paired_delta(_series(base, metric), _series(scores, metric))
                rows.append(gap_stats.gap_closure_row(remedy, test_set, metric, comparison))
    for remedy in remedies:
        rows.append(gap_stats.scalar_row(remedy, "all", "train_seconds", seconds[baseline], seconds[remedy]))
        result = (domain or {}).get(remedy)
        if result and result.get("after") and result["after"].get("possible") and result["before"].get("possible"):
            rows.append(gap_stats.scalar_row(remedy, "all", "domain_auc", result["before"]["auc"],
                                             result["after"]["auc"]))
    return gap_stats.gap_closure_table(rows)


def when_to_stop(baseline_eval_dir, eval_dirs: Mapping[tuple[str, str], str | Path],
                 baseline: str, remedies: Sequence[str], target_test_set: str, study: Mapping,
                 other_changes: Mapping[str, pd.Series] | None = None) -> dict:
    """"When to stop" on the real test set's Dice: the smallest detectable change with the labeled
    real subjects at hand, and the subjects a change of gap_study.change_to_detect needs.

    The SD is the pooled SD of the paired differences of every change measured on the real test
    set: the remedies' and `other_changes` (name -> per-subject Dice of a model paired with the
    baseline on the same subjects: the LOSO held-out scores). Every measured change counts, so a
    small remedy with a steady effect cannot make the study look more sensitive than the spread
    of a large one allows. With no change measured, the baseline's between-subject SD turned into
    an SD of differences at an assumed correlation of 0.5 (gap_stats.sd_of_differences); said so
    in `sd_source`.
    """
    base = _series(subject_scores(baseline_eval_dir), "dice")
    deltas = [gap_stats.paired_delta(base, _series(subject_scores(eval_dirs[(r, target_test_set)]), "dice"))
              for r in remedies]
    deltas += [gap_stats.paired_delta(base[scores.index], scores) for scores in (other_changes or {}).values()]
    deltas = [d for d in deltas if d.n_subjects >= MIN_SUBJECTS_FOR_SD]
    n = int(np.isfinite(base.to_numpy(float)).sum())
    if deltas:
        sd = gap_stats.pooled_sd(deltas)
        source = "pooled SD of the paired per-subject differences of every measured change"
    else:
        between = float(np.nanstd(base.to_numpy(float), ddof=1)) if n >= 2 else math.nan
        sd = gap_stats.sd_of_differences(between)
        source = "baseline's between-subject SD, assuming a correlation of 0.5 between two models"
    result = gap_stats.when_to_stop(n, sd, float(study["change_to_detect"]), float(study["alpha"]),
                                    float(study["power"]))
    result.update(test_set=target_test_set, metric="dice", sd_source=source, text=gap_stats.when_to_stop_text(result))
    return result


def domain_auc_of(exp: Experiment, prepared, max_images: int, folds: int, seed: int) -> dict | None:
    """The domain classifier's AUC between the simulator's training images and the target frames, before
    and after the experiment's harmonisation (None when its remedy harmonises nothing).

    Images at the experiment's image_size; at most `max_images` per domain (a seeded sample).
    """
    # Late: MONAI transforms.
    from usseg.remedies import domain_check, transforms
    from usseg.training import remedy as wiring

    remedy = exp.remedy
    table, fov_threshold = prepared.table, prepared.fan_threshold
    bank = None
    if remedy.name in ("histogram_matching", "fda"):
        bank = wiring.target_bank(exp, remedy, prepared)
    fns = transforms.harmonisers(remedy, bank, seed, fov_threshold)
    if fns is None:
        return None
    target = prepared.dataset.target_modality
    rng = np.random.default_rng(seed)

    def sample(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows.sort_values("image_id", kind="stable")
        return rows.iloc[np.sort(rng.choice(len(rows), max_images, replace=False))] if len(rows) > max_images else rows

    # In image-path order (the order the earlier file-reading version used), from the prepared arrays.
    src_rows = sample(table[(table["modality"] != target) & (table["split"] == "train")]).sort_values("image_path")
    tgt_rows = sample(table[table["modality"] == target]).sort_values("image_path")
    arrays = prepared.arrays(exp.image_size)
    src = arrays.take(list(src_rows["image_id"])).images
    tgt = arrays.take(list(tgt_rows["image_id"])).images
    out = domain_check.domain_auc(src, list(src_rows["subject_id"].astype(str)), tgt,
                                  list(tgt_rows["subject_id"].astype(str)), *fns,
                                  folds=folds, seed=seed, fov_threshold=fov_threshold)
    out["remedy"] = remedy.name
    return out


# ----------------------------------------------------------------------------- the rules' entry points


def write_domain_auc(exp: Experiment, prepared, diagnostics: dict, out_json) -> None:
    """results/gap/domain/{experiment}.json: the domain AUC before and after the remedy's harmonisation
    ({"remedy": ..., "harmonises": false} when it harmonises nothing). `prepared`: usseg.data.PreparedData."""
    result = domain_auc_of(exp, prepared, int(diagnostics["domain_max_images"]),
                           int(diagnostics["domain_cv_folds"]), int(diagnostics["seed"]))
    if result is None:
        result = {"remedy": exp.remedy.name, "harmonises": False}
    else:
        result = {**result, "harmonises": True}
        for run in ("before", "after"):
            if result[run] is not None:
                result[run] = {k: v for k, v in result[run].items() if k in ("possible", "auc", "ci95", "why")}
    Path(out_json).parent.mkdir(parents=True, exist_ok=True)
    Path(out_json).write_text(json.dumps(result, indent=2, allow_nan=False) + "\n")


def _csv(df: pd.DataFrame, path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)


def write_gap_results(config: dict, eval_dirs: Sequence[Sequence[str]], timings: Mapping[str, str],
                      domain_files: Mapping[str, str], loso_dirs: Mapping[str, str],
                      curve_dirs: Sequence[Sequence[str]], loso_csv, curve_csv, closure_csv, stop_json,
                      closure_json, curve_dice_csv) -> None:
    """results/gap/{loso.csv, learning_curve.csv, gap_closure.csv, when_to_stop.json}, and for DVC's
    metrics and plots gap_closure.json and learning_curve_dice.csv (the same numbers, reshaped).

    eval_dirs: [experiment, test_set, folder] per evaluation of the baseline and the remedies;
    timings: experiment -> timing.csv; domain_files: remedy -> its domain AUC json;
    loso_dirs: held-out subject -> its fold's evaluation folder on the target test set
    (empty when gap_study.loso is off); curve_dirs: [share, test_set, folder].
    """
    study = config["gap_study"]
    baseline = gap_baseline(config)
    remedies = remedy_experiments(config)
    test_sets = list(config["test_sets"])
    dirs = {(e, t): d for e, t, d in eval_dirs}
    seconds = {e: training_seconds(p) for e, p in timings.items()}
    domain = {e: contracts.read_domain_auc(p) for e, p in domain_files.items()}
    closure = gap_closure(baseline, remedies, dirs, test_sets, seconds, domain)
    loso = loso_table(loso_dirs)
    target = contracts.test_set_name(config["dataset"]["target_modality"])
    if len(loso) and (baseline, target) in dirs:
        closure = gap_stats.gap_closure_table([*closure.to_dict("records"),
                                               *loso_rows(loso, subject_scores(dirs[(baseline, target)]), target)])
    closure["n_subjects"] = closure["n_subjects"].astype("Int64")  # a count: no "4.0"; empty where none
    _csv(closure, closure_csv)
    _csv(loso, loso_csv)
    curve = learning_curve_table({(f, t): d for f, t, d in curve_dirs})
    _csv(curve, curve_csv)
    _csv(gap_stats.learning_curve_by_test_set(curve), curve_dice_csv)
    Path(closure_json).write_text(json.dumps(gap_stats.gap_closure_metrics(closure), indent=2, allow_nan=False)
                                  + "\n")
    if target not in test_sets:
        raise DataError(f"gap study: the target test set {target} is not in test_sets ({', '.join(test_sets)}).")
    held_out = ({LOSO_REMEDY: pd.Series(loso["dice"].to_numpy(float), index=loso["held_out_subject"].astype(str))}
                if len(loso) else {})
    stop = when_to_stop(dirs[(baseline, target)], dirs, baseline, remedies, target, study, held_out)
    Path(stop_json).write_text(json.dumps(_finite(stop), indent=2, allow_nan=False) + "\n")


def _finite(obj):
    """JSON-safe: NaN and infinity become null."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
