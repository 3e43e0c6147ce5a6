"""The simulator-to-real change in words, computed from the evaluation summaries, never typed in."""

from __future__ import annotations

import math

from usseg.report.formatting import fmt_value, is_number


def scored(summary: dict, cls: str) -> float | None:
    v = (summary.get("dice") or {}).get(cls)
    return float(v) if is_number(v) and not math.isnan(v) else None


MIN_DICE_FOR_RELATIVE_CHANGE = 0.1


def subject_values(summary: dict, classes: list[str]) -> list[float]:
    """Each subject's mean Dice over `classes` (those it has), from the summary's per_subject."""
    out = []
    for values in (summary.get("per_subject") or {}).values():
        vs = [float(values[c]) for c in classes if is_number(values.get(c)) and not math.isnan(values[c])]
        if vs:
            out.append(sum(vs) / len(vs))
    return out


def drop_sentence(exp: str, syn_ts: str, real_ts: str, syn: dict, real: dict, classes: list[str]) -> str:
    """The simulator-to-real change of one experiment in words, from its two summaries."""
    head, detail = drop_sentence_parts(exp, syn_ts, real_ts, syn, real, classes)
    return f"{head} {detail}".strip()


def drop_sentence_parts(exp: str, syn_ts: str, real_ts: str, syn: dict, real: dict,
                        classes: list[str]) -> tuple[str, str]:
    """(headline, per-class detail) of drop_sentence; the detail is empty for one class."""
    shared = [c for c in classes if scored(syn, c) is not None and scored(real, c) is not None]
    n_real = real.get("n_subjects")
    stability = f"the real-image estimate rests on {fmt_value(n_real)} subjects"
    stability += " and is unstable" if real.get("unstable") else ""
    if syn.get("unstable"):
        stability += f"; the simulator estimate rests on {fmt_value(syn.get('n_subjects'))} subjects and is unstable"
    if not shared:
        return (f"{exp}: no class is scored on both {syn_ts} and {real_ts}, so no drop can be stated; "
                + f"{stability}.", "")
    if len(shared) == 1:
        c = shared[0]
        a, b = scored(syn, c), scored(real, c)
        what = f"{c} Dice"
    else:
        # Each subject's mean over the shared classes, then the mean over subjects: the definition of the
        # evaluation's mean foreground Dice, the Dice table, the gap study and the run's closing summary,
        # so one model on one test set has one number in the whole report.
        syn_subjects, real_subjects = subject_values(syn, shared), subject_values(real, shared)
        if not syn_subjects or not real_subjects:
            return (f"{exp}: the summaries hold no per-subject Dice over {', '.join(shared)}, so no drop can be "
                    f"stated; {stability}.", "")
        a = sum(syn_subjects) / len(syn_subjects)
        b = sum(real_subjects) / len(real_subjects)
        what = f"subject-level mean Dice over the {len(shared)} classes scored on both ({', '.join(shared)})"
    change = a - b
    if round(abs(change), 2) == 0:
        how = "no change"
    else:
        # A relative change from a near-zero Dice (a model that found almost
        # nothing) is a huge, meaningless percentage: state the absolute one only.
        pct = f" ({abs(change) / a * 100:.0f} %)" if a >= MIN_DICE_FOR_RELATIVE_CHANGE else ""
        how = f"{'a drop' if change > 0 else 'a gain'} of {abs(change):.2f}{pct}"
    text = (f"{exp}: {what} {a:.2f} on {syn_ts}, {b:.2f} on {real_ts}: {how} "
            f"from simulator to real images; {stability}.")
    detail = ""
    if len(shared) > 1:
        per = ", ".join(f"{c} {scored(syn, c):.2f} → {scored(real, c):.2f}" for c in shared)
        detail = f"Per class: {per}."
    return text, detail


def drop_sentences(ctx) -> list[tuple[str, str, str]]:
    """(sentence, per-class detail, experiment) per experiment and synthetic/real test-set pair."""
    out = []
    for exp in ctx.experiments:
        for s, r in ctx.domain_pairs():
            head, detail = drop_sentence_parts(exp, s, r, ctx.summaries[(exp, s)], ctx.summaries[(exp, r)],
                                               ctx.fg_classes())
            out.append((head, detail, exp))
    return out


def drop_interval(sa: dict, sb: dict, classes: list[str]) -> dict | None:
    """The simulator-to-real drop of one experiment with its own interval (Welch, unpaired), over the classes
    scored on both test sets; None when none is."""
    from usseg.intervals import difference_interval

    shared = [c for c in classes if scored(sa, c) is not None and scored(sb, c) is not None]
    if not shared:
        return None
    iv = difference_interval(subject_values(sa, shared), subject_values(sb, shared))
    return None if iv["estimate"] is None else {**iv, "classes": shared}


def drop_intervals(ctx) -> list[str]:
    """The simulator-to-real drop of each experiment with its own interval (Welch, unpaired), in words."""
    items = []
    for e in ctx.experiments:
        for a, b in ctx.domain_pairs():
            iv = drop_interval(ctx.summaries[(e, a)], ctx.summaries[(e, b)], ctx.fg_classes())
            if iv is None:
                continue
            shared = iv["classes"]
            what = f"mean Dice over {', '.join(shared)}" if len(shared) > 1 else f"{shared[0]} Dice"
            ci = f"95 % interval {iv['ci95'][0]:.2f} to {iv['ci95'][1]:.2f}" if iv["ci95"] else iv["note"]
            items.append(f"{e}: drop in subject-level {what} from {a} to {b}: {iv['estimate']:.2f} ({ci}; "
                         f"{iv['n_a']} and {iv['n_b']} subjects)")
    return items


# ----------------------------------------------------------------------------- said once, then per experiment


def _stability(summary: dict) -> tuple:
    return summary.get("n_subjects"), bool(summary.get("unstable"))


def drops_summary(ctx) -> dict:
    """What the models say from simulator to real images, with what every experiment shares said once.

    Returns {"common": [sentences], "lines": [{"experiment": Name, "text", "detail"}]}: the common
    sentences name the subjects behind every estimate (and "unstable") when all experiments share them;
    each item gives the experiment's own numbers, always with the drop's interval (or why there is none).
    """
    pairs = ctx.domain_pairs()
    if not pairs:
        return {"common": [], "lines": []}
    classes = ctx.fg_classes()
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
            items.append({"experiment": ctx.names.experiment(e), "text": text + ".", "detail": detail})
    return {"common": common, "lines": items}


def _drop_text(ctx, syn_ts: str, real_ts: str, syn: dict, real: dict, classes: list[str]) -> str:
    """One experiment's drop: its values on both test sets, the change and the change's interval."""
    shared = [c for c in classes if scored(syn, c) is not None and scored(real, c) is not None]
    syn_name, real_name = ctx.names.test_set(syn_ts), ctx.names.test_set(real_ts)
    if not shared:
        return f"no class is scored on both the {syn_name} and the {real_name}, so no drop can be stated"
    iv = drop_interval(syn, real, classes)
    if len(shared) == 1:
        a, b = scored(syn, shared[0]), scored(real, shared[0])
        what = f"{shared[0]} Dice"
    else:
        syn_subjects, real_subjects = subject_values(syn, shared), subject_values(real, shared)
        if not syn_subjects or not real_subjects:
            return f"no per-subject Dice over {', '.join(shared)}, so no drop can be stated"
        a, b = sum(syn_subjects) / len(syn_subjects), sum(real_subjects) / len(real_subjects)
        what = f"mean Dice over {len(shared)} classes"
    change = a - b
    if round(abs(change), 2) == 0:
        how = "no change"
    else:
        how = f"{'a drop' if change > 0 else 'a gain'} of {abs(change):.2f}"
    if iv is not None and iv["ci95"]:
        # The interval of the drop (simulator minus real): shown as it is, whatever the sign of the change.
        how += f" (95 % interval of the drop {iv['ci95'][0]:.2f} to {iv['ci95'][1]:.2f})"
    elif iv is not None:
        how += f" ({iv['note']})"
    # One pair of test sets: "simulator" and "real" say which; several: their names do.
    if len(ctx.domain_pairs()) == 1:
        syn_name, real_name = "simulator images", "real images"
    return f"{what} {a:.2f} on {syn_name}, {b:.2f} on {real_name}: {how}"
