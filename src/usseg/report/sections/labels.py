"""4. Label verification: the decoded masks over their images, and the masks the label checks flagged."""

from __future__ import annotations

ID, TITLE, HEADING, TEMPLATE = "labels", "Label verification", "Label verification", "labels.html"


def build(ctx) -> dict:
    galleries = []
    for m in ctx.modalities:
        domain = ctx.config["dataset"]["modalities"][m].get("domain", "")
        galleries.append(ctx.figure(f"fig-label-gallery-{m}", ctx.inputs.diagnostics.galleries[m],
                                    f"Label gallery: {m} ({domain})"))
    flags = ctx.csv_table("tab-label-flags", ctx.inputs.diagnostics.label_flags, "Label flags",
                          "Masks the label checks found suspicious.", empty="none: no mask was flagged.")
    return {"galleries": galleries, "flags": flags}
