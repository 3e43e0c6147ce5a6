"""One human name for every experiment, remedy, test set and class, and words for table columns.

The report and the gap study's sentences call a thing by one name everywhere,
with its config key in small type beside it. The names a user may want to
choose live in config.yaml (`report.names`); what is not named there is
derived here: a test set from its modality and domain ("RUS test set
(real)"), a gap-study remedy from its title (gap_study.remedies.<key>.title,
and leave-one-subject-out's built-in one: usseg.remedies.spec.gap_remedy_titles),
anything else shows as its key. `COLUMNS` turns the
column names of the run's CSV and JSON files into words for table headers.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from usseg import contracts
from usseg.remedies.spec import gap_remedy_titles

# Words for a domain in a name ("real", "simulator"): what a reader calls them.
DOMAIN_WORDS = {"synthetic": "simulator", "real": "real"}


@dataclass(frozen=True)
class Name:
    """A thing's human name and its config key (shown in small type when it differs)."""

    text: str
    key: str

    def __str__(self) -> str:
        return self.text

    @property
    def differs(self) -> bool:
        return self.text != self.key


class Names:
    """The names of one run's experiments, remedies, test sets and classes (config: the run's full config)."""

    def __init__(self, config: Mapping):
        self.config = config
        names = (config.get("report") or {}).get("names") or {}
        self._experiments = dict(names.get("experiments") or {})
        self._test_sets = dict(names.get("test_sets") or {})
        self._classes = dict(names.get("classes") or {})
        # report.names.remedies renames a remedy in the report only (over its gap_study title).
        self._remedies = {**gap_remedy_titles(config), **dict(names.get("remedies") or {})}

    def experiment(self, key: str) -> Name:
        return Name(str(self._experiments.get(key, key)), str(key))

    def remedy(self, key: str) -> Name:
        """A remedy of the gap study by its title (report.names.remedies over gap_study.remedies.<key>.title)."""
        if key in self._remedies:
            return Name(str(self._remedies[key]), str(key))
        return self.experiment(key)

    def test_set(self, key: str) -> Name:
        if key in self._test_sets:
            return Name(str(self._test_sets[key]), str(key))
        modality, domain = self.test_set_domain(key)
        if modality is None:
            return Name(str(key), str(key))
        return Name(f"{modality} test set ({DOMAIN_WORDS.get(domain, domain)})", str(key))

    def test_set_domain(self, key: str) -> tuple[str | None, str | None]:
        """(modality, domain) of a test set named after its modality (test_rus -> RUS, real)."""
        for m, spec in ((self.config.get("dataset") or {}).get("modalities") or {}).items():
            if key == contracts.test_set_name(m):
                return str(m), spec.get("domain")
        return None, None

    def class_(self, key: str) -> Name:
        return Name(str(self._classes.get(key, key)), str(key))

    def modality(self, key: str) -> str:
        """A modality with its domain: "RUS (real)"."""
        spec = ((self.config.get("dataset") or {}).get("modalities") or {}).get(key) or {}
        domain = spec.get("domain")
        return f"{key} ({DOMAIN_WORDS.get(domain, domain)})" if domain else str(key)


# Words for the columns of the run's files (CSV columns and JSON keys shown as tables).
COLUMNS = {
    # composition.csv, subjects.csv, frames_per_subject.csv
    "modality": "modality", "domain": "domain", "orig_split": "original split", "labeled": "labeled images",
    "unlabeled": "unlabeled images", "total": "images", "split": "split", "n_subjects": "subjects",
    "n_labeled_subjects": "labeled subjects", "n_images": "images", "n_labeled_images": "labeled images",
    "subject_id": "subject", "n_frames": "frames", "n_labeled_frames": "labeled frames", "splits": "splits",
    "orig_splits": "original splits",
    # class_balance.csv
    "class": "class", "pixels": "labeled pixels", "pixel_share": "share of all labeled pixels",
    "foreground_share": "share of organ pixels", "n_images_with_class": "images with the class",
    "image_share": "share of labeled images", "never_labeled": "never labeled", "rare": "rare",
    # image_quality.csv
    "image_id": "image", "fov_fraction": "field of view (share of frame)", "p5": "5th percentile grey",
    "p95": "95th percentile grey", "sharpness": "sharpness", "sharpness_ratio": "sharpness / modality median",
    "entropy_bits": "grey-level entropy (bits)", "dark": "dark", "over_bright": "over-bright", "blurry": "blurry",
    "low_information": "low information", "flags": "flags",
    # manifest_issues.csv, decode_report.csv, label_flags.csv
    "path": "file", "reason": "reason", "detail": "detail", "mask_path": "mask file",
    "off_palette_fraction": "off-palette share", "far_fraction": "share far from the palette",
    "max_distance": "largest colour distance", "classes_present": "classes present", "flagged": "flagged",
    "flag_reason": "why flagged", "flag": "flag",
    # near_duplicates.csv
    "image_id_a": "image A", "subject_a": "subject A", "modality_a": "modality A", "split_a": "split A",
    "image_id_b": "image B", "subject_b": "subject B", "modality_b": "modality B", "split_b": "split B",
    "hamming": "hash distance (bits)", "correlation": "thumbnail correlation", "identical_file": "identical file",
    "spans_train_test": "train and test",
    # label_shift.csv
    "n_images_present": "images with the class", "presence_share": "share of images with the class",
    "n_subjects_present": "subjects with the class", "area_fov_share_median": "area, median (share of view)",
    "area_fov_share_q25": "area, 25th percentile", "area_fov_share_q75": "area, 75th percentile",
    "depth_median": "depth, median (0 = top)", "lateral_median": "lateral position, median",
    # baselines.csv
    "source": "source", "test_set": "test set", "metric": "metric", "value": "value",
    "measured_on": "measured on", "comparable": "comparable with this run", "note": "note",
    # domain_shift.json: intensity statistics and distances
    "n_pixels": "pixels", "mean": "mean", "std": "standard deviation", "p25": "25th percentile",
    "p50": "median", "p75": "75th percentile", "ks_statistic": "Kolmogorov-Smirnov statistic",
    "wasserstein1_grey_levels": "Wasserstein-1 distance (grey levels)",
    "js_divergence_bits": "Jensen-Shannon divergence (bits)",
    # gap_closure.csv
    "remedy": "remedy", "baseline": "baseline", "delta": "change", "ci_lo": "95 % interval, low",
    "ci_hi": "95 % interval, high",
    # generic
    "key": "what", "weight": "weight",
}


def column(name: str) -> str:
    """A column of the run's files in words: from COLUMNS, else its name with spaces for underscores."""
    if name in COLUMNS:
        return COLUMNS[name]
    text = str(name).replace("_", " ")
    return "number of " + text[2:] if text.startswith("n ") else text
