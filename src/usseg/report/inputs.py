"""The report's input files (named by its rule), reading them with errors that name them, and writing the page."""

from __future__ import annotations

import csv
import dataclasses
import itertools
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from usseg.contracts import DECODE_REPORT
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.errors import UssegError
from usseg.trainability import TrainingPlan

if TYPE_CHECKING:
    from usseg.checks.pipeline import PipelineFiles


class ReportInputError(UssegError):
    """A file the report needs is missing or unreadable."""


def load_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ReportInputError(f"{path}: cannot read it as JSON ({err}); re-run the rule that makes it.") from None


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise ReportInputError(f"{path}: cannot read it as CSV ({err}); re-run the rule that makes it.") from None


def write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# The rule that makes each file of ReportInputs, for the error that names what is missing.
_MADE_BY = "made_by"
# Files the report shows as "not run" (the pipeline checks) or leaves out (timing) when absent.
_OPTIONAL = "optional"


def _field(rule: str, optional: bool = False):
    return field(metadata={_MADE_BY: rule, _OPTIONAL: optional})


@dataclass(frozen=True)
class ReportInputs:
    """The files the report reads: one field per named input of the `report` rule.

    The rule (rules/report.smk) names these paths from the outputs of the rules
    that make them; `from_rule` takes them from its inputs, so no section builds
    a file name. Per-experiment fields map an experiment, per-evaluation fields
    an (experiment, test set) pair, to its file, in config order. The
    diagnostics files come as the diagnostics rule names them (inputs
    `diagnostics_<output name>`), the gap study's as gap_summary names them
    (inputs `gap_<output name>`, none when the study is off).
    """

    results: Path  # the run's folder: its provenance/ records; files are shown relative to it
    diagnostics: DiagnosticsOutputs = _field("diagnostics")
    issues: Path = _field("manifest")  # manifest_issues.csv
    labels: Path = _field("decode_masks")  # the decoded masks' folder, with decode_report.csv
    history: dict[str, Path] = _field("train")
    curves: dict[str, Path] = _field("train")
    timing: dict[str, Path] = _field("train", optional=True)  # seconds per epoch; shown when present
    summaries: dict[tuple[str, str], Path] = _field("evaluate")
    overlays: dict[tuple[str, str], Path] = _field("evaluate")
    confusion: dict[tuple[str, str], Path] = _field("evaluate")
    confusion_csv: dict[tuple[str, str], Path] = _field("evaluate")  # its counts: the dominant error in words
    # The pipeline checks; "NOT RUN" or "not run yet" on the page when absent.
    sanity: dict[str, Path] = _field("sanity_training", optional=True)  # network experiments only
    round_trip: Path = _field("label_round_trip", optional=True)
    nnunet: dict[str, Path] = _field("nnunet_evaluate", optional=True)  # test set -> summary.json, when it runs
    nnunet_info: Path | None = _field("nnunet_train_predict", optional=True)  # reference.json, when it runs
    gap: dict[str, Path] = _field("gap_summary")  # gap_summary's output name -> file; empty when the study is off
    # The final checklist (usseg.verdict: the diagnostics' with the pipeline check); the verdict reads the
    # diagnostics' checklist when the rule names none.
    verdict: Path | None = _field("verdict", optional=True)
    # What this page shows of the run (not files): the experiments it shows (None: every one of the
    # config), whether it shows training at all (false: diagnostics_report), and why parts that train
    # could not run on this data (usseg.trainability).
    experiments: list[str] | None = None
    with_training: bool = True
    plan: TrainingPlan = field(default_factory=TrainingPlan)

    @property
    def decode_report(self) -> Path:
        return self.labels / DECODE_REPORT

    def pipeline_files(self) -> PipelineFiles:
        """The files of the "Pipeline ruled out?" part (usseg.checks.pipeline)."""
        from usseg.checks.pipeline import PipelineFiles

        return PipelineFiles(sanity=self.sanity, round_trip=self.round_trip, nnunet=self.nnunet,
                             nnunet_info=self.nnunet_info, summaries=self.summaries, histories=self.history)

    def required(self) -> list[tuple[Path, str]]:
        """(file, rule that makes it) of every file the report cannot do without."""
        out = []
        for f in dataclasses.fields(self):
            if _MADE_BY not in f.metadata or f.metadata[_OPTIONAL]:
                continue
            value = getattr(self, f.name)
            if f.name == "labels":
                value = self.decode_report
            paths = (value.files() if isinstance(value, DiagnosticsOutputs)
                     else value.values() if isinstance(value, dict) else [] if value is None else [value])
            out += [(Path(p), f.metadata[_MADE_BY]) for p in paths]
        return out

    def missing(self) -> list[str]:
        """Every required file that is not there, with the rule that makes it."""
        return [f"{p} (made by rule {rule})" for p, rule in self.required() if not p.is_file()]

    @classmethod
    def from_rule(cls, named: dict[str, list[str]], config: dict, results: str | os.PathLike,
                  with_training: bool = True) -> ReportInputs:
        """From the report rule's named inputs ({name: [paths]}, usseg.step.named_paths(snakemake.input)).

        Lists expanded over the experiments (and test sets) are mapped in
        `expand`'s order: experiments outer, test sets inner, as in the config;
        the experiments are those this data can train (usseg.trainability, from
        the rule's manifest and splits inputs, as the workflow decided), none
        without training (rule diagnostics_report).
        """
        from usseg.checks.pipeline import sanity_experiments
        from usseg.trainability import plan_of_run

        # Inputs named without the manifest and split (a hand-made set, as in tests) show every experiment.
        plan = (plan_of_run(config, one_of(named, "manifest"), one_of(named, "splits"))
                if "manifest" in named and "splits" in named else TrainingPlan())
        experiments = plan.trained(config["experiments"]) if with_training else []
        sanity = plan.sanity(sanity_experiments(config)) if with_training else []
        test_sets = list(config["test_sets"])

        def files(name: str) -> list[Path]:
            if name not in named:
                raise ReportInputError(f"the report rule names no input {name!r}; rules/report.smk must name "
                                       "every field of usseg.report.ReportInputs.")
            return [Path(p) for p in named[name]]

        def one(name: str) -> Path:
            return one_of(named, name)

        def by(name: str, keys: list, what: str) -> dict:
            paths = files(name)
            if len(paths) != len(keys):
                raise ReportInputError(f"the report rule lists {len(paths)} file(s) as input {name!r} for "
                                       f"{len(keys)} {what}; expand it over {what} (rules/report.smk).")
            return dict(zip(keys, paths))

        def prefixed(prefix: str) -> dict[str, list[str]]:
            return {k[len(prefix):]: v for k, v in named.items() if k.startswith(prefix)}

        diag = prefixed("diagnostics_")
        modalities = list(config["dataset"]["modalities"])
        # DiagnosticsOutputs.from_rule reads the names as attributes, one path each (galleries: a list).
        single = SimpleNamespace(**{k: v if k == "galleries" else v[0] for k, v in diag.items()})
        pairs = list(itertools.product(experiments, test_sets))
        nnunet = files("nnunet")
        info = files("nnunet_info")
        return cls(
            results=Path(results),
            diagnostics=DiagnosticsOutputs.from_rule(single, modalities),
            issues=one("issues"),
            labels=one("labels"),
            history=by("history", experiments, "experiments"),
            curves=by("curves", experiments, "experiments"),
            timing=by("timing", experiments, "experiments"),
            summaries=by("summaries", pairs, "experiments x test sets"),
            overlays=by("overlays", pairs, "experiments x test sets"),
            confusion=by("confusion", pairs, "experiments x test sets"),
            confusion_csv=by("confusion_csv", pairs, "experiments x test sets"),
            sanity=by("sanity", sanity, "network experiments"),
            round_trip=one("round_trip"),
            nnunet=by("nnunet", test_sets, "test sets") if nnunet else {},
            nnunet_info=one("nnunet_info") if info else None,
            gap={k: Path(v[0]) for k, v in prefixed("gap_").items() if v},
            verdict=one("verdict") if named.get("verdict") else None,
            experiments=experiments,
            with_training=with_training,
            plan=plan,
        )


def one_of(named: dict[str, list[str]], name: str) -> Path:
    """The one file of the report rule's named input `name`."""
    paths = named.get(name)
    if paths is None:
        raise ReportInputError(f"the report rule names no input {name!r}; rules/report.smk must name "
                               "every field of usseg.report.ReportInputs.")
    if len(paths) != 1:
        raise ReportInputError(f"the report rule lists {len(paths)} files as input {name!r}; "
                               "it takes one (rules/report.smk).")
    return Path(paths[0])
