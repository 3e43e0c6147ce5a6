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
    """experiment -> the sentence saying it fails in its own domain (usseg.checks.pipeline.in_domain_failures)."""
    from usseg.checks.pipeline import in_domain_failures

    return {f["experiment"]: f["text"] for f in in_domain_failures(ctx.config, ctx.summaries)}


def drop_interval(sa: dict, sb: dict, classes: list[str]) -> dict | None:
    """The simulator-to-real drop of one experiment with its own interval (Welch, unpaired) on the
    class-macro mean (usseg.composite) over the classes scored on both test sets, with each side's
    per-subject range and any subject far from the others; None when no class is scored on both."""
    from usseg import composite
    from usseg.intervals import difference_interval

    shared = _compared_classes(sa, sb, classes)
    if not shared:
        return None
    ta = composite.subject_terms(composite.summary_values(sa, shared)).dropna()
    tb = composite.subject_terms(composite.summary_values(sb, shared)).dropna()
    iv = difference_interval(ta.to_numpy(), tb.to_numpy(), subjects_a=list(ta.index), subjects_b=list(tb.index))
    return None if iv["estimate"] is None else {**iv, "classes": shared}


# ----------------------------------------------------------------------------- said once, then per experiment


def _stability(summary: dict) -> tuple:
    return summary.get("n_subjects"), bool(summary.get("unstable"))


def drops_summary(ctx) -> dict:
    """What the models say from simulator to real images, with what every experiment shares said once.

    Returns {"common": [sentences], "lines": [{"experiment": Name, "text", "detail"}]}: the common
    sentences name the subjects behind every estimate (and "unstable") when all experiments share them;
    each item gives the experiment's own numbers, always with their intervals and the drop's interval
    (or why there is none). An experiment that fails in its own domain is said to, first, and no gap is
    read from it (usseg.checks.pipeline.in_domain_failures).
    """
    pairs = ctx.domain_pairs()
    if not pairs:
        return {"common": [], "lines": []}
    classes = ctx.fg_classes()
    failing = _failing(ctx)
    common, items = [], []
    sides = {}
    for side, index in (("real-image", 1), ("simulator", 0)):
        values = {_stability(ctx.summaries[(e, pair[index])]) for e in ctx.experiments for pair in pairs}
        if len(values) == 1:
            sides[side] = values.pop()
    if len(sides) == 2 and sides["real-image"] == sides["simulator"]:
        n, unstable = sides["real-image"]
        common.append(f"Every estimate, on real and on simulator images, rests on {fmt_value(n)} test subjects"
                      + (": unstable (fewer than 5)." if unstable else "."))
    else:
        for side, (n, unstable) in sides.items():
            if side == "real-image" or unstable:
                common.append(f"Every {side} estimate rests on {fmt_value(n)} test subjects"
                              + (": unstable (fewer than 5)." if unstable else "."))
    shared_real = len({_stability(ctx.summaries[(e, p[1])]) for e in ctx.experiments for p in pairs}) == 1
    shared_syn = len({_stability(ctx.summaries[(e, p[0])]) for e in ctx.experiments for p in pairs}) == 1
    for e in ctx.experiments:
        if e in failing:
            items.append({"experiment": ctx.names.experiment(e), "text": failing[e], "detail": "", "fails": True})
            continue
        for syn_ts, real_ts in pairs:
            syn, real = ctx.summaries[(e, syn_ts)], ctx.summaries[(e, real_ts)]
            text = _drop_text(ctx, syn_ts, real_ts, syn, real, classes)
            own = []
            if not shared_real:
                own.append(f"{fmt_value(real.get('n_subjects'))} real test subjects"
                           + (", unstable" if real.get("unstable") else ""))
            if not shared_syn and syn.get("unstable"):
                own.append(f"{fmt_value(syn.get('n_subjects'))} simulator test subjects, unstable")
            if own:
                text += f" ({'; '.join(own)})"
            _, detail = drop_sentence_parts(e, syn_ts, real_ts, syn, real, classes)
            items.append({"experiment": ctx.names.experiment(e), "text": text + ".", "detail": detail,
                          "fails": False})
    items.sort(key=lambda item: not item["fails"])
    return {"common": common, "lines": items}


def _drop_text(ctx, syn_ts: str, real_ts: str, syn: dict, real: dict, classes: list[str]) -> str:
    """One experiment's drop: its values on both test sets with their intervals, the change and the
    change's interval, the same class-macro mean (usseg.composite) as the Dice table."""
    from usseg import composite
    from usseg.intervals import describe_parts, far_text

    shared = _compared_classes(syn, real, classes)
    syn_name, real_name = ctx.names.test_set(syn_ts), ctx.names.test_set(real_ts)
    # One pair of test sets: "simulator" and "real" say which; several: their names do.
    if len(ctx.domain_pairs()) == 1:
        syn_name, real_name = "simulator images", "real images"
    if not shared:
        return f"no class is scored on both the {syn_name} and the {real_name}, so no drop can be stated"
    what = f"{shared[0]} Dice" if len(shared) == 1 else f"{composite.NAME} over {len(shared)} classes"
    iv_a, iv_b = composite_of(syn, shared), composite_of(real, shared)
    if iv_a is not None and iv_b is not None:
        a, b = iv_a["estimate"], iv_b["estimate"]
        side_a, side_b = describe_parts(iv_a)[0], describe_parts(iv_b)[0]
    elif len(shared) == 1:  # a summary without per-subject values: the class Dice alone, no interval to give
        a, b = scored(syn, shared[0]), scored(real, shared[0])
        side_a, side_b = f"{a:.2f}", f"{b:.2f}"
    else:
        return f"no per-subject Dice over {', '.join(shared)}, so no drop can be stated"
    change = a - b
    how = "no change" if round(abs(change), 2) == 0 else f"{'a drop' if change > 0 else 'a gain'} of {abs(change):.2f}"
    iv = drop_interval(syn, real, classes)
    if iv is not None and iv["ci95"]:
        # The interval of the drop (simulator minus real): shown as it is, whatever the sign of the change.
        how += f" (95 % interval of the drop {iv['ci95'][0]:.2f} to {iv['ci95'][1]:.2f})"
    elif iv is not None:
        how += f" ({iv['note']})"
    far = far_text((iv or {}).get("far_a", []) + (iv or {}).get("far_b", []))
    return f"{what} {side_a} on {syn_name}, {side_b} on {real_name}: {how}" + (f"; {far}" if far else "")
