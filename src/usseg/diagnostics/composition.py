"""Check 1: what the dataset contains.

Counts images by modality, labeled or not, and original split, and judges the
share of the *training* labels (the train and val splits of splits.csv) that
come from the target domain: a headline image count means little when almost
every label a model learns from sits in another domain. The share of all
labeled images is stated beside it; target labels that all sit in the test
sets evaluate a model but teach it nothing.
"""

from __future__ import annotations

import pandas as pd
from matplotlib.patches import Patch

from usseg.diagnostics import figures
from usseg.diagnostics.inputs import TRAIN_SPLITS, DiagnosticInputs
from usseg.diagnostics.outputs import DiagnosticsOutputs
from usseg.diagnostics.status import CheckResult, status_below

DEFAULT_THRESHOLDS = {"warn_below": 0.3, "fail_below": 0.1}


def composition_table(inputs: DiagnosticInputs) -> pd.DataFrame:
    """Images per modality and original split: labeled, unlabeled, total."""
    df = inputs.images
    rows = []
    splits = list(
        dict.fromkeys(
            inputs.dataset.orig_splits + sorted(df["orig_split"].unique())
        )
    )
    for m in inputs.modalities:
        for s in splits:
            sub = df[(df["modality"] == m) & (df["orig_split"] == s)]
            if sub.empty:
                continue
            n_lab = int(sub["has_mask"].sum())
            rows.append(
                {
                    "modality": m,
                    "domain": inputs.domain_of(m),
                    "orig_split": s,
                    "labeled": n_lab,
                    "unlabeled": len(sub) - n_lab,
                    "total": len(sub),
                }
            )
    return pd.DataFrame(
        rows, columns=["modality", "domain", "orig_split", "labeled", "unlabeled", "total"]
    )


def summarise(table: pd.DataFrame, target: str, images: pd.DataFrame | None = None) -> dict:
    """Counts of the composition table, and (from `images`, the diagnostics' joined table with its
    `split`) the training labels: labeled images in the train and val splits."""
    n_labeled = int(table["labeled"].sum())
    tgt = table[table["modality"] == target]
    n_target_labeled = int(tgt["labeled"].sum())
    out = {
        "n_images": int(table["total"].sum()),
        "n_labeled": n_labeled,
        "n_target_images": int(tgt["total"].sum()),
        "n_target_labeled": n_target_labeled,
        "n_target_unlabeled": int(tgt["unlabeled"].sum()),
        "target_label_share": n_target_labeled / n_labeled if n_labeled else 0.0,
    }
    if images is not None:
        training = images[images["has_mask"] & images["split"].isin(TRAIN_SPLITS)]
        n_train = len(training)
        n_train_target = int((training["modality"] == target).sum())
        out.update(n_training_labels=n_train, n_training_target_labels=n_train_target,
                   training_target_share=n_train_target / n_train if n_train else 0.0)
    return out


def sentence(summary: dict, target: str, domain: str) -> str:
    s = summary
    if s["n_labeled"] == 0:
        return f"no image has a label: {s['n_images']} images, none of them usable for supervised training."
    overall = (f"{s['n_target_labeled']} of {s['n_labeled']} labeled images "
               f"({100 * s['target_label_share']:.1f}%) are {target} ({domain})")
    if "n_training_labels" not in s:
        head = overall
    else:
        head = (f"{s['n_training_target_labels']} of {s['n_training_labels']} training labels (train and val "
                f"splits) come from the target modality {target} ({domain}); overall {overall}")
        if s["n_target_labeled"] and not s["n_training_target_labels"]:
            head += ", all of them outside the training splits (they can evaluate a model, not teach it)"
    if s["n_target_unlabeled"]:
        head += f"; {s['n_target_unlabeled']} of its {s['n_target_images']} images have no label"
    return head + "."


def plot(table: pd.DataFrame, summary: dict, inputs: DiagnosticInputs, path) -> None:
    """composition.png: images by modality, original split and label status, and the share of labeled
    images per modality; the title states the target's share of the training labels."""
    colours = figures.modality_colours(inputs.modalities, inputs.domain_of)
    with figures.style():
        fig = figures.new_figure(10.4, 4.6)
        gs = fig.add_gridspec(1, 2, width_ratios=[3, 1.1])
        _images_panel(fig, fig.add_subplot(gs[0]), table, inputs, colours)
        _label_share_panel(fig.add_subplot(gs[1]), table, colours)
        target = f"{inputs.target_modality} ({inputs.domain_of(inputs.target_modality)})"
        fig.suptitle(
            f"Composition: {summary['n_training_target_labels']} of {summary['n_training_labels']} training "
            f"labels and {100 * summary['target_label_share']:.1f}% of all labeled images are {target}"
        )
        figures.save(fig, path)


def _images_panel(fig, ax, table: pd.DataFrame, inputs: DiagnosticInputs, colours) -> None:
    """Stacked bars per modality and original split, labeled then unlabeled; the figure's legend."""
    x = range(len(table))
    lab = ax.bar(
        x,
        table["labeled"],
        color=[colours[m] for m in table["modality"]],
        edgecolor="black",
        linewidth=0.5,
        label="labeled",
    )
    unl = ax.bar(
        x,
        table["unlabeled"],
        bottom=table["labeled"],
        color=figures.UNLABELED_COLOUR,
        edgecolor="black",
        linewidth=0.5,
        hatch="//",
        label="unlabeled",
    )
    figures.label_bars(ax, lab, table["labeled"].tolist(), inside=True)
    figures.label_bars(ax, unl, table["unlabeled"].tolist(), inside=True)
    ax.set_xticks(
        list(x),
        [
            f"{m} ({inputs.domain_of(m)})\n{s}"
            for m, s in zip(table["modality"], table["orig_split"])
        ],
    )
    ax.set_ylabel("images")
    ax.set_xlabel("modality (domain) and original split")
    ax.set_title("Images by modality, original split and label status")
    handles = [
        *(
            Patch(facecolor=colours[m], edgecolor="black", label=f"{m} labeled")
            for m in inputs.modalities
            if m in set(table["modality"])
        ),
        Patch(
            facecolor=figures.UNLABELED_COLOUR, hatch="//", edgecolor="black", label="unlabeled"
        ),
    ]
    # Outside the axes: a legend never hides a bar.
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False)


def _label_share_panel(ax, table: pd.DataFrame, colours) -> None:
    """Where the labels are: one 100 % bar of labeled images by modality."""
    per_mod = table.groupby("modality", sort=False)["labeled"].sum()
    total = max(int(per_mod.sum()), 1)
    bottom = 0.0
    for m, n in per_mod.items():
        share = 100 * n / total
        ax.bar(
            0,
            share,
            bottom=bottom,
            color=colours[m],
            edgecolor="black",
            linewidth=0.5,
            width=0.6,
        )
        if share > 0:
            ax.text(
                0.34,
                bottom + share / 2,
                f"{m}: {n}\n({share:.1f}%)",
                va="center",
                ha="left",
                fontsize=10,
            )
        bottom += share
    ax.set_xlim(-0.5, 1.4)
    ax.set_ylim(0, 100)
    ax.set_xticks([])
    ax.set_ylabel("share of labeled images (%)")
    ax.set_title("Where the labels are")
    ax.grid(False)


def check_composition(inputs: DiagnosticInputs, outputs: DiagnosticsOutputs) -> CheckResult:
    table = composition_table(inputs)
    table.to_csv(outputs.composition_csv, index=False)
    target = inputs.target_modality
    summary = summarise(table, target, inputs.images)
    plot(table, summary, inputs, outputs.composition)
    thresholds = inputs.opt("min_target_label_share", DEFAULT_THRESHOLDS)
    share = summary["training_target_share"]
    status = status_below(share, thresholds)
    reason = sentence(summary, target, inputs.domain_of(target))
    if status != "PASS":
        reason += " Supervised training sees mostly another domain: a model is asked to transfer, not to fit."
    # Snakemake's own marker files are listed for completeness but are not data set aside.
    n_issues = int((inputs.issues["reason"] != "workflow_file").sum()) if len(inputs.issues) else 0
    if n_issues:
        reason += f" {n_issues} file(s) were set aside by the manifest (manifest_issues.csv)."
    return CheckResult(
        id="composition",
        title="Dataset composition",
        status=status,
        value=round(share, 4),
        threshold=(f"target share of the training labels: WARN < {thresholds['warn_below']}, "
                   f"FAIL < {thresholds['fail_below']}"),
        reason=reason,
        details=summary,
    )
