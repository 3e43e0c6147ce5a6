# Helpers and input functions shared by the rules. Every value a rule uses
# reaches it through params:, so changing one experiment re-runs only its jobs.

import os
from pathlib import Path

import yaml

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from usseg.code_deps import code_files, module_code_files
from usseg.dataset_fingerprint import update_fingerprint
from usseg.config import (
    SCHEMA_PATH,
    apply_overlay,
    check_config,
    check_data_root_arguments,
    flat_split_settings,
)
from usseg.contracts import EVALUATION_FILES
from usseg.errors import ConfigError
from usseg.experiment import Experiment
from usseg.prepared_arrays import size_name
from usseg.resources import cpu_slots, gpu_token
from usseg.training.code import experiment_code_files, remedy_modules

# config.yaml with the command line's overlay on top (apply_overlay): a
# variant's experiments are exactly the ones it lists. Built here from the two
# rather than from Snakemake's merge, whose key order depends on the overlay's,
# so the same settings always give the same params (and no spurious re-runs).
with open(CONFIG_YAML) as _fh:
    _resolved = apply_overlay(yaml.safe_load(_fh), COMMAND_LINE_CONFIG)
config.clear()
config.update(_resolved)

# Friendly checks first (they name the key at fault), then Snakemake's own
# schema validation, which also fills defaults.
try:
    # `--config data_root=` reaches the workflow as null (the demo): refused from the raw argument.
    check_data_root_arguments(workflow.config_settings.config_args)
    check_config(config, source="config (config.yaml and any --configfile/--config)")
except ConfigError as err:
    raise WorkflowError(str(err))
validate(config, schema=str(SCHEMA_PATH))

DEMO_DIR = "data/demo"
RESULTS = "results"
LOGS = f"{RESULTS}/logs"
PROV = f"{RESULTS}/provenance"
BENCH = f"{RESULTS}/benchmarks"
DATASET_FINGERPRINT = f"{RESULTS}/dataset_fingerprint.json"
# The conda environment of every rule, used only with `--sdm conda` (relative
# to rules/). Without it the rules run in the environment snakemake runs in.
USSEG_ENV = "../envs/usseg.yaml"

EXPERIMENTS = list(config["experiments"])
TEST_SETS = list(config["test_sets"])
MODALITIES = list(config["dataset"]["modalities"])


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    test_set="|".join(TEST_SETS),
    height="[0-9]+",
    width="[0-9]+",


def data_root():
    """The dataset folder the manifest reads: the user's download, or the demo."""
    if config["data_root"] is None:
        return DEMO_DIR
    root = os.path.expanduser(str(config["data_root"]))
    if not os.path.isdir(root):
        raise WorkflowError(
            f"data_root = {config['data_root']!r} does not exist or is not a folder. "
            "Point data_root in config.yaml at the unzipped dataset (the folder holding AUS/ and RUS/, "
            "at any depth), or set it to null to use the generated demo dataset."
        )
    return root


def dataset_fingerprint():
    """The user's dataset fingerprint file, brought up to date now (at every start-up).

    Rewritten only when a file under data_root was added, removed or changed
    (usseg.dataset_fingerprint), so it makes `manifest` stale exactly then.
    The generated demo is the output of demo_data, which Snakemake tracks itself.
    """
    if config["data_root"] is None:
        return []
    update_fingerprint(data_root(), DATASET_FINGERPRINT)
    return [DATASET_FINGERPRINT]


def dataset_input(wildcards):
    """The demo rule's output when the demo is used; the user's folder otherwise."""
    if config["data_root"] is None:
        return rules.demo_data.output.root
    return data_root()


def code_of(script):
    """The usseg files a rule's script runs, as its inputs (editing one re-runs that rule and what follows).

    Derived from the script's imports, followed transitively through the
    library (usseg.code_deps), never listed by hand; `script` is the rule's
    `script:` path (relative to rules/). Paths are relative to the working
    directory, so the workflow can run with --directory somewhere else.
    """
    path = Path(workflow.basedir) / "rules" / script
    files = code_files(path, Path(workflow.basedir) / "src" / "usseg")
    return [os.path.relpath(f) for f in files]


def experiment_code_of(script, settings_of=None, trainer=True):
    """Input function: code_of(script) plus the modules the experiment's job loads by name
    (usseg.training.code): its trainer (`trainer`) and its remedy families, so editing one
    remedy or trainer re-runs only the jobs of the experiments that use it.

    settings_of(wildcards): the experiment's settings (default: the {experiment} wildcard's).
    """
    static = code_of(script)
    src = Path(workflow.basedir) / "src" / "usseg"

    def code(wildcards):
        exp = Experiment((settings_of or experiment)(wildcards))
        if trainer:
            files = experiment_code_files(exp, src)
        else:
            files = [f for m in remedy_modules(exp) for f in module_code_files(m, src)]
        return sorted(set(static) | {os.path.relpath(f) for f in files})

    return code


def prepared_arrays(settings_of=None):
    """Input function: the prepared arrays (rule prepare_arrays) at the experiment's image size."""

    def arrays(wildcards):
        size = Experiment((settings_of or experiment)(wildcards)).image_size
        return f"{RESULTS}/prepared/{size_name(size)}.safetensors"

    return arrays


def prepared_data(arrays=None, splits=None):
    """The inputs a PreparedData reads (usseg.data.PreparedData.from_rule), spelled once: the manifest,
    the dataset root it recorded, the split (`splits`: another split's input function, e.g. a gap-study
    arm's fold) and the label cache; `arrays`, the prepared arrays' input function (prepared_arrays),
    for the stages that read images at an experiment's size.
    """
    files = {
        "manifest": rules.manifest.output.manifest,
        "root": rules.manifest.output.root,
        "splits": splits or rules.split.output.splits,
        "labels": rules.decode_masks.output.labels,
    }
    return {**files, "arrays": arrays} if arrays is not None else files


def prepared_data_params(remedies=False):
    """The settings a PreparedData reads: the dataset description and, for the stages that run an
    experiment's remedies, the field-of-view threshold they act inside (diagnostics.fov_threshold).
    """
    params = {"dataset": config["dataset"]}
    if remedies:
        params["fov_threshold"] = config["diagnostics"]["fov_threshold"]
    return params


def training_params():
    """The params of a job that trains an experiment (train, sanity_training, the gap study's arms):
    the experiment's resolved settings and what its PreparedData reads."""
    return {"experiment": experiment, **prepared_data_params(remedies=True)}


def evaluation_outputs(folder, category=None):
    """The files an evaluation writes, in `folder` under their usual names (usseg.contracts.EVALUATION_FILES),
    as named outputs (the script passes them on: EvaluationOutputs.from_rule); with `category`, its two
    figures are also in Snakemake's own report under it.
    """

    def figure(path, caption):
        if category is None:
            return path
        return report(
            path,
            caption=f"../docs/captions/{caption}.rst",
            category=category,
            subcategory="{experiment}",
        )

    files = {name: f"{folder}/{file}" for name, file in EVALUATION_FILES.items()}
    files["overlays"] = figure(files["overlays"], "overlays")
    files["confusion_png"] = figure(files["confusion_png"], "confusion")
    return files


def folder_of(output_name, up=1):
    """A param: the folder `up` levels above one of the rule's outputs.

    Derived from the output rather than spelled out, so the folder always
    matches where the output really goes (also with remote storage).
    """

    def folder(wildcards, output):
        return str(Path(output[output_name]).parents[up - 1])

    return folder


def named_inputs(prefix, outputs):
    """Another rule's named outputs as named inputs `<prefix>_<name>`.

    Snakemake keeps no names inside a list given as one input, so a rule that
    reads another's files by name (the report: usseg.report.ReportInputs)
    takes them this way.
    """
    return {f"{prefix}_{name}": path for name, path in outputs.items()}


def demo_provenance():
    """The demo generator's provenance record, when the demo dataset is used."""
    return [rules.demo_data.output.provenance] if config["data_root"] is None else []


def cpu_share(threads=1):
    """The `threads:` of a job that uses `threads` CPU threads: a share of --cores that lets at most as
    many jobs run at once as this machine has CPUs (usseg.resources.cpu_slots), whatever --cores says.

    A job never reads it as its thread count (a training's threads are its experiment's `threads`
    setting). A cluster run has no --cores (Snakemake then refuses workflow.cores): the job asks for
    its own threads.
    """

    def share(wildcards):
        try:
            cores = workflow.cores
        except WorkflowError:
            return threads
        return cpu_slots(threads, cores)

    return share


# The order in which ready jobs start (Snakemake's `priority:`, higher first; the rest 0). No result
# depends on it; the wall time does: on a few cores, a job that other work waits for must not queue
# behind a long independent one (measured in docs/benchmarks.md, "The default run's schedule").
# First the longest job that cannot be split: the nnU-Net reference, which grows with the images' pixels
# (23 minutes on one thread on 450 x 460 images, where started behind the arms it ran alone for 13 of them;
# about a minute on the small demo).
PRIORITY_LONGEST = 30
# Then the jobs that make long work ready: the gap study's splits, and the experiments' trainings and
# evaluations, which the baseline and class-weights arms reuse as their seed 0.
PRIORITY_UNLOCKS = 20
# Then the long independent jobs (the gap study's arms), so that the short jobs
# (checks, figures, domain AUCs) fill the gaps beside them instead of leaving one long job alone at the end.
PRIORITY_LONG = 10


def gap_arm_priority(wildcards):
    """The baseline arm unlocks the prediction-only remedies (they reuse its trainings); other arms are long."""
    return PRIORITY_UNLOCKS if wildcards.get("arm") == "baseline" else PRIORITY_LONG


def experiment_cpu_share(settings_of=None):
    """`cpu_share` of a job that runs with its experiment's `threads` setting."""

    def share(wildcards):
        return cpu_share(Experiment((settings_of or experiment)(wildcards)).threads)(
            wildcards
        )

    return share


def experiment(wildcards):
    """The experiment's resolved settings, a plain mapping: as a param, a changed setting re-runs its jobs."""
    return Experiment.from_config(config, wildcards.experiment).settings


def experiment_gpu(wildcards):
    """The `gpu` token of the experiment's jobs (usseg.resources.gpu_token)."""
    exp = Experiment.from_config(config, wildcards.experiment)
    return gpu_token(exp.device, network=exp.is_network)
