"""The simulator-to-real change in words, computed from the evaluation summaries, never typed in."""

from __future__ import annotations

import math

from usseg.report.formatting import fmt_value, is_number


def scored(summary: dict, cls: str) -> float | None:
    v = (summary.get("dice") or {}).get(cls)
    return float(v) if is_number(v) and not math.isnan(v) else None


MIN_DICE_FOR_RELATIVE_CHANGE = 0.1


def composite_of(summary: dict, classes: list[str]) -> dict | None:
    """The class-macro mean over `classes` (usseg.composite) of one summary with its interval, range and far
    subjects, from its per_subject; None when it has no per-subject values for them."""
    from usseg import composite

    values = composite.summary_values(summary, classes)
    if values.empty or not values.notna().to_numpy().any():
        return None
    return composite.composite(values)


def subject_values(summary: dict, classes: list[str]) -> list[float]:
    """Each subject's term of the class-macro mean over `classes` (usseg.composite.subject_terms)."""
    from usseg import composite

    terms = composite.subject_terms(composite.summary_values(summary, classes))
    return [float(v) for v in terms.to_numpy() if math.isfinite(v)]


def drop_sentence(exp: str, syn_ts: str, real_ts: str, syn: dict, real: dict, classes: list[str]) -> str:
    """The simulator-to-real change of one experiment in words, from its two summaries."""
    head, detail = drop_sentence_parts(exp, syn_ts, real_ts, syn, real, classes)
    return f"{head} {detail}".strip()


def _compared_classes(syn: dict, real: dict, classes: list[str]) -> list[str]:
    """The composite's classes (summary.json mean_foreground.classes, the same on every test set) when the
    summaries name them, else those of `classes` scored on both."""
    named = (syn.get("mean_foreground") or {}).get("classes")
    pool = named if isinstance(named, list) and named else classes
    return [c for c in pool if scored(syn, c) is not None and scored(real, c) is not None]


def drop_sentence_parts(exp: str, syn_ts: str, real_ts: str, syn: dict, real: dict,
                        classes: list[str]) -> tuple[str, str]:
    """(headline, per-class detail) of drop_sentence; the detail is empty for one class.

    Both sides carry their interval, subjects and range (usseg.intervals.describe), and the drop its
    Welch interval: the same class-macro mean (usseg.composite) as the Dice table and the closing summary.
    """
    from usseg import composite
    from usseg.intervals import describe_parts, difference_interval

    shared = _compared_classes(syn, real, classes)
    n_real = real.get("n_subjects")
    stability = f"the real-image estimate rests on {fmt_value(n_real)} subjects"
    stability += " and is unstable" if real.get("unstable") else ""
    if syn.get("unstable"):
        stability += f"; the simulator estimate rests on {fmt_value(syn.get('n_subjects'))} subjects and is unstable"
    if not shared:
        return (f"{exp}: no class is scored on both {syn_ts} and {real_ts}, so no drop can be stated; "
                + f"{stability}.", "")
    what = f"{shared[0]} Dice" if len(shared) == 1 else f"{composite.NAME} over {', '.join(shared)}"
    iv_a, iv_b = composite_of(syn, shared), composite_of(real, shared)
    if len(shared) > 1 and (iv_a is None or iv_b is None):
        return (f"{exp}: the summaries hold no per-subject Dice over {', '.join(shared)}, so no drop can be "
                f"stated; {stability}.", "")
    if iv_a is not None and iv_b is not None:
        a, b = iv_a["estimate"], iv_b["estimate"]
        (value_a, about_a), (value_b, about_b) = describe_parts(iv_a), describe_parts(iv_b)
        side_a, side_b = f"{value_a} on {syn_ts} ({about_a})", f"{value_b} on {real_ts} ({about_b})"
        d = difference_interval(subject_values(syn, shared), subject_values(real, shared))
        drop_ci = (f" (Welch 95 % interval {d['ci95'][0]:.2f} to {d['ci95'][1]:.2f})" if d["ci95"]
                   else f" ({d['note']})")
    else:  # a summary without per-subject values: the class Dice alone, no interval to give
        a, b = scored(syn, shared[0]), scored(real, shared[0])
        side_a, side_b, drop_ci = f"{a:.2f} on {syn_ts}", f"{b:.2f} on {real_ts}", ""
    change = a - b
    if round(abs(change), 2) == 0:
        how = "no change"
    else:
        # A relative change from a near-zero Dice (a model that found almost
        # nothing) is a huge, meaningless percentage: state the absolute one only.
        pct = f" ({abs(change) / a * 100:.0f} %)" if a >= MIN_DICE_FOR_RELATIVE_CHANGE else ""
        how = f"{'a drop' if change > 0 else 'a gain'} of {abs(change):.2f}{pct}"
    text = (f"{exp}: {what} {side_a}, {side_b}: {how} "
            f"from simulator to real images{drop_ci}; {stability}.")
    detail = ""
    if len(shared) > 1:
        per = ", ".join(f"{c} {scored(syn, c):.2f} → {scored(real, c):.2f}" for c in shared)
        detail = f"Per class: {per}."
    return text, detail


def _failing(ctx) -> dict[str, str]:
    """experiment -> the sentence saying it fails in its own domain (usseg.pipeline_report.in_domain_failures)."""
    from usseg.pipeline_report import in_domain_failures

    return {f["experiment"]: f["text"] for f in in_domain_failures(ctx.config, ctx.summaries)}


def drop_sentences(ctx) -> list[tuple[str, str, str]]:
    """(sentence, per-class detail, experiment) per experiment and synthetic/real test-set pair.

    An experiment that fails in its own domain is said to, first, and no gap is read from it."""
    out = []
    failing = _failing(ctx)
    for exp in ctx.experiments:
        if exp in failing:
            out.append((failing[exp], "", exp))
            continue
        for s, r in ctx.domain_pairs():
            head, detail = drop_sentence_parts(exp, s, r, ctx.summaries[(exp, s)], ctx.summaries[(exp, r)],
                                               ctx.fg_classes())
            out.append((head, detail, exp))
    out.sort(key=lambda item: item[2] not in failing)
    return out


def drop_intervals(ctx) -> list[str]:
    """The simulator-to-real drop of each experiment with its own interval (Welch, unpaired), each side's
    per-subject range and any subject far from the others."""
    from usseg import composite
    from usseg.intervals import difference_interval, far_text, range_text

    items = []
    failing = _failing(ctx)
    for e in ctx.experiments:
        if e in failing:
            continue
        for a, b in ctx.domain_pairs():
            sa, sb = ctx.summaries[(e, a)], ctx.summaries[(e, b)]
            shared = _compared_classes(sa, sb, ctx.fg_classes())
            if not shared:
                continue
            ta = composite.subject_terms(composite.summary_values(sa, shared)).dropna()
            tb = composite.subject_terms(composite.summary_values(sb, shared)).dropna()
            iv = difference_interval(ta.to_numpy(), tb.to_numpy(), subjects_a=list(ta.index),
                                     subjects_b=list(tb.index))
            if iv["estimate"] is None:
                continue
            what = f"{composite.NAME} over {', '.join(shared)}" if len(shared) > 1 else f"{shared[0]} Dice"
            ci = f"95 % interval {iv['ci95'][0]:.2f} to {iv['ci95'][1]:.2f}" if iv["ci95"] else iv["note"]
            spread = "; ".join(x for x in (f"{a}: {range_text(iv['range_a'])}", f"{b}: {range_text(iv['range_b'])}",
                                           far_text(iv["far_a"] + iv["far_b"])) if x and not x.endswith(": "))
            items.append(f"{e}: drop in subject-level {what} from {a} to {b}: {iv['estimate']:.2f} ({ci}; "
                         f"{iv['n_a']} and {iv['n_b']} subjects; {spread})")
    return items
