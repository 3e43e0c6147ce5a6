"""The gap study's orchestration: its arms, their files, and its result tables (docs/remedies.md).

The study trains ARMS, each with `gap_study.seeds` seeds (the experiment's seed
+ 0 .. seeds - 1), and compares them on the same test subjects:

- `baseline`: the baseline experiment's settings (`gap_study.baseline`); its
  seed offset 0 is the baseline experiment itself (same settings, same seed),
  whose training and evaluation tables are reused, not repeated;
- `remedy_<key>`: the baseline's settings with `gap_study.remedies.<key>.settings`
  on top (`arm_experiment`); a remedy that acts at prediction only
  (spec.PREDICTION_ONLY: bn_adapt) is evaluated on the baseline arm's models;
- `loso_<subject>`: the baseline trained on the simulator plus all but one
  labeled real subject, scored on the held-out one;
- `curve_<share>`: the baseline trained on a share of the simulator's training
  subjects (the whole share is the baseline arm).

Per arm and seed offset k the files are `results/gap/arms/{arm}/seed{k}/`
(usseg.gap.files, the one owner of that layout): model.safetensors, history.csv,
timing.csv and eval/{test_set}/{per_subject.csv, per_image.csv, summary.json};
usseg.gap.arms trains and evaluates an arm's seeds. The result tables
(`write_gap_results`): gap_closure.csv (paired deltas with seeds included,
usseg.remedies.gap_stats.seeded_delta), seed_effects.csv, loso.csv,
learning_curve.csv, when_to_stop.json (one entry per kind of change), and for
DVC gap_closure.json and learning_curve_dice.csv (docs/dvc.md).
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
from usseg.gap.files import ARM_TRAINING_FILES, EVAL_FILES, eval_dir, seed_dir
from usseg.remedies import gap_stats, spec
from usseg.remedies.spec import LOSO_REMEDY, gap_baseline

# usseg.data (MONAI, torch) is imported inside the functions that read images:
# the rules import this module at every Snakemake start-up.

# The two per-subject scores of the study: column of gap_closure.csv's `metric`
# -> the per-class column prefix in per_subject.csv.
METRICS = {"dice": "dice", "surface_dice": "nsd"}

BASELINE_ARM = "baseline"
ARM_KINDS = ("baseline", "remedy", "loso", "curve")


# ----------------------------------------------------------------------------- the arms


def study(config: Mapping) -> spec.GapStudy:
    return spec.parse_gap_study(config.get("gap_study"))


def seed_offsets(config: Mapping) -> list[int]:
    """The seed offsets every arm is trained with: 0 .. gap_study.seeds - 1."""
    return list(range(study(config).seeds))


def share_name(fraction) -> str:
    """A learning-curve share as a wildcard value and file name: 0.25 -> '0.25', 1.0 -> '1'."""
    return f"{float(fraction):g}"


def fraction_names(config: Mapping) -> list[str]:
    """The learning curve's shares as wildcard values ('0.25', '0.5', '1')."""
    return [share_name(f) for f in study(config).learning_curve_fractions]


def remedy_arm(key: str) -> str:
    return f"remedy_{key}"


def loso_arm(subject: str) -> str:
    return f"loso_{subject}"


def curve_arm(fraction: str) -> str:
    """A learning-curve share's arm; the whole share is the baseline arm itself (same split, settings, seeds)."""
    return BASELINE_ARM if float(fraction) == 1.0 else f"curve_{fraction}"


def arm_kind(arm: str) -> tuple[str, str]:
    """(kind, key): ('baseline', ''), ('remedy', key), ('loso', subject) or ('curve', share)."""
    if arm == BASELINE_ARM:
        return BASELINE_ARM, ""
    kind, sep, key = arm.partition("_")
    if not sep or kind not in ARM_KINDS[1:] or not key:
        raise ValueError(f"{arm!r} is not a gap-study arm (baseline, remedy_<key>, loso_<subject>, curve_<share>)")
    return kind, key


def fixed_arms(config: Mapping) -> list[str]:
    """The arms known before the data are split: the baseline, each remedy, each learning-curve share below 1
    (the LOSO arms follow from the labeled real subjects, rules/gap.smk's checkpoint)."""
    shares = [curve_arm(f) for f in fraction_names(config)]
    return [BASELINE_ARM, *[remedy_arm(r.key) for r in study(config).remedies],
            *[a for a in shares if a != BASELINE_ARM]]


def baseline_experiment(config: Mapping) -> Experiment:
    return Experiment.from_config(config, gap_baseline(config))


def arm_baseline(config: Mapping) -> Experiment:
    """What every arm starts from: the baseline experiment's settings with gap_study.arm_settings laid over
    them (the baseline experiment itself when there are none)."""
    base = baseline_experiment(config)
    extra = study(config).arm_settings
    return base.overlaid(extra, base.name) if extra else base


def arm_experiment(config: Mapping, arm: str) -> Experiment:
    """The arm's resolved settings (at the experiment's own seed; `seed_experiment` sets each seed's)."""
    kind, key = arm_kind(arm)
    base = arm_baseline(config)
    if kind == "remedy":
        remedies = {r.key: r for r in study(config).remedies}
        if key not in remedies:
            raise ValueError(f"gap study: no remedy {key!r} in gap_study.remedies ({', '.join(remedies)})")
        return base.overlaid(remedies[key].settings, arm)
    if kind == "loso":
        target = config["dataset"]["target_modality"]
        mods = list(base.train_modalities)
        return base.with_settings(name=arm, train_modalities=mods + [target] * (target not in mods))
    return base.with_settings(name=arm)


def trains_like_baseline(config: Mapping, arm: str) -> bool:
    """Whether the arm's trainings are the baseline arm's: a remedy that differs from the baseline only by a
    prediction-only remedy (spec.PREDICTION_ONLY) trains exactly the same models, so it is evaluated on them."""
    kind, _ = arm_kind(arm)
    if kind != "remedy":
        return False
    exp, base = arm_experiment(config, arm), arm_baseline(config)
    if exp.remedy.name not in spec.PREDICTION_ONLY or base.remedy.name != "none":
        return False
    drop = ("name", "remedy")
    return {k: v for k, v in exp.settings.items() if k not in drop} == \
        {k: v for k, v in base.settings.items() if k not in drop}


def experiment_like(config: Mapping, arm: str) -> str | None:
    """The experiment of the run whose settings are the arm's at seed offset 0, if any (the baseline experiment
    for the baseline arm; e.g. a class-weights experiment for a class-weights remedy). Only the baseline and
    remedy arms qualify: LOSO folds and learning-curve shares train on other splits."""
    if arm_kind(arm)[0] not in (BASELINE_ARM, "remedy"):
        return None
    settings = {k: v for k, v in arm_experiment(config, arm).settings.items() if k != "name"}
    for name in config["experiments"]:
        other = Experiment.from_config(config, name).settings
        if {k: v for k, v in other.items() if k != "name"} == settings:
            return name
    return None


def reuse_plan(config: Mapping, arm: str, experiment_dirs: str, arm_dirs: str) -> tuple[dict, dict]:
    """(trained_in, evaluated_in) of usseg.gap.arms.run_arm: seed offset -> the folder whose training
    (resp. evaluation tables) the arm copies instead of repeating them.

    A prediction-only remedy copies every seed's training from the baseline arm (`trains_like_baseline`);
    an arm with an experiment's settings copies that experiment's training and evaluation as its seed
    offset 0 (`experiment_like`). experiment_dirs, arm_dirs: the folder templates with {experiment}, {arm}.
    """
    trained, evaluated = {}, {}
    if trains_like_baseline(config, arm):
        trained = {k: seed_dir(arm_dirs.format(arm=BASELINE_ARM), k) for k in seed_offsets(config)}
    same = experiment_like(config, arm)
    if same is not None:
        trained[0] = evaluated[0] = experiment_dirs.format(experiment=same)
    return trained, evaluated


def reused_files(trained_in: Mapping[int, str], evaluated_in: Mapping[int, str], test_sets: Sequence[str]
                 ) -> list[str]:
    """The files a reuse plan copies (the arm's job reads them)."""
    files = [f"{folder}/{name}" for folder in trained_in.values() for name in ARM_TRAINING_FILES]
    return files + [f"{eval_dir(folder, t)}/{name}" for folder in evaluated_in.values() for t in test_sets
                    for name in EVAL_FILES]


def remedy_titles(config: Mapping) -> dict[str, str]:
    """gap_closure.csv's remedy name -> its human name (spec.gap_remedy_titles)."""
    return spec.gap_remedy_titles(config)


# ----------------------------------------------------------------------------- split tables


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


def subject_scores(eval_folder) -> pd.DataFrame:
    """One row per test subject of one evaluation: subject_id, n_images, dice, surface_dice.

    Each is the subject's term of the class-macro mean over the classes of the evaluation's composite
    (summary.json mean_foreground.classes; usseg.composite.subject_terms): their mean over subjects is the
    evaluation's class-macro mean, so a paired change here is a change in the composite the report shows.
    """
    eval_folder = Path(eval_folder)
    summary_path, table_path = eval_folder / "summary.json", eval_folder / "per_subject.csv"
    summary = contracts.read_summary(summary_path)
    classes = (summary.get("mean_foreground") or {}).get("classes")
    if not isinstance(classes, list):
        raise DataError(f"{summary_path} lacks mean_foreground.classes (docs/contracts.md); re-run the evaluation.")
    table = contracts.read_per_subject(table_path)
    out = table[contracts.PER_SUBJECT_KEY_COLUMNS].copy()
    out["subject_id"] = out["subject_id"].astype(str)
    for metric, prefix in METRICS.items():
        cols = [f"{prefix}_{c}" for c in classes]
        missing = [c for c in cols if c not in table.columns]
        if missing:
            raise DataError(f"{table_path}: column(s) {', '.join(missing)} missing; re-run the evaluation.")
        out[metric] = composite.subject_terms(table[cols].astype(float)).to_numpy()
    return out


def arm_scores(seed_folders: Sequence[str | Path], test_set: str) -> dict[str, pd.DataFrame]:
    """One arm's scores on one test set: metric -> subjects x seed offsets (columns 0 .. S-1)."""
    per_seed = [subject_scores(eval_dir(folder, test_set)).set_index("subject_id") for folder in seed_folders]
    subjects = sorted(set().union(*(set(s.index) for s in per_seed))) if per_seed else []
    for folder, s in zip(seed_folders, per_seed):
        if set(s.index) != set(subjects):
            raise DataError(f"{eval_dir(folder, test_set)}: scores other subjects than the arm's other seeds; "
                            "re-run the arm (all its seeds evaluate the same test subjects).")
    return {metric: pd.DataFrame({k: s[metric].reindex(subjects) for k, s in enumerate(per_seed)}, index=subjects)
            for metric in METRICS}


def training_seconds(timing_csv) -> float:
    """The training's seconds: the sum over its epochs in timing.csv."""
    return float(contracts.read_timing(timing_csv)["seconds"].sum())


# ----------------------------------------------------------------------------- result tables


def loso_scores(fold_seed_folders: Mapping[str, Sequence[str | Path]], target_test_set: str
                ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """LOSO's held-out scores: (loso.csv, metric -> held-out subjects x seeds).

    fold_seed_folders: held-out subject -> its arm's seed folders; each fold scores its held-out subject only.
    """
    rows, matrices = [], {m: {} for m in METRICS}
    for held, folders in sorted(fold_seed_folders.items()):
        per_seed = []
        for folder in folders:
            scores = subject_scores(eval_dir(folder, target_test_set))
            own = scores[scores["subject_id"] == str(held)]
            if len(own) != 1:
                raise DataError(f"{eval_dir(folder, target_test_set)}: the held-out subject {held!r} is not the one "
                                "subject scored there.")
            per_seed.append(own.iloc[0])
        row = {"held_out_subject": held, "n_images": int(per_seed[0]["n_images"]), "n_seeds": len(per_seed)}
        for metric in METRICS:
            values = np.array([float(s[metric]) for s in per_seed])
            matrices[metric][str(held)] = values
            with np.errstate(all="ignore"):
                row[metric] = float(np.nanmean(values))
                row[f"{metric}_seed_sd"] = float(np.nanstd(values, ddof=1)) if len(values) >= 2 else math.nan
        rows.append(row)
    tables = {m: pd.DataFrame.from_dict(v, orient="index") for m, v in matrices.items()}
    return pd.DataFrame(rows, columns=LOSO_COLUMNS), tables


def learning_curve_table(curve_folders: Mapping[str, Sequence[str | Path]], test_sets: Sequence[str]
                         ) -> pd.DataFrame:
    """learning_curve.csv: per test set and metric, one row per share (level) with a seeds-included interval
    over test subjects and the step from the previous share. curve_folders: share -> its arm's seed folders."""
    long = []
    for fraction, folders in curve_folders.items():
        for test_set in test_sets:
            for metric, table in arm_scores(folders, test_set).items():
                stacked = table.rename_axis("subject").reset_index().melt(
                    id_vars="subject", var_name="seed", value_name="value")
                long.append(stacked.assign(test_set=test_set, metric=metric, fraction=float(fraction)))
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


def _seconds_row(remedy: str, base_seconds: Sequence[float], arm_seconds: Sequence[float]) -> dict:
    """train_seconds: each arm's mean over its seeds; seed_sd: SD over seed offsets of the difference."""
    diff = np.asarray(arm_seconds, float) - np.asarray(base_seconds, float)
    return gap_stats.scalar_row(remedy, "all", "train_seconds", float(np.mean(base_seconds)),
                                float(np.mean(arm_seconds)), n_seeds=len(diff),
                                seed_sd=float(np.std(diff, ddof=1)) if len(diff) >= 2 else math.nan)


def gap_closure(arm_folders: Mapping[str, Sequence[str | Path]], remedies: Sequence[str], test_sets: Sequence[str],
                domain: Mapping[str, Mapping] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(gap_closure.csv, seed_effects.csv): each remedy's arm against the baseline arm, paired over the test
    subjects of each test set, seeds included (gap_stats.seeded_delta).

    arm_folders: arm -> its seed folders (BASELINE_ARM and remedy_<key> for each key in `remedies`);
    domain: remedy key -> its domain_auc result (usseg.remedies.domain_check), where it harmonises images.
    """
    rows, effects = [], []
    base_folders = arm_folders[BASELINE_ARM]
    for test_set in test_sets:
        base = arm_scores(base_folders, test_set)
        for remedy in remedies:
            scores = arm_scores(arm_folders[remedy_arm(remedy)], test_set)
            for metric in METRICS:
                comparison = gap_stats.seeded_delta(base[metric], scores[metric])
                rows.append(gap_stats.gap_closure_row(remedy, test_set, metric, comparison))
                effects += gap_stats.seed_effect_rows(remedy, test_set, metric, comparison, base[metric],
                                                      scores[metric])
    base_seconds = [training_seconds(f"{f}/timing.csv") for f in base_folders]
    for remedy in remedies:
        seconds = [training_seconds(f"{f}/timing.csv") for f in arm_folders[remedy_arm(remedy)]]
        rows.append(_seconds_row(remedy, base_seconds, seconds))
        result = (domain or {}).get(remedy)
        if result and result.get("after") and result["after"].get("possible") and result["before"].get("possible"):
            rows.append(gap_stats.scalar_row(remedy, "all", "domain_auc", result["before"]["auc"],
                                             result["after"]["auc"]))
    return gap_stats.gap_closure_table(rows), gap_stats.seed_effect_table(effects)


def _kind_entry(kind: str, n: int, sd_subject: float, df: float, sd_seed: float, n_seeds: int, source: str,
                study_settings: Mapping) -> dict:
    result = gap_stats.when_to_stop_kind(n, sd_subject, df, sd_seed, n_seeds, float(study_settings["change_to_detect"]),
                                         float(study_settings["alpha"]), float(study_settings["power"]))
    result["sd_source"] = source
    result["text"] = gap_stats.when_to_stop_kind_text(kind, result)
    return result


def when_to_stop(baseline: pd.DataFrame, remedies: Mapping[str, gap_stats.SeededDelta],
                 loso: gap_stats.SeededDelta | None, target_test_set: str, study_settings: Mapping) -> dict:
    """"When to stop" on the real test set's Dice, per kind of change (gap_stats.when_to_stop_kind).

    baseline: the baseline arm's Dice there (subjects x seeds); remedies: remedy key -> its comparison with
    the baseline there; loso: LOSO's comparison (None when it did not run). Each kind is sized with its
    own spread: a remedy with the remedies' (pooled over them, the seeds' too), adding real subjects with
    LOSO's. Their spreads differ by a factor that can reach 10 (issue 26), so they are never pooled.
    With no remedy measured, the remedy kind falls back on the baseline's between-subject SD at an
    assumed correlation of 0.5 between two models (gap_stats.sd_of_differences) and on the baseline's
    between-seed SD for each of two arms; `sd_source` says so.
    """
    at = gap_stats.seeded_mean(baseline)
    n, n_seeds = at["n_subjects"], at["n_seeds"]
    measured = [d for d in remedies.values() if d.n_subjects >= 2]
    if measured:
        sd_seed, seeds = gap_stats.pooled_seed_sd(measured)
        remedy = (gap_stats.pooled_sd(measured), max(d.n_subjects for d in measured) - 1, sd_seed, seeds,
                  f"pooled over the {len(measured)} remedies measured on {target_test_set} (per-subject differences "
                  "of seed-averaged Dice, and the per-seed effects); its interval has the degrees of freedom of one "
                  "comparison, as every remedy is paired on the same subjects")
    else:
        with np.errstate(all="ignore"):
            subject_means = np.nanmean(baseline.to_numpy(float), axis=1)
        between = float(np.nanstd(subject_means, ddof=1)) if n >= 2 else math.nan
        remedy = (gap_stats.sd_of_differences(between), n - 1, math.sqrt(2) * at["seed_sd"], n_seeds,
                  "no remedy measured: the baseline's between-subject SD, assuming a correlation of 0.5 between two "
                  "models, and its between-seed SD for each of two arms")
    kinds = {"remedy": _kind_entry("remedy", n, *remedy, study_settings)}
    if loso is not None:
        kinds["real_subjects"] = _kind_entry(
            "real_subjects", loso.n_subjects, loso.sd_subject, loso.n_subjects - 1, loso.seed_sd, loso.n_seeds,
            f"leave one subject out on {target_test_set}: each held-out subject's Dice against the baseline's", study_settings)
    return {"test_set": target_test_set, "metric": "dice", "n_subjects": n, "n_seeds": n_seeds,
            "alpha": float(study_settings["alpha"]), "power": float(study_settings["power"]),
            "change": float(study_settings["change_to_detect"]), "kinds": kinds,
            "text": " ".join(entry["text"] for entry in kinds.values())}


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
    """results/gap/domain/{remedy}.json: the domain AUC before and after the remedy's harmonisation
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


def _counts(df: pd.DataFrame, columns: Sequence[str]) -> pd.DataFrame:
    for col in columns:
        if col in df.columns:
            df[col] = df[col].astype("Int64")  # a count: no "4.0"; empty where none
    return df


def _loso_comparisons(base_target: Mapping[str, pd.DataFrame], loso_tables: Mapping[str, pd.DataFrame],
                      target: str) -> dict[str, gap_stats.SeededDelta]:
    """metric -> LOSO's held-out scores against the baseline arm's on the same subjects (the baseline saw no
    real label): the comparison of "adding real labels"."""
    missing = sorted(set(loso_tables["dice"].index) - set(base_target["dice"].index))
    if missing:
        raise DataError(f"gap study: held-out subject(s) {', '.join(missing)} are not in the baseline's "
                        f"{target} evaluation; LOSO and baseline must share the real test subjects.")
    return {m: gap_stats.seeded_delta(base_target[m].loc[t.index], t) for m, t in loso_tables.items()}


def write_gap_results(study_block: Mapping, test_sets: Sequence[str], target: str, arm_dirs: Mapping[str, str],
                      domain_files: Mapping[str, str], outputs: Mapping[str, str]) -> None:
    """results/gap/{gap_closure.csv, seed_effects.csv, loso.csv, learning_curve.csv, when_to_stop.json}, and for
    DVC's metrics and plots gap_closure.json and learning_curve_dice.csv (the same numbers, reshaped).

    study_block: config's gap_study; target: the real test set (test_{target_modality}); arm_dirs: arm ->
    its folder (results/gap/arms/{arm}), for the baseline, every remedy, every learning-curve share below 1
    and every LOSO fold (none when gap_study.loso is off); domain_files: remedy key -> its domain AUC json;
    outputs: the gap_summary rule's outputs by name.
    """
    settings = spec.parse_gap_study(study_block)
    remedies = [r.key for r in settings.remedies]
    if target not in test_sets:
        raise DataError(f"gap study: the target test set {target} is not in test_sets ({', '.join(test_sets)}).")
    folders = {arm: [seed_dir(d, k) for k in range(settings.seeds)] for arm, d in arm_dirs.items()}
    closure, effects = gap_closure(folders, remedies, test_sets,
                                   {r: contracts.read_domain_auc(p) for r, p in domain_files.items()})
    loso, loso_tables = loso_scores({arm_kind(a)[1]: f for a, f in folders.items() if arm_kind(a)[0] == "loso"},
                                    target)
    base_target = arm_scores(folders[BASELINE_ARM], target)
    loso_deltas = _loso_comparisons(base_target, loso_tables, target) if len(loso) else {}
    if loso_deltas:
        closure = gap_stats.gap_closure_table(
            [*closure.to_dict("records"),
             *[gap_stats.gap_closure_row(LOSO_REMEDY, target, m, d) for m, d in loso_deltas.items()]])
        effects = gap_stats.seed_effect_table(
            [*effects.to_dict("records"),
             *[row for m, d in loso_deltas.items() for row in gap_stats.seed_effect_rows(
                 LOSO_REMEDY, target, m, d, base_target[m].loc[loso_tables[m].index], loso_tables[m])]])
    _csv(_counts(closure, ("n_subjects", "n_seeds")), outputs["gap_closure"])
    _csv(effects, outputs["seed_effects"])
    _csv(_counts(loso, ("n_images", "n_seeds")), outputs["loso"])
    fractions = [share_name(f) for f in settings.learning_curve_fractions]
    curve = learning_curve_table({f: folders[curve_arm(f)] for f in fractions}, test_sets)
    _csv(curve, outputs["learning_curve"])
    _csv(gap_stats.learning_curve_by_test_set(curve), outputs["learning_curve_dice"])
    Path(outputs["gap_closure_json"]).write_text(
        json.dumps(gap_stats.gap_closure_metrics(closure), indent=2, allow_nan=False) + "\n")
    remedy_deltas = {r: gap_stats.seeded_delta(base_target["dice"], arm_scores(folders[remedy_arm(r)], target)["dice"])
                     for r in remedies}
    stop = when_to_stop(base_target["dice"], remedy_deltas, loso_deltas.get("dice"), target,
                        {"change_to_detect": settings.change_to_detect, "alpha": settings.alpha,
                         "power": settings.power})
    Path(outputs["when_to_stop"]).write_text(json.dumps(_finite(stop), indent=2, allow_nan=False) + "\n")


def _finite(obj):
    """JSON-safe: NaN and infinity become null (in lists too)."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
