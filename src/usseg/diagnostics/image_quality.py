"""Check 8: frames a model cannot learn from - dark, over-bright, blurry or empty.

Modelled on cleanvision's issue types, measured inside the field of view (the
black frame around the fan would make every ultrasound frame "dark"):

- dark: the 95th grey-level percentile inside the fan is below
  `image_quality.dark_p95_below` (grey level / 255): even the brightest
  tissue is near black (gain turned down, probe off the skin);
- over-bright: the 5th percentile is above `bright_p5_above`: even the
  darkest tissue is near white (saturated gain);
- blurry: the variance of the Laplacian inside the fan, per unit of grey-level
  variance (so gain and brightness do not count), is below
  `blurry_ratio_below` times the median of the frame's modality. Relative,
  because a smooth simulator frame and a speckled scanner frame differ in
  sharpness by design; a frame much softer than its peers is the finding;
- low information: the grey-level entropy inside the fan is below
  `low_information_bits_below` bits, or the fan covers less than
  `min_fov_fraction` of the frame (a frozen, blank or cropped frame).

The check's value is the share of images with any flag; its status comes from
`image_quality.flagged_share`. Flagged frames are listed in image_quality.csv
and the worst of each kind are shown in image_quality.png.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi

from usseg.diagnostics import figures
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.diagnostics.status import CheckResult, status_above
from usseg.images import reading_rule

DEFAULTS = {
    "dark_p95_below": 0.1,
    "bright_p5_above": 0.8,
    "blurry_ratio_below": 0.2,
    "low_information_bits_below": 2.0,
    "min_fov_fraction": 0.05,
    "flagged_share": {"warn_above": 0.01, "fail_above": 0.1},
    "gallery": 8,
}
FLAGS = ("dark", "over_bright", "blurry", "low_information")
COLUMNS = [
    "image_id",
    "modality",
    "subject_id",
    "split",
    "fov_fraction",
    "p5",
    "p95",
    "sharpness",
    "sharpness_ratio",
    "entropy_bits",
    *FLAGS,
    "flags",
]


def quality_scores(gray: np.ndarray, fov: np.ndarray) -> dict:
    """Brightness percentiles (/255), relative Laplacian variance and grey-level entropy inside the field of view."""
    out = {"fov_fraction": float(fov.mean())}
    if fov.sum() < 16:
        return out | {"p5": np.nan, "p95": np.nan, "sharpness": np.nan, "entropy_bits": 0.0}
    hist = np.bincount(gray[fov], minlength=256).astype(float)
    cdf = np.cumsum(hist) / hist.sum()
    p = hist[hist > 0] / hist.sum()
    # Away from the fan's edge, whose step would dominate the Laplacian of every frame.
    inner = ndi.binary_erosion(fov, iterations=3)
    inner = inner if inner.sum() >= 16 else fov
    g = gray.astype(np.float32)
    lap = ndi.laplace(g)
    contrast = float(g[inner].var())
    return out | {
        "p5": float(np.searchsorted(cdf, 0.05)) / 255,
        "p95": float(np.searchsorted(cdf, 0.95)) / 255,
        # Laplacian variance per unit of grey-level variance: a dim or low-gain frame is not "blurry".
        "sharpness": float(lap[inner].var() / contrast) if contrast > 0 else np.nan,
        "entropy_bits": float(-(p * np.log2(p)).sum()),
    }


def quality_table(inputs: DiagnosticInputs, scores: pd.DataFrame, cfg: dict) -> pd.DataFrame:
    """One row per readable image: its scores and flags against the configured thresholds."""
    meta = inputs.images.set_index("image_id")
    df = scores.reindex(columns=["fov_fraction", "p5", "p95", "sharpness", "entropy_bits"]).copy()
    df.index.name = "image_id"
    df = df.join(meta[["modality", "subject_id", "split"]], how="left")
    median = df.groupby("modality")["sharpness"].transform("median")
    df["sharpness_ratio"] = df["sharpness"] / median.where(median > 0)
    df["dark"] = df["p95"] < cfg["dark_p95_below"]
    df["over_bright"] = df["p5"] > cfg["bright_p5_above"]
    df["blurry"] = df["sharpness_ratio"] < cfg["blurry_ratio_below"]
    df["low_information"] = (df["entropy_bits"] < cfg["low_information_bits_below"]) | (
        df["fov_fraction"] < cfg["min_fov_fraction"]
    )
    df["flags"] = [";".join(f for f in FLAGS if row[f]) for _, row in df[list(FLAGS)].iterrows()]
    return df.reset_index()[COLUMNS]


def gallery_ids(table: pd.DataFrame, n: int) -> list[tuple[str, str]]:
    """(image_id, why shown): the worst flagged image of each kind in turn, then the most extreme unflagged ones."""
    order = {
        "dark": ("p95", True),
        "over_bright": ("p5", False),
        "blurry": ("sharpness_ratio", True),
        "low_information": ("entropy_bits", True),
    }
    queues = {
        f: table[table[f]].sort_values(col, ascending=asc, kind="stable")["image_id"].tolist()
        for f, (col, asc) in order.items()
    }
    chosen: list[tuple[str, str]] = []
    seen: set[str] = set()
    while len(chosen) < n and any(queues.values()):
        for f in FLAGS:
            while queues[f] and queues[f][0] in seen:
                queues[f].pop(0)
            if queues[f] and len(chosen) < n:
                iid = queues[f].pop(0)
                chosen.append((iid, f"flagged {f.replace('_', '-')}"))
                seen.add(iid)
    # Without (enough) flags, the closest calls show what the thresholds let through.
    for f, (col, asc) in order.items():
        if len(chosen) >= n:
            break
        rest = table[~table["image_id"].isin(seen)].dropna(subset=[col])
        if rest.empty:
            continue
        iid = rest.sort_values(col, ascending=asc, kind="stable")["image_id"].iloc[0]
        chosen.append((iid, f"not flagged; closest to {f.replace('_', '-')}"))
        seen.add(iid)
    return chosen


def plot_gallery(inputs: DiagnosticInputs, table: pd.DataFrame, chosen, cfg: dict, path) -> None:
    if not chosen:
        figures.message_figure(path, "Image quality", "no readable images: nothing to show")
        return
    rows_by_id = table.set_index("image_id")
    images = inputs.images.set_index("image_id")
    cols = min(4, len(chosen))
    nrows = int(np.ceil(len(chosen) / cols))
    with figures.style():
        fig = figures.new_figure(2.6 * cols, 3.2 * nrows + 0.9)
        axes = np.atleast_1d(fig.subplots(nrows, cols)).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, (iid, why) in zip(axes, chosen):
            gray = inputs.read_gray(images.loc[iid].to_dict() | {"image_id": iid})
            r = rows_by_id.loc[iid]
            ax.imshow(gray, cmap="gray", vmin=0, vmax=255)
            ax.set_title(
                # Short lines: a panel is a quarter of the figure wide.
                f"{iid} ({r['modality']})\n{why}\np5 {r['p5']:.2f}, p95 {r['p95']:.2f}\n"
                f"sharpness x{r['sharpness_ratio']:.2f}, {r['entropy_bits']:.1f} bits",
                fontsize=8.5,
                color=figures.STATUS_COLOURS["FAIL"] if r["flags"] else "black",
            )
        fig.suptitle(
            "Image quality inside the field of view: flagged frames first (red), else the closest calls\n"
            f"dark: p95 < {cfg['dark_p95_below']}; over-bright: p5 > {cfg['bright_p5_above']}; "
            f"blurry: sharpness < {cfg['blurry_ratio_below']} x modality median;\n"
            f"low information: < {cfg['low_information_bits_below']} bits or fan < "
            f"{100 * cfg['min_fov_fraction']:g}% of the frame",
            fontsize=11,
        )
        figures.save(fig, path)


def quality_config(inputs: DiagnosticInputs) -> dict:
    cfg = dict(DEFAULTS)
    cfg.update({k: v for k, v in (inputs.opt("image_quality", {}) or {}).items() if v is not None})
    return cfg


def check_image_quality(inputs: DiagnosticInputs, survey, outputs: DiagnosticsOutputs) -> CheckResult:
    cfg = quality_config(inputs)
    table = quality_table(inputs, survey.quality, cfg)
    table.to_csv(outputs.image_quality_csv, index=False)
    plot_gallery(
        inputs, table, gallery_ids(table, int(cfg["gallery"])), cfg, outputs.image_quality
    )
    th = cfg["flagged_share"]
    n = len(table)
    flagged = table["flags"] != ""
    share = float(flagged.mean()) if n else 0.0
    status = status_above(share, th)
    threshold = f"share of images flagged: WARN > {th['warn_above']:g}, FAIL > {th['fail_above']:g}"
    if n == 0:
        reason = "no readable image: nothing to measure."
    elif not flagged.any():
        reason = (
            f"none of {n} images is dark, over-bright, blurry or low-information inside its field of view "
            "(thresholds in diagnostics.image_quality); image_quality.png shows the closest calls."
        )
    else:
        parts = []
        for m, sub in table[flagged].groupby("modality", sort=False):
            kinds = ", ".join(f"{f.replace('_', '-')} {int(sub[f].sum())}" for f in FLAGS if sub[f].any())
            total = int((table["modality"] == m).sum())
            parts.append(f"{m}: {len(sub)} of {total} ({kinds})")
        reason = (
            f"{int(flagged.sum())} of {n} images flagged ({100 * share:.1f}%; {'; '.join(parts)}): "
            "look at image_quality.png and image_quality.csv and drop or re-export frames a model cannot learn from."
        )
    # Which bit depth and size limit the pixels were read by (one rule per dataset, usseg.images).
    reason += " " + reading_rule().summary()
    return CheckResult(
        "image_quality",
        "Image quality",
        status,
        round(share, 4),
        threshold,
        reason,
        {"n_images": n, "n_flagged": int(flagged.sum()), "thresholds": cfg, "reading": reading_rule().to_json()},
    )
