"""The diagnostics' output files, named by the rule, and writing their JSON (strict, NaN as null)."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np

from usseg.errors import UssegError


@dataclass(frozen=True)
class DiagnosticsOutputs:
    """Where each diagnostics file goes: one field per named output of the `diagnostics` rule.

    The rule (rules/diagnostics.smk) is the one place these paths are named;
    `from_rule` takes them from its outputs, so no check builds a file name.
    """

    checklist: str
    checklist_md: str
    composition: str
    composition_csv: str
    subjects: str
    subjects_csv: str
    frames_per_subject: str
    class_balance: str
    class_balance_csv: str
    class_weights: str
    domain_shift: str
    domain_shift_json: str
    histograms: str
    label_shift: str
    label_shift_csv: str
    label_shift_json: str
    galleries: dict[str, str]  # modality -> label gallery figure
    label_flags: str
    leakage: str
    near_duplicates: str
    baselines: str
    image_quality: str
    image_quality_csv: str

    @classmethod
    def from_rule(cls, output, modalities) -> DiagnosticsOutputs:
        """From the rule's named outputs (snakemake.output); `galleries` lists one figure per modality, in order."""
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if not hasattr(output, n)]
        if missing:
            raise UssegError(f"the diagnostics rule names no output {', '.join(missing)}; "
                             "rules/diagnostics.smk must name every field of DiagnosticsOutputs.")
        values = {n: str(getattr(output, n)) for n in names if n != "galleries"}
        galleries = [str(p) for p in output.galleries] if not isinstance(output.galleries, str) else [output.galleries]
        modalities = list(modalities)
        if len(galleries) != len(modalities):
            raise UssegError(f"the diagnostics rule lists {len(galleries)} label galleries for {len(modalities)} "
                             f"modalities ({', '.join(modalities)}); expand them over dataset.modalities.")
        return cls(**values, galleries=dict(zip(modalities, galleries)))

    def files(self) -> list[str]:
        """Every output path."""
        out = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out += list(value.values()) if isinstance(value, dict) else [value]
        return out


def jsonable(obj):
    """`obj` with numpy scalars and arrays converted and NaN/inf replaced by None."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return float(obj) if math.isfinite(obj) else None
    return obj


def write_json(path, obj) -> None:
    with open(path, "w") as fh:
        json.dump(jsonable(obj), fh, indent=2, allow_nan=False)
        fh.write("\n")
