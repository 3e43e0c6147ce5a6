"""What of the run a page could not show, said on its first screen: parts that could not train on this
data (usseg.trainability, with the reason), or a first look without training (rule diagnostics_report)."""

from __future__ import annotations

from usseg.rerun import command


def training_notices(ctx) -> list[dict]:
    """[{"head", "text"}] for the page's header; none when everything the config asks for is on it."""
    inputs, plan = ctx.inputs, ctx.inputs.plan
    configured = list(ctx.config["experiments"])
    out = []
    if not inputs.with_training:
        text = (f"this page has the verdict and every data check, and no training. `{command('report')}` "
                f"trains and evaluates the {len(configured)} experiment(s) of the configuration")
        if plan.untrained:
            text += f"; on this data some cannot be trained. {plan.notice()}"
        out.append({"head": "First look", "text": text + "."})
        return out
    if plan.untrained:
        trained = plan.trained(configured)
        head = ("No experiment could be trained" if not trained
                else f"{len(plan.untrained)} of {len(configured)} experiments could not be trained")
        out.append({"head": head, "text": (
            f"{plan.notice()} The data checks and the verdict need no training and are complete. To train, add "
            "annotated training images of that modality, or train on a modality that has them "
            "(train_modalities of the experiment).")})
    if plan.no_sanity:
        names = ", ".join(plan.no_sanity)
        out.append({"head": "Sanity checks not run", "text": f"{names}: {next(iter(plan.no_sanity.values()))}."})
    if plan.nnunet:
        out.append({"head": "nnU-Net reference not run", "text": f"{plan.nnunet} (nnunet.train_modalities)."})
    if plan.gap:
        out.append({"head": "Gap study not run", "text": f"{plan.gap}."})
    return out
