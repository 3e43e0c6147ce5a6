# usseg: diagnose an abdominal-ultrasound segmentation dataset, then train and
# evaluate one model per experiment, and write one traceable report.
#   snakemake --cores 8 report


import copy

from snakemake.utils import min_version

from usseg.console import print_run_summary

min_version("9.0")

# What --configfile/--config gave: Snakemake fills `config` with it before
# reading config.yaml under it. rules/common.smk lets its `experiments`
# replace config.yaml's instead of merging (docs/experiments.md).
COMMAND_LINE_CONFIG = copy.deepcopy(config)


# The workflow's own config.yaml, also when run with --directory elsewhere:
# every variant is an overlay over it.
CONFIG_YAML = f"{workflow.basedir}/config.yaml"


configfile: CONFIG_YAML


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/diagnostics.smk"
include: "rules/train.smk"
include: "rules/pipeline_checks.smk"
include: "rules/verdict.smk"
include: "rules/gap_common.smk"
include: "rules/gap.smk"
include: "rules/report.smk"
include: "rules/config.smk"


localrules:
    all,
    verdict,
    manifest,
    split,
    report,
    resolved_config,


rule all:
    default_target: True
    input:
        rules.report.output.html,


# The run ends with the verdict, the headline Dice and where the report is.
onsuccess:
    print_run_summary(
        rules.diagnostics.output.checklist,
        expand(
            rules.evaluate.output.summary,
            experiment=EXPERIMENTS,
            test_set=TEST_SETS,
        ),
        rules.report.output.html,
    )
