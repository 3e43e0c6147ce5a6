# usseg: diagnose an abdominal-ultrasound segmentation dataset, then train and
# evaluate one model per experiment, and write one traceable report.
#   snakemake --cores 8 report               # everything
#   snakemake --cores 8 diagnostics_report   # a first look: the data checks only, about a minute


import copy
import sys

from snakemake.utils import min_version

from usseg import rerun
from usseg.console import modified_time, print_closing_summary, report_built
from usseg.run_state import check_after_failure, check_at_start

min_version("9.0")

# What --configfile/--config gave: Snakemake fills `config` with it before
# reading config.yaml under it. rules/common.smk lets its `experiments`
# replace config.yaml's instead of merging (docs/experiments.md).
COMMAND_LINE_CONFIG = copy.deepcopy(config)

# This process is the run itself, not one of its jobs reading the Snakefile
# again (a cluster job): only the run checks its files at start-up.
RUN_PROCESS = not rerun.is_job()
# How to re-run this run (its --configfile, --config, --directory, ...), for
# every command a message suggests; its jobs inherit it (usseg.rerun).
rerun.remember(sys.argv[1:])


# The workflow's own config.yaml, also when run with --directory elsewhere:
# every variant is an overlay over it.
CONFIG_YAML = f"{workflow.basedir}/config.yaml"


configfile: CONFIG_YAML


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/diagnostics.smk"
include: "rules/train.smk"
include: "rules/pipeline_checks.smk"
include: "rules/gap_common.smk"
include: "rules/gap.smk"
include: "rules/report_common.smk"
include: "rules/verdict.smk"
include: "rules/report.smk"
include: "rules/config.smk"


localrules:
    all,
    verdict,
    manifest,
    split,
    report,
    diagnostics_report,
    resolved_config,


rule all:
    default_target: True
    input:
        rules.report.output.html,


# Each report page, the provenance record of what it showed, and the command that rebuilds it.
REPORTS = {
    rules.report.output.html: (rules.report.output.provenance, rerun.command("report")),
    rules.diagnostics_report.output.html: (
        rules.diagnostics_report.output.provenance,
        rerun.command("diagnostics_report"),
    ),
}

# A report that shows files now gone, or a folder output that lost files, is
# marked out of date before Snakemake plans the run (usseg.run_state), so this
# run rebuilds them rather than saying "Nothing to be done".
if RUN_PROCESS:
    for _line in check_at_start(PROV, REPORTS):
        print(f"usseg: {_line}", file=sys.stderr)

# Each report's file time now: the closing summary is printed only after a run that wrote one.
REPORT_TIMES = {html: modified_time(html) for html in REPORTS}


# A run that wrote a report ends with the verdict, the headline Dice and where the report is.
onsuccess:
    # The full report's verdict is the final checklist (the pipeline check, the domain
    # shift judged on measured harm); the first look's is the data checks'.
    for _html, _with_training, _checklist in (
        (rules.report.output.html, True, rules.verdict.output.checklist),
        (
            rules.diagnostics_report.output.html,
            False,
            rules.diagnostics.output.checklist,
        ),
    ):
        if report_built(_html, REPORT_TIMES[_html]):
            print_closing_summary(
                config,
                _html,
                _with_training,
                _checklist,
                rules.manifest.output.manifest,
                rules.split.output.splits,
                {
                    e: expand(
                        rules.evaluate.output.summary,
                        experiment=e,
                        test_set=TEST_SETS,
                    )
                    for e in EXPERIMENTS
                },
            )


# A failed step leaves no report that looks current (usseg.run_state).
onerror:
    for _line in check_after_failure(PROV, REPORTS):
        print(f"usseg: {_line}", file=sys.stderr)
