"""Check 5: verify the labels, by eye and automatically.

Wrong labels rarely throw errors; the model simply learns poorly, which looks
exactly like "the model cannot learn the data". This check draws decoded masks
over their images (a gallery per modality, always including the masks with
the most off-palette pixels) and flags masks automatically: colours far from
the palette, channel-swapped palette colours (RGB written as BGR), empty
masks, and classes that a domain's masks almost never contain.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pandas as pd
from matplotlib.patches import Patch
from PIL import Image

from usseg.dataset_spec import DatasetSpec
from usseg.diagnostics import figures
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.label_stats import LabelStats
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.diagnostics.status import FAIL, PASS, WARN, CheckResult
from usseg.masks import decode_mask_aa

FLAG_COLUMNS = ["image_id", "modality", "subject_id", "split", "mask_path", "flag", "detail"]
TILE_PX = 360
OFF_PALETTE_COLOUR = np.array(
    [255, 140, 0], dtype=np.uint8
)  # orange: in no palette of this dataset
CHANNELS = "RGB"
# One wording of "off-palette" for the check, its flags and the gallery (decode_report's far_fraction).
OFF_PALETTE_MEANING = "neither a palette colour nor a blend of the palette colours around it"
# BGR first: writing RGB arrays with a BGR library (OpenCV) is the usual way masks get swapped.
PERMUTATIONS = [(2, 1, 0), (1, 2, 0), (2, 0, 1), (1, 0, 2), (0, 2, 1)]


def _rgb(c) -> str:
    return "(" + ",".join(str(int(v)) for v in c) + ")"


def channel_permutations_of(
    colour, pal: np.ndarray, names: list[str], candidates=None
) -> list[str]:
    """Descriptions of the palette colours (of `candidates`, default every class but background) that
    `colour` is a channel permutation of; a colour is never a swap of itself."""
    colour = np.asarray(colour, dtype=int)
    out = []
    for idx in range(1, len(pal)) if candidates is None else candidates:
        p = pal[idx].astype(int)
        if np.array_equal(p, colour):
            continue
        for perm in PERMUTATIONS:
            if np.array_equal(p[list(perm)], colour):
                out.append(f"{names[idx]} {_rgb(p)} read as {''.join(CHANNELS[i] for i in perm)}")
                break
    return out


def _sits_like(inputs: DiagnosticInputs, stats: LabelStats, iid: str, d: int, rows, here, share):
    """(distance, size factor) when a region of image iid, centred at `here` (shares of the
    image's height and width) and covering `share` of its pixels, sits where class d does in
    the modality's other masks (`rows`); None when no other mask has d or the region is not
    within `channel_swap.position_tolerance` of d's median centre and a factor
    `channel_swap.size_factor` of d's median area."""
    cfg = {"position_tolerance": 0.15, "size_factor": 2.0} | (inputs.opt("channel_swap", {}) or {})
    ids = np.asarray(stats.image_ids)
    meta = inputs.images.set_index("image_id")
    sizes = meta.loc[ids, ["height", "width"]].to_numpy(dtype=float).clip(min=1)
    area = stats.counts / sizes.prod(axis=1, keepdims=True)
    centre = stats.centroids / sizes[:, None, :]
    peers = rows & (stats.counts[:, d] > 0)
    peers[ids == iid] = False
    if not peers.any():
        return None
    typical_d, typical_area = np.median(centre[peers, d], axis=0), np.median(area[peers, d])
    dist = float(np.hypot(*(here - typical_d)))
    factor = float(max(share / typical_area, typical_area / share))
    if dist > cfg["position_tolerance"] or factor > cfg["size_factor"]:
        return None
    return dist, factor


def swap_evidence(inputs: DiagnosticInputs, stats: LabelStats, iid: str, c: int, d: int, rows) -> str:
    """Why class c's region in image iid looks like class d written with permuted channels, or "".

    Evidence: the region's centre lies within `channel_swap.position_tolerance`
    (share of the image) of class d's median centre among the modality's other
    masks, its area is within a factor `channel_swap.size_factor` of d's median
    area, and it is closer to d's typical centre than to c's own typical
    centre in the other modalities (when c is labeled there).
    """
    names, pal = inputs.class_names, inputs.palette
    ids = np.asarray(stats.image_ids)
    k = int(np.flatnonzero(ids == iid)[0])
    meta = inputs.images.set_index("image_id")
    shape = np.array([meta.at[iid, "height"] or 1, meta.at[iid, "width"] or 1], dtype=float)
    here = stats.centroids[k, c] / shape
    place = _sits_like(inputs, stats, iid, d, rows, here, stats.counts[k, c] / shape.prod())
    if place is None:
        return ""
    dist, factor = place
    sizes = meta.loc[ids, ["height", "width"]].to_numpy(dtype=float).clip(min=1)
    centre = stats.centroids / sizes[:, None, :]
    elsewhere = ~rows & (stats.counts[:, c] > 0)
    if elsewhere.any():
        own = np.median(centre[elsewhere, c], axis=0)
        if np.hypot(*(here - own)) <= dist:
            return ""
    perm = channel_permutations_of(pal[c], pal, names, candidates=[d])[0]
    return (
        f"its colour {_rgb(pal[c])} is {perm}, and the region sits where {names[d]} does "
        f"(centre {dist:.2f} image widths from {names[d]}'s median, area within {factor:.1f}x)"
    )


def colour_swap_evidence(
    inputs: DiagnosticInputs, stats: LabelStats, iid: str, mask_rgb: np.ndarray, colour, d: int, rows
) -> str:
    """Why the off-palette `colour` in image iid's mask looks like class d written with
    permuted channels, or "": the same evidence as `swap_evidence` for the pixels of that
    colour (centre and area typical of d in the modality's other masks). A colour that is
    a permutation of d's but sits elsewhere, or is much smaller or larger, is a painted
    foreign colour, not a swap."""
    region = (mask_rgb == np.asarray(colour, dtype=mask_rgb.dtype)).all(axis=-1)
    ys, xs = np.nonzero(region)
    if ys.size == 0:
        return ""
    shape = np.array(region.shape, dtype=float)
    here = np.array([ys.mean(), xs.mean()]) / shape
    place = _sits_like(inputs, stats, iid, d, rows, here, ys.size / region.size)
    if place is None:
        return ""
    dist, factor = place
    names, pal = inputs.class_names, inputs.palette
    perm = channel_permutations_of(colour, pal, names, candidates=[d])[0]
    return (
        f"{perm}, and its pixels sit where {names[d]} does "
        f"(centre {dist:.2f} image widths from {names[d]}'s median, area within {factor:.1f}x)"
    )


def far_pixels(
    mask_rgb: np.ndarray, pal: np.ndarray, max_distance: float, dataset: DatasetSpec | None = None
) -> np.ndarray:
    """Boolean (H, W): the off-palette pixels decode_masks counted in far_fraction.

    With the dataset spec (and dataset.decode aa_aware): farther than max_distance
    from every palette colour and every blend of the palette colours around
    them, as usseg.masks decides; without it, or with decode nearest: farther
    than max_distance (Euclidean RGB) from every palette colour.
    """
    if dataset is not None and dataset.decode == "aa_aware":
        return decode_mask_aa(
            mask_rgb,
            pal,
            window=dataset.blend_window,
            tolerance=dataset.palette_tolerance,
            max_distance=max_distance,
        ).suspicious
    flat = mask_rgb.reshape(-1, 3).astype(np.int32)
    d2 = np.full(flat.shape[0], np.iinfo(np.int32).max, dtype=np.int64)
    for p in pal.astype(np.int32):
        d2 = np.minimum(d2, ((flat - p) ** 2).sum(axis=1))
    return (d2 > max_distance**2).reshape(mask_rgb.shape[:2])


def dominant_far_colour(mask_rgb: np.ndarray, far: np.ndarray):
    """The most frequent off-palette colour and its pixel count, or None."""
    if not far.any():
        return None
    px = mask_rgb[far].astype(np.int64)
    packed = (px[:, 0] << 16) | (px[:, 1] << 8) | px[:, 2]
    values, counts = np.unique(packed, return_counts=True)
    v = int(values[counts.argmax()])
    return (v >> 16 & 255, v >> 8 & 255, v & 255), int(counts.max())


def compute_flags(inputs: DiagnosticInputs, stats: LabelStats) -> pd.DataFrame:
    """Every automatic finding on the decoded masks, one row per (mask, flag) in FLAG_COLUMNS: decoding
    problems, off-palette colours (channel swaps among them), empty masks and classes implausible for a domain."""
    images = inputs.images.set_index("image_id")
    found = (
        _decoding_flags(inputs, stats, images)
        + _off_palette_flags(inputs, stats, images)
        + _presence_flags(inputs, stats, images)
    )
    return pd.DataFrame([_flag_row(images, *f) for f in found], columns=FLAG_COLUMNS)


def _flag_row(images: pd.DataFrame, iid: str, flag: str, detail: str) -> dict:
    """One row of label_flags.csv: the flag and the manifest columns that find the mask."""
    r = images.loc[iid]
    return {
        "image_id": iid,
        "modality": r["modality"],
        "subject_id": r["subject_id"],
        "split": r["split"],
        "mask_path": r["mask_path"],
        "flag": flag,
        "detail": detail,
    }


def _decoding_flags(inputs: DiagnosticInputs, stats: LabelStats, images: pd.DataFrame) -> list[tuple]:
    """(image_id, flag, detail) for label arrays that are missing, of the wrong shape or beyond the classes."""
    found = [
        (iid, "missing_label", f"no decoded label array {iid}.npy in {inputs.labels_dir}") for iid in stats.missing
    ]
    for iid, shape in stats.bad_shape.items():
        r = images.loc[iid]
        found.append(
            (iid, "shape_mismatch", f"label array is {shape[0]}x{shape[1]}, image is {r['height']}x{r['width']}")
        )
    n_classes = len(inputs.class_names)
    found += [(iid, "label_out_of_range", f"label values beyond the {n_classes} palette classes")
              for iid in stats.out_of_range]
    return found


def _off_palette_flags(inputs: DiagnosticInputs, stats: LabelStats, images: pd.DataFrame) -> list[tuple]:
    """(image_id, flag, detail) for colours far from the palette, and whether they are a channel-swapped
    palette colour, for every mask decode_masks flagged or with too many off-palette pixels."""
    labeled = inputs.labeled
    modality_of = images.loc[list(stats.image_ids), "modality"]
    max_far = inputs.dataset.max_off_palette_fraction
    far_rows = labeled[labeled["decode_flagged"] | (labeled["far_fraction"] > max_far)]
    return [_off_palette_flag(inputs, stats, row, modality_of) for row in far_rows.to_dict("records")]


def _off_palette_flag(inputs: DiagnosticInputs, stats: LabelStats, row: dict, modality_of: pd.Series) -> tuple:
    """(image_id, flag, detail) for one off-palette mask: channel_swap? when its most common foreign colour
    is a permuted palette colour whose pixels sit like that class, else off_palette."""
    names, pal = inputs.class_names, inputs.palette
    max_dist = inputs.dataset.off_palette_distance
    iid = row["image_id"]
    detail = f"{100 * row['far_fraction']:.1f}% of pixels off-palette ({OFF_PALETTE_MEANING}, by more than {max_dist:g})"
    swap = []
    try:
        rgb = inputs.read_mask_rgb(row)
        dom = dominant_far_colour(rgb, far_pixels(rgb, pal, max_dist, inputs.dataset))
    except OSError as exc:
        dom, detail = None, f"{detail}; mask unreadable: {exc}"
    if dom is not None:
        colour, n = dom
        detail += f"; most common: {_rgb(colour)} ({n} px)"
        swap = channel_permutations_of(colour, pal, names)
    # As for palette colours (_implausible_class_flags): a permuted colour alone proves nothing; its
    # pixels must also sit where, and be as large as, the class it would be a swap of.
    evidence = []
    if swap:
        rows = (modality_of == row["modality"]).to_numpy()
        evidence = [
            e
            for d in range(1, len(pal))
            if channel_permutations_of(colour, pal, names, candidates=[d])
            and (e := colour_swap_evidence(inputs, stats, iid, rgb, colour, d, rows))
        ]
    if evidence:
        return iid, "channel_swap?", f"{detail} = {'; '.join(evidence)}"
    if swap:
        return (
            iid,
            "off_palette",
            f"{detail}; its colour is {'; '.join(swap)}, but its pixels do not sit where, or are "
            "not as large as, that class usually is: not called a channel swap",
        )
    return iid, "off_palette", detail


def _presence_flags(inputs: DiagnosticInputs, stats: LabelStats, images: pd.DataFrame) -> list[tuple]:
    """(image_id, flag, detail) for empty masks, and for classes a domain's masks (almost) never contain."""
    counts = stats.frame(inputs.class_names)
    if not len(counts):
        return []
    mods = images.loc[counts.index, "modality"]
    present = counts.to_numpy() > 0
    found = [(iid, "empty", "the mask is all background") for iid in counts.index[~present[:, 1:].any(axis=1)]]
    for m in mods.unique():
        found += _implausible_class_flags(inputs, stats, counts, present, (mods == m).to_numpy(), m)
    return found


def _implausible_class_flags(
    inputs: DiagnosticInputs, stats: LabelStats, counts: pd.DataFrame, present: np.ndarray, rows: np.ndarray,
    modality: str,
) -> list[tuple]:
    """(image_id, flag, detail) for the masks of one modality (`rows`) holding a class fewer than
    `implausible_class_share` of its masks hold: channel_swap? with evidence, else implausible_class."""
    names, pal = inputs.class_names, inputs.palette
    implausible_share = float(inputs.opt("implausible_class_share", 0.02))
    share = present[rows].mean(axis=0)
    n_m = int(rows.sum())
    found = []
    for c in range(1, len(names)):
        if not (0 < share[c] < implausible_share):
            continue
        holders = counts.index[rows & present[:, c]]
        common = [d for d in range(1, len(names)) if share[d] > share[c]]
        swap_classes = [d for d in common if channel_permutations_of(pal[c], pal, names, candidates=[d])]
        text = (
            f"{names[c]} is in {len(holders)} of {n_m} {modality} masks ({100 * share[c]:.1f}%), "
            f"below {100 * implausible_share:g}%"
        )
        for iid in holders:
            # A permuted colour alone proves nothing (most palette colours are permutations of
            # another); the region must also sit where, and be as large as, the swapped class.
            evidence = [e for d in swap_classes if (e := swap_evidence(inputs, stats, iid, c, d, rows))]
            if evidence:
                found.append((iid, "channel_swap?", f"{text}; {'; '.join(evidence)}"))
            else:
                found.append((iid, "implausible_class", text))
    return found


# ----------------------------------------------------------------------------- gallery


def choose_gallery(
    inputs: DiagnosticInputs,
    modality: str,
    flags: pd.DataFrame,
    n: int,
    seed: int,
    available: set[str],
) -> list[str]:
    """n labeled images of a modality: flagged and most off-palette masks first, then spread over subjects."""
    lab = inputs.labeled
    lab = lab[(lab["modality"] == modality) & lab["image_id"].isin(available)]
    lab = lab.sort_values(
        ["far_fraction", "off_palette_fraction", "image_id"],
        ascending=[False, False, True],
        kind="stable",
    )
    chosen: list[str] = []
    flagged_ids = set(flags["image_id"])
    flagged = [i for i in lab["image_id"] if i in flagged_ids]
    chosen += flagged[: max(1, math.ceil(n / 2))]
    worst = [i for i in lab.loc[lab["off_palette_fraction"] > 0, "image_id"] if i not in chosen]
    chosen += worst[: max(1, n // 4)]
    chosen = chosen[:n]
    rest = lab[~lab["image_id"].isin(chosen)]
    rng = np.random.default_rng(seed)
    by_subject = {
        s: list(rng.permutation(g["image_id"].to_numpy())) for s, g in rest.groupby("subject_id")
    }
    shown = set(lab.loc[lab["image_id"].isin(chosen), "subject_id"])
    rank = {s: k for k, s in enumerate(rng.permutation(sorted(by_subject)))}
    order = sorted(
        by_subject, key=lambda s: (s in shown, rank[s])
    )  # subjects not shown yet come first
    while len(chosen) < n and any(by_subject.values()):
        for s in order:
            if by_subject[s] and len(chosen) < n:
                chosen.append(by_subject[s].pop(0))
    return chosen


def overlay(
    gray: np.ndarray, labels: np.ndarray, pal: np.ndarray, far: np.ndarray | None, alpha=0.45
) -> np.ndarray:
    rgb = np.repeat(gray[..., None], 3, axis=2).astype(np.float32)
    colour = pal[labels].astype(np.float32)
    fg = labels > 0
    rgb[fg] = (1 - alpha) * rgb[fg] + alpha * colour[fg]
    # Outlines in the full class colour make small organs visible at gallery size.
    edge = np.zeros_like(fg)
    edge[:-1] |= labels[:-1] != labels[1:]
    edge[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edge &= fg
    rgb[edge] = colour[edge]
    if far is not None and far.any():
        rgb[far] = OFF_PALETTE_COLOUR
    return rgb.clip(0, 255).astype(np.uint8)


def plot_gallery(
    inputs: DiagnosticInputs, modality: str, ids: list[str], flags: pd.DataFrame, path
) -> None:
    """The modality's gallery: each chosen mask over its image, off-palette pixels in orange, flags in the
    panel titles; a message figure when the modality has no decoded masks."""
    names, pal = inputs.class_names, inputs.palette
    images = inputs.images.set_index("image_id")
    domain = inputs.domain_of(modality)
    if not ids:
        figures.message_figure(
            path,
            f"Label verification: {modality} ({domain})",
            f"no decoded masks in {modality}: nothing to verify",
        )
        return
    cols = min(4, len(ids))
    rows = math.ceil(len(ids) / cols)
    flag_text = flags.groupby("image_id")["flag"].agg(lambda s: ", ".join(sorted(set(s))))
    any_far = False
    with figures.style():
        fig = figures.new_figure(2.6 * cols, 3.1 * rows + 1.3)
        axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
        for ax in axes:
            ax.axis("off")
        for ax, iid in zip(axes, ids):
            row = images.loc[iid].to_dict() | {"image_id": iid}
            tile, has_far = _gallery_tile(inputs, row)
            any_far |= has_far
            ax.imshow(tile, interpolation="antialiased")
            _tile_title(ax, row, flag_text)
        _gallery_legend(fig, names, pal, any_far)
        # Wrapped to the figure's width: a longer line would be cut at both sides.
        fig.suptitle(
            f"Label verification, {modality} ({domain}): decoded masks over their images\n"
            + textwrap.fill(
                f"Flagged and most off-palette masks first (off-palette: {OFF_PALETTE_MEANING}; "
                "blended: other pixels not exactly a palette colour), then spread over subjects.",
                width=120,
            ),
            fontsize=11,
        )
        figures.save(fig, path)


def _gallery_tile(inputs: DiagnosticInputs, row: dict) -> tuple[np.ndarray, bool]:
    """One gallery tile (the overlay, at most TILE_PX on its long side) and whether it shows off-palette
    pixels. A label array of another shape than its image is drawn as background (shape_mismatch flags it)."""
    pal = inputs.palette
    gray = inputs.read_gray(row)
    labels = inputs.read_label(row["image_id"])
    if labels.shape != gray.shape:
        labels = np.zeros_like(gray)
    far = None
    has_far = False
    if row["far_fraction"] > 0:
        far = far_pixels(inputs.read_mask_rgb(row), pal, inputs.dataset.off_palette_distance, inputs.dataset)
        far = far if far.shape == gray.shape else None
        has_far = far is not None and bool(far.any())
    tile = overlay(gray, labels, pal, far)
    if max(tile.shape[:2]) > TILE_PX:  # a tile is ~300 px wide in the figure: drawing more costs time only
        scale = TILE_PX / max(tile.shape[:2])
        size = (max(1, round(tile.shape[1] * scale)), max(1, round(tile.shape[0] * scale)))
        tile = np.asarray(Image.fromarray(tile).resize(size, Image.Resampling.LANCZOS))
    return tile, has_far


def _tile_title(ax, row: dict, flag_text: pd.Series) -> None:
    """The panel title: image, subject, off-palette and blended shares; its flags in the FAIL colour."""
    iid = row["image_id"]
    blended = max(row["off_palette_fraction"] - row["far_fraction"], 0.0)
    # Short lines: a panel is a quarter of the figure wide.
    sub = (
        f"subject {row['subject_id']}\noff-palette {100 * row['far_fraction']:.1f}%, "
        f"blended {100 * blended:.1f}%"
    )
    title = f"{iid}\n{sub}"
    if iid in flag_text.index:
        title += f"\nFLAG: {flag_text[iid]}"
    ax.set_title(
        title,
        fontsize=8.5,
        color=figures.STATUS_COLOURS["FAIL"] if iid in flag_text.index else "black",
    )


def _gallery_legend(fig, names: list[str], pal: np.ndarray, any_far: bool) -> None:
    """The class colours (and the off-palette colour when a tile shows it) below the panels."""
    handles = [
        Patch(facecolor=pal[i] / 255, edgecolor="black", label=names[i])
        for i in range(1, len(names))
    ]
    if any_far:
        handles.append(
            Patch(
                facecolor=OFF_PALETTE_COLOUR / 255,
                edgecolor="black",
                label="off-palette pixels",
            )
        )
    fig.legend(
        handles=handles,
        loc="outside lower center",
        ncol=min(len(handles), 5),
        fontsize=9,
        title="decoded class (palette colour)",
        title_fontsize=9,
    )


# ----------------------------------------------------------------------------- check


def label_status(flags: pd.DataFrame, n_labeled: int, fail_share: float) -> tuple[str, str]:
    """WARN for a few flagged masks, FAIL when more than `fail_share` of them are flagged."""
    flagged = flags["image_id"].nunique()
    share = flagged / n_labeled if n_labeled else 0.0
    if n_labeled == 0:
        return WARN, "no masks at all: there are no labels to verify."
    if flagged == 0:
        return PASS, (
            f"none of {n_labeled} masks flagged (off-palette colours, channel swaps, empty masks, classes "
            "implausible for the domain); still look at the galleries."
        )
    kinds = flags.drop_duplicates(["image_id", "flag"])["flag"].value_counts()
    listing = ", ".join(f"{k} {v}" for k, v in kinds.items())
    reason = (
        f"{flagged} of {n_labeled} masks flagged ({100 * share:.1f}%): {listing}; "
        "see label_flags.csv and the galleries."
    )
    if "channel_swap?" in kinds:
        reason += (
            " A channel swap (RGB written as BGR) turns one organ into another without any error."
        )
    return (FAIL if share > fail_share else WARN), reason


def check_labels(inputs: DiagnosticInputs, stats: LabelStats, outputs: DiagnosticsOutputs) -> CheckResult:
    flags = compute_flags(inputs, stats)
    flags = flags.sort_values(["modality", "image_id", "flag"], kind="stable").reset_index(
        drop=True
    )
    flags.to_csv(outputs.label_flags, index=False)
    n = int(inputs.opt("gallery_per_modality", 8))
    seed = int(inputs.opt("seed", 0))
    available = set(stats.image_ids)
    galleries = {}
    for m in inputs.dataset.modality_names:
        ids = choose_gallery(inputs, m, flags, n, seed, available)
        galleries[m] = ids
        plot_gallery(inputs, m, ids, flags, outputs.galleries[m])

    n_labeled = int(inputs.labeled.shape[0])
    flagged = flags["image_id"].nunique()
    fail_share = float(inputs.opt("label_flag_fail_share", 0.05))
    status, reason = label_status(flags, n_labeled, fail_share)
    mask_issues = (
        inputs.issues[
            inputs.issues["path"].str.contains(
                inputs.dataset.annotations_dir, regex=False
            )
        ]
        if len(inputs.issues)
        else inputs.issues
    )
    if len(mask_issues):
        reason += f" {len(mask_issues)} annotation file(s) set aside by the manifest (manifest_issues.csv)."
    return CheckResult(
        "label_verification",
        "Label verification",
        status,
        f"{flagged}/{n_labeled} masks flagged",
        f"WARN on any flagged mask, FAIL above {100 * fail_share:g}% of masks",
        reason,
        {"flags": flags, "galleries": galleries},
    )
