# usseg: diagnose an abdominal-ultrasound segmentation dataset, then train and
# evaluate one model per experiment, and write one traceable report.
#   snakemake --cores 8 report


from snakemake.utils import min_version

from usseg.console import print_run_summary

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/diagnostics.smk"
include: "rules/train.smk"
include: "rules/report.smk"
include: "rules/pipeline_checks.smk"


localrules:
    all,
    manifest,
    split,
    report,


rule all:
    default_target: True
    input:
        rules.report.output.html,


# The run ends with the verdict, the headline Dice and where the report is.
onsuccess:
    print_run_summary(
        rules.diagnostics.output.checklist,
        eval_summaries(),
        rules.report.output.html,
    )
