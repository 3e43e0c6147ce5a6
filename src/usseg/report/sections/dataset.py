"""2. Dataset: composition, subjects, class balance, image quality, quarantined inputs and leakage."""

from __future__ import annotations

from usseg.report.formatting import truthy

ID, TITLE, HEADING, TEMPLATE = "dataset", "Dataset", "Dataset", "dataset.html"

def build(ctx) -> dict:
    d = ctx.inputs.diagnostics
    return {
        "composition": ctx.figure("fig-composition", d.composition, "Composition",
                                  "Images per modality and original split, labeled and unlabeled."),
        "composition_table": ctx.csv_table("tab-composition", d.composition_csv, "Composition table"),
        "subjects": ctx.figure("fig-subjects", d.subjects, "Subjects",
                               "Distinct subjects (patients or CT volumes) per modality: the true size of a dataset."),
        "subjects_table": ctx.csv_table("tab-subjects", d.subjects_csv, "Subjects table"),
        "frames_per_subject": ctx.csv_table("tab-frames-per-subject", d.frames_per_subject,
                                            "Frames per subject", "Frames of one subject are not independent samples."),
        "class_balance": ctx.figure("fig-class-balance", d.class_balance, "Class balance",
                                    "Share of labeled pixels and of images in which each class appears."),
        "class_balance_table": ctx.csv_table("tab-class-balance", d.class_balance_csv, "Class balance table"),
        "class_weights": ctx.json_table("tab-class-weights", d.class_weights, "Suggested class weights",
                                        "Tempered median-frequency weights (used by experiments with "
                                        "class_weights: auto); 0 = class never labeled."),
        "image_quality": ctx.figure("fig-image-quality", d.image_quality, "Image quality",
                                    "Dark, over-bright, blurry or low-information frames inside the field of view "
                                    "(thresholds: diagnostics.image_quality); without flags, the closest calls."),
        "image_quality_table": ctx.csv_table("tab-image-quality", d.image_quality_csv, "Flagged frames",
                                             "Frames with at least one image-quality flag.",
                                             empty="none: no frame was flagged.",
                                             rows_filter=lambda r: bool(r.get("flags", ""))),
        "manifest_issues": ctx.csv_table("tab-manifest-issues", ctx.inputs.issues,
                                         "Files set aside by the manifest",
                                         "Every file below the data root is either in the manifest or listed here "
                                         "with the reason; nothing disappears silently.",
                                         empty="none: every file was used."),
        "flagged_masks": ctx.csv_table("tab-flagged-masks", ctx.inputs.decode_report, "Flagged masks",
                                       "Masks whose colours are too far from the palette; they are left out of "
                                       "training and evaluation.", empty="none: every mask decoded cleanly.",
                                       rows_filter=lambda r: truthy(r.get("flagged", "")),
                                       columns=["image_id", "mask_path", "off_palette_fraction", "far_fraction",
                                                "max_distance", "classes_present", "flag_reason"]),
        "leakage": ctx.json_table("tab-leakage", d.leakage, "Leakage check",
                                  "Subjects or identical files shared between train, val and the test sets."),
        "near_duplicates": ctx.csv_table("tab-near-duplicates", d.near_duplicates, "Near-duplicate images",
                                         "Image pairs whose perceptual hashes are within the configured distance.",
                                         empty="none found."),
    }
