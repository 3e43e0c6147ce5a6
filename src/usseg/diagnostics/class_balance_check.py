"""Check 3: class balance per domain.

Small organs cover a tiny share of the pixels and appear in few images; an
unweighted loss can ignore them and still score well. Classes that a domain
never labels cannot be learned or evaluated there. The check reports both and
suggests class weights (the same function training uses for `class_weights: auto`).

Shares weight images, not pixels (usseg.class_balance.image_weighted: every
image scaled to the median image's size), so a few very large images among
small ones cannot decide the balance; the `pixels` column stays the raw count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from usseg.class_balance import image_weighted, suggest_class_weights
from usseg.diagnostics import figures
from usseg.diagnostics.inputs import DiagnosticInputs
from usseg.diagnostics.label_stats import LabelStats
from usseg.diagnostics.outputs import DiagnosticsOutputs, write_json
from usseg.diagnostics.status import PASS, WARN, CheckResult

ALL = "all"


def usable_counts(inputs: DiagnosticInputs, stats: LabelStats) -> pd.DataFrame:
    """Pixels per class of every labeled image whose mask was not quarantined, with modality and split."""
    counts = stats.frame(inputs.class_names)
    meta = inputs.images.set_index("image_id").loc[
        counts.index, ["modality", "split", "decode_flagged"]
    ]
    keep = ~meta["decode_flagged"].to_numpy()
    return counts[keep].join(meta.loc[keep, ["modality", "split"]])


def balance_table(
    inputs: DiagnosticInputs, counts: pd.DataFrame, rare_share: float, min_images: int
) -> pd.DataFrame:
    names = inputs.class_names
    rows = []
    groups = [
        (m, counts[counts["modality"] == m])
        for m in inputs.modalities
        if (counts["modality"] == m).any()
    ]
    groups.append((ALL, counts))
    for group, sub in groups:
        pix = sub[names].to_numpy(dtype=np.int64)
        raw = pix.sum(axis=0)
        per_class = image_weighted(pix).sum(axis=0)  # every image weighs the same
        total = per_class.sum()
        fg_total = per_class[1:].sum()
        present = (pix > 0).sum(axis=0)
        n_img = len(sub)
        for i, name in enumerate(names):
            fg_share = float(per_class[i] / fg_total) if (i > 0 and fg_total) else float("nan")
            rows.append(
                {
                    "class": name,
                    "modality": group,
                    "domain": inputs.domain_of(group) if group != ALL else ALL,
                    "pixels": int(raw[i]),
                    "pixel_share": float(per_class[i] / total) if total else 0.0,
                    "foreground_share": fg_share,
                    "n_images_with_class": int(present[i]),
                    "n_labeled_images": n_img,
                    "image_share": float(present[i] / n_img) if n_img else 0.0,
                    "never_labeled": i > 0 and present[i] == 0,
                    "rare": i > 0
                    and present[i] > 0
                    and (fg_share < rare_share or present[i] < min_images),
                }
            )
    return pd.DataFrame(rows)


def class_weights(inputs: DiagnosticInputs, counts: pd.DataFrame) -> tuple[dict, str]:
    """Suggested weights from the labeled training pixels (all labeled pixels when there is no train split)."""
    names = inputs.class_names
    train = counts[counts["split"] == "train"]
    basis = "labeled train images"
    if train.empty or train[names].to_numpy()[:, 1:].sum() == 0:
        train, basis = counts, "all labeled images (no labeled train split)"
    totals = image_weighted(train[names].to_numpy(dtype=np.int64)).sum(axis=0)
    if totals.sum() == 0:
        return {n: 0.0 for n in names}, "no labeled pixels"
    weights = suggest_class_weights(totals)
    return {n: round(float(w), 4) for n, w in zip(names, weights)}, f"{basis} ({len(train)})"


def plot(
    table: pd.DataFrame, weights: dict, inputs: DiagnosticInputs, rare_share, min_images, path
) -> None:
    names = inputs.class_names[1:]
    mods = [m for m in inputs.modalities if m in set(table["modality"])]
    colours = figures.modality_colours(inputs.modalities, inputs.domain_of)
    x = np.arange(len(names))
    width = 0.8 / max(len(mods), 1)
    with figures.style():
        fig = figures.new_figure(10.4, 7.0)
        axes = fig.subplots(2, 1, sharex=True)
        for k, m in enumerate(mods):
            t = table[table["modality"] == m].set_index("class").loc[names]
            offs = x - 0.4 + width * (k + 0.5)
            share = (100 * t["foreground_share"].fillna(0)).to_numpy()
            axes[0].bar(
                offs,
                np.where(share > 0, share, np.nan),
                width,
                color=colours[m],
                edgecolor="black",
                linewidth=0.5,
                label=f"{m} ({inputs.domain_of(m)}, {int(t['n_labeled_images'].iloc[0])} images)",
            )
            imgs = t["n_images_with_class"].to_numpy()
            bars = axes[1].bar(
                offs, imgs, width, color=colours[m], edgecolor="black", linewidth=0.5
            )
            figures.label_bars(axes[1], bars, imgs.tolist(), fontsize=8)
            for xi, never in zip(offs, t["never_labeled"]):
                if never:
                    for ax in axes:
                        ax.text(
                            xi,
                            0.02,
                            "none",
                            transform=ax.get_xaxis_transform(),
                            rotation=90,
                            ha="center",
                            va="bottom",
                            fontsize=8,
                            color=colours[m],
                            fontweight="bold",
                        )
        axes[0].set_yscale("log")
        axes[0].axhline(
            100 * rare_share,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"rare below {100 * rare_share:g}% of the foreground",
        )
        axes[0].set_ylabel("share of labeled\nforeground pixels (%, log)")
        axes[0].set_title("Pixel share of each organ among the labeled foreground")
        axes[1].axhline(
            min_images,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"rare below {min_images} images",
        )
        # One legend for both panels, outside them: it never hides a bar.
        handles, labels = axes[0].get_legend_handles_labels()
        more, more_labels = axes[1].get_legend_handles_labels()
        fig.legend(handles + more, labels + more_labels, loc="outside lower center", ncol=2, frameon=False)
        axes[1].set_ylabel("labeled images\ncontaining the organ")
        axes[1].set_title("Images in which each organ is labeled")
        axes[1].set_xticks(x, [f"{n}\nweight {weights.get(n, 0):.2f}" for n in names])
        axes[1].set_xlabel(
            f"class and suggested loss weight (labeled training pixels; background "
            f"{weights.get(inputs.class_names[0], 0):.2f})"
        )
        axes[1].margins(y=0.15)
        fig.suptitle("Class balance: rare organs and organs a domain never labels")
        figures.save(fig, path)


def _images(n) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


def _names(items) -> str:
    return ", ".join(items) if items else "none"


def check_class_balance(inputs: DiagnosticInputs, stats: LabelStats, outputs: DiagnosticsOutputs) -> CheckResult:
    rare_share = float(inputs.opt("rare_class_pixel_share", 0.01))
    min_images = int(inputs.opt("min_images_per_class", 20))
    counts = usable_counts(inputs, stats)
    table = balance_table(inputs, counts, rare_share, min_images)
    table.to_csv(outputs.class_balance_csv, index=False)
    weights, basis = class_weights(inputs, counts)
    write_json(outputs.class_weights, weights)
    plot(table, weights, inputs, rare_share, min_images, outputs.class_balance)

    overall = table[(table["modality"] == ALL) & (table["class"] != inputs.class_names[0])]
    rare = overall[overall["rare"]]["class"].tolist()
    never_any = overall[overall["never_labeled"]]["class"].tolist()
    per_mod = table[(table["modality"] != ALL) & (table["class"] != inputs.class_names[0])]
    missing = {
        m: [c for c in sub[sub["never_labeled"]]["class"] if c not in never_any]
        for m, sub in per_mod.groupby("modality", sort=False)
    }
    missing = {m: v for m, v in missing.items() if v}
    target = inputs.target_modality
    rare_target = per_mod[(per_mod["modality"] == target) & per_mod["rare"]]["class"].tolist()

    parts = []
    if rare:
        shares = overall.set_index("class")
        parts.append(
            "rare overall: "
            + ", ".join(
                f"{c} ({100 * shares.loc[c, 'foreground_share']:.2g}% of foreground, "
                f"{_images(shares.loc[c, 'n_images_with_class'])})"
                for c in rare
            )
        )
    if rare_target and set(rare_target) != set(rare):
        tgt = per_mod[per_mod["modality"] == target]
        n_tgt = int(tgt["n_labeled_images"].iloc[0]) if len(tgt) else 0
        labeled_there = tgt[~tgt["never_labeled"]]["class"].tolist()
        if set(rare_target) == set(labeled_there) and n_tgt < min_images:
            parts.append(f"rare in {target}: every class it labels (only {n_tgt} labeled images)")
        else:
            parts.append(f"rare in {target}: {_names(rare_target)}")
    for m, cls in missing.items():
        parts.append(f"never labeled in {m} ({inputs.domain_of(m)}): {_names(cls)}")
    if never_any:
        parts.append(f"never labeled at all: {_names(never_any)}")
    status = WARN if (rare or missing or never_any or rare_target) else PASS
    if status == PASS:
        reason = f"every class covers at least {100 * rare_share:g}% of the labeled foreground and {min_images} images in each domain that labels it."
    else:
        reason = (
            "; ".join(parts)
            + ". An unweighted loss can ignore rare organs: consider the suggested class weights (class_weights.json)."
        )
    n_missing = sum(len(v) for v in missing.values())
    value = f"{len(rare)} rare, {n_missing} missing in a domain"
    # Rare only in the target domain is a WARN of its own: the value says so, so that "0 rare" never
    # stands beside a WARN without its cause.
    if rare_target and set(rare_target) != set(rare):
        value += f", {len(rare_target)} rare in {target}"
    if never_any:
        value += f", {len(never_any)} never labeled"
    return CheckResult(
        id="class_balance",
        title="Class balance",
        status=status,
        value=value,
        threshold=f"rare: < {100 * rare_share:g}% of foreground pixels or < {min_images} images",
        reason=reason,
        details={
            "rare": rare,
            "rare_in_target": rare_target,
            "missing_by_modality": missing,
            "never_labeled": never_any,
            "weights": weights,
            "weights_basis": basis,
        },
    )
