"""Check 6: nothing of a test set may be seen in training.

Confirms from splits.csv that no subject and no identical file (sha256) sits
in two of train, val and the test sets, and looks for near-duplicate images
across subjects with a 64-bit difference hash: the same frame exported twice
under two names, or a slightly altered copy, leaks as surely as a shared
subject and is invisible to a subject-grouped split.

A 64-bit perceptual hash finds the candidates (Hamming distance at most
`near_duplicate_hamming`); because every frame of one scanner shares the
fan's outline, a candidate counts only when the anatomy inside the fan
matches too (thumbnail correlation at least `near_duplicate_min_correlation`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from usseg.contracts import is_evaluation_split
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.outputs import DiagnosticsOutputs, write_json
from usseg.diagnostics.status import FAIL, PASS, WARN, CheckResult
from usseg.diagnostics.survey import Survey, thumbnail_correlation

TRAIN_SIDE = {"train", "val"}
PAIR_COLUMNS = [
    "image_id_a",
    "subject_a",
    "modality_a",
    "split_a",
    "image_id_b",
    "subject_b",
    "modality_b",
    "split_b",
    "hamming",
    "correlation",
    "identical_file",
    "spans_train_test",
]


def _is_test(split: str) -> bool:
    return split.startswith("test")


def spans_train_test(a: str, b: str) -> bool:
    return (a in TRAIN_SIDE and _is_test(b)) or (b in TRAIN_SIDE and _is_test(a))


def subjects_in_several_splits(images: pd.DataFrame) -> dict[str, list[str]]:
    """Subject -> the evaluation splits (train, val, test_*) it appears in, for subjects in more than one."""
    ev = images[images["split"].map(is_evaluation_split)]
    per = ev.groupby("subject_id")["split"].agg(lambda s: sorted(set(s)))
    return {subj: splits for subj, splits in per.items() if len(splits) > 1}


def identical_files_across_splits(images: pd.DataFrame) -> list[dict]:
    """Groups of images with the same sha256 that sit in more than one evaluation split."""
    ev = images[images["split"].map(is_evaluation_split) & (images["sha256"].str.len() > 0)]
    out = []
    for sha, grp in ev.groupby("sha256"):
        if grp["split"].nunique() > 1:
            out.append(
                {
                    "sha256": sha,
                    "image_ids": grp["image_id"].tolist(),
                    "splits": sorted(set(grp["split"])),
                }
            )
    return out


def _popcount_rows(x: np.ndarray) -> np.ndarray:
    """Set bits per uint64 element."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2.0
        return np.bitwise_count(x).astype(np.int64)
    return np.unpackbits(x.view(np.uint8).reshape(*x.shape, 8), axis=-1).sum(axis=-1)


def near_duplicate_pairs(
    hashes: np.ndarray, subjects: np.ndarray, max_distance: int, block: int = 512
):
    """(i, j, distance) for i < j with Hamming distance <= max_distance and a different subject."""
    pairs = []
    n = len(hashes)
    if n == 0:
        return pairs
    h = np.ascontiguousarray(hashes, dtype=np.uint8).view(">u8").astype(np.uint64).ravel()
    for start in range(0, n, block):
        stop = min(start + block, n)
        dist = _popcount_rows(np.bitwise_xor(h[start:stop, None], h[None, :]))
        ii, jj = np.nonzero(dist <= max_distance)
        gi = ii + start
        keep = (jj > gi) & (subjects[gi] != subjects[jj])
        pairs.extend(zip(gi[keep].tolist(), jj[keep].tolist(), dist[ii[keep], jj[keep]].tolist()))
    return pairs


def check_leakage(inputs: DiagnosticInputs, survey: Survey, outputs: DiagnosticsOutputs) -> CheckResult:
    """Check 6 (module docstring): writes near_duplicates.csv and leakage.json; FAIL on a shared subject,
    an identical file across splits or a near duplicate spanning train and test, WARN on other near
    duplicates across subjects."""
    max_d = int(inputs.opt("near_duplicate_hamming", 4))
    min_corr = float(inputs.opt("near_duplicate_min_correlation", 0.95))
    shared = subjects_in_several_splits(inputs.images)
    same_files = identical_files_across_splits(inputs.images)
    pairs, n_candidates = confirmed_near_duplicates(
        inputs.images, survey, max_d, min_corr, int(inputs.opt("fov_threshold", 12))
    )
    pairs.to_csv(outputs.near_duplicates, index=False)
    n_pairs = len(pairs)
    n_cross = int(pairs["spans_train_test"].sum())

    report = {
        "subjects_in_several_splits": shared,
        "identical_files_across_splits": same_files,
        "near_duplicates": {
            "hash": "64-bit perceptual hash (DCT pHash) of the grey image",
            "max_hamming": max_d,
            "confirmation": f"correlation >= {min_corr} of 64x64 thumbnails inside both fields of view",
            "hash_candidates_across_subjects": n_candidates,
            "pairs_across_subjects": n_pairs,
            "pairs_spanning_train_and_test": n_cross,
            "subjects_involved": sorted(set(pairs["subject_a"]) | set(pairs["subject_b"])),
        },
        "images_hashed": len(survey.image_ids),
        "unreadable_images": survey.unreadable,
    }
    write_json(outputs.leakage, report)

    if shared or same_files or n_cross:
        status = FAIL
    elif n_pairs:
        status = WARN
    else:
        status = PASS
    if status == PASS:
        reason = (
            f"no subject and no identical file in two of train, val and the test sets; no near-duplicate images "
            f"across subjects among {len(survey.image_ids)} images (pHash Hamming <= {max_d} confirmed by thumbnail "
            f"correlation >= {min_corr}; {n_candidates} hash match(es) rejected)."
        )
    else:
        reason = "; ".join(_problems(shared, same_files, pairs, max_d, min_corr)) + "."
        if status == FAIL:
            reason += " Test scores would be optimistic: fix the split (or drop the duplicates) before evaluating."
        else:
            reason += " Check near_duplicates.csv: the same frame under two subjects suggests mislabeled subject ids."
    if survey.unreadable:
        reason += f" {len(survey.unreadable)} image(s) could not be read and were not hashed."
    value = f"{len(shared)} subjects, {len(same_files)} files, {n_pairs} near-duplicate pairs ({n_cross} train-test)"
    return CheckResult(
        "leakage",
        "Leakage between splits",
        status,
        value,
        f"FAIL: shared subject/file or train-test near duplicate (pHash <= {max_d} bits, r >= {min_corr})",
        reason,
        report,
    )


def confirmed_near_duplicates(
    images: pd.DataFrame, survey: Survey, max_d: int, min_corr: float, fov_threshold: int
) -> tuple[pd.DataFrame, int]:
    """The near-duplicate pairs across subjects (PAIR_COLUMNS, closest first) and how many hash candidates
    were examined: a pair is a pHash match within `max_d` bits whose thumbnails correlate >= `min_corr`."""
    meta = images.set_index("image_id").loc[survey.image_ids]
    subj_key = (meta["modality"] + ":" + meta["subject_id"]).to_numpy()
    sha = meta["sha256"].to_numpy()
    rows = []
    candidates = near_duplicate_pairs(survey.hashes, subj_key, max_d)
    for i, j, d in candidates:
        # The hash sees mostly the fan's outline, which every frame of a scanner shares:
        # a match counts only when the anatomy inside the fan correlates too.
        corr = thumbnail_correlation(survey.thumbs[i], survey.thumbs[j], fov_threshold)
        if corr < min_corr:
            continue
        a, b = meta.iloc[i], meta.iloc[j]
        rows.append(
            {
                "image_id_a": survey.image_ids[i],
                "subject_a": a["subject_id"],
                "modality_a": a["modality"],
                "split_a": a["split"],
                "image_id_b": survey.image_ids[j],
                "subject_b": b["subject_id"],
                "modality_b": b["modality"],
                "split_b": b["split"],
                "hamming": int(d),
                "correlation": round(corr, 4),
                "identical_file": bool(sha[i] and sha[i] == sha[j]),
                "spans_train_test": spans_train_test(a["split"], b["split"]),
            }
        )
    pairs = pd.DataFrame(rows, columns=PAIR_COLUMNS).sort_values(
        ["hamming", "image_id_a", "image_id_b"]
    )
    return pairs, len(candidates)


def _problems(shared: dict, same_files: list[dict], pairs: pd.DataFrame, max_d: int, min_corr: float) -> list[str]:
    """One phrase per kind of leak found, with a few examples each."""
    problems = []
    if shared:
        listing = "; ".join(f"{s} in {', '.join(sp)}" for s, sp in list(shared.items())[:5])
        problems.append(f"{len(shared)} subject(s) in more than one split ({listing})")
    if same_files:
        listing = "; ".join(
            f"{' = '.join(g['image_ids'][:3])} ({', '.join(g['splits'])})" for g in same_files[:3]
        )
        problems.append(f"{len(same_files)} identical file(s) in more than one split ({listing})")
    if len(pairs):
        ex = pairs.iloc[0]
        problems.append(
            f"{len(pairs)} near-duplicate image pair(s) across subjects (pHash Hamming <= {max_d}, thumbnail "
            f"correlation >= {min_corr}), {int(pairs['spans_train_test'].sum())} spanning train and test; "
            f"e.g. {ex['image_id_a']} ({ex['subject_a']}, {ex['split_a']}) ~ {ex['image_id_b']} "
            f"({ex['subject_b']}, {ex['split_b']}), distance {ex['hamming']}"
        )
    return problems
