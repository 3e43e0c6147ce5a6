"""SLURM: the sbatch command profiles/slurm produces, and the tiny workflow on a real cluster.

The cluster tests start a single-node SLURM (tools/slurm/start-cluster.sh:
munged, slurmctld and slurmd on localhost, no cgroups, no accounting) for the
session and stop it at the end, also when a test fails. They skip outside CI
when SLURM is not installed or the tests do not run as root; in CI both are
failures (`make test` installs SLURM through tools/install-system-deps.sh).
The sbatch-command test needs no cluster: a fake sbatch records its arguments.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from conftest import REPO, copy_run, in_ci, run_snakemake, snakemake_cmd, tiny_config

pytestmark = pytest.mark.slurm

PROFILE_DIR = REPO / "profiles" / "slurm"
START = REPO / "tools" / "slurm" / "start-cluster.sh"
STOP = REPO / "tools" / "slurm" / "stop-cluster.sh"
SLURM_BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
# The cheap steps that run where Snakemake runs, never as SLURM jobs.
CHEAP_LOCAL_RULES = {"manifest", "split", "report"}
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (.+?)\)\.")
FINISHED = re.compile(r"Finished jobid: (\d+) \(Rule: (\w+)\)")
# A job's block: "rule x:", or "localrule x:" for one that runs on this host ("checkpoint" and
# "localcheckpoint" for a checkpoint such as split).
HEADER = re.compile(r"^(localrule|rule|localcheckpoint|checkpoint) (\w+):\n((?:    .*\n)+)", re.MULTILINE)


# ----------------------------------------------------------------------------- helpers


def load_profile() -> dict:
    return yaml.safe_load((PROFILE_DIR / "profile.yaml").read_text())


def write_profile(profile: dict, folder: Path) -> Path:
    """A copy of profiles/slurm with some values changed, as a profile folder."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "profile.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


def local_cluster_profile(folder: Path) -> Path:
    """profiles/slurm as shipped, fitted to the test cluster's one GPU-less node.

    Partition and account in their one place, no GPU, small CPU and memory
    requests, and status checks every second instead of every 20.
    """
    profile = load_profile()
    profile["default-resources"].update(
        slurm_partition="debug", slurm_account="usseg_ci", mem_mb=500
    )
    if profile.get("set-threads"):  # an empty mapping would become a bare --set-threads
        profile["set-threads"] = {rule: 1 for rule in profile["set-threads"]}
    for resources in profile["set-resources"].values():
        for key in list(resources):
            if key == "mem_mb":
                resources[key] = 500
            elif key == "cpus_per_task":
                resources[key] = 1
            elif key in ("gpu", "gpus"):
                resources[key] = 0
            elif key == "gpu_model":
                del resources[key]
    profile.update({
        "slurm-init-seconds-before-status-checks": 1,
        "seconds-between-status-checks": 1,
        "max-status-checks-per-second": 10,
        "latency-wait": 10,
    })
    return write_profile(profile, folder)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require_cluster_prerequisites() -> None:
    """Skip outside CI when this machine cannot host the test cluster; fail in CI."""
    problems = []
    missing = [b for b in SLURM_BINARIES if shutil.which(b) is None]
    if missing:
        problems.append(
            f"SLURM binaries not found: {', '.join(missing)} "
            "(install them with tools/install-system-deps.sh or `make system-deps`)"
        )
    if os.geteuid() != 0:
        problems.append("not root: slurmd has to run as root to start jobs")
    if problems:
        message = "cannot start the single-node SLURM cluster: " + "; ".join(problems)
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)


def read_pid(path: Path) -> int:
    return int(path.read_text().strip())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes (it only waits for its parent).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def wait_dead(pids, timeout=15.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.2)
    return [p for p in pids if pid_alive(p)]


@dataclass
class Cluster:
    state: Path
    conf: Path
    env: dict

    @property
    def pids(self) -> dict[str, int]:
        return {
            "munged": read_pid(self.state / "munge" / "munged.pid"),
            "slurmctld": read_pid(self.state / "run" / "slurmctld.pid"),
            "slurmd": read_pid(self.state / "run" / "slurmd.pid"),
        }

    def run(self, *cmd: str, check: bool = True, timeout: int = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(cmd, check=False, env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return proc

    def squeue_history(self) -> dict[str, dict]:
        """Every job slurmctld still remembers (finished ones for MinJobAge seconds)."""
        out = self.run("squeue", "--states=all", "--noheader", "--format=%i|%T|%j|%a|%P").stdout
        jobs = {}
        for line in out.splitlines():
            job_id, state, name, account, partition = line.strip().split("|")
            jobs[job_id] = {"state": state, "name": name, "account": account, "partition": partition}
        return jobs

    def why_not_done(self, job_id: str) -> str:
        """What a stuck job's failure message needs: its reason, the node, and both daemons' logs."""
        job = self.run("scontrol", "show", "job", job_id, check=False)
        node = self.run("scontrol", "show", "node", "localhost", check=False)
        return (
            f"job {job_id} not COMPLETED:\n{job.stdout}{job.stderr}\n{node.stdout}{node.stderr}\n"
            f"--- slurmctld.log\n{tail(self.state / 'log' / 'slurmctld.log')}\n"
            f"--- slurmd.log\n{tail(self.state / 'log' / 'slurmd.log')}"
        )


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return f"({path} missing)"


def start_cluster(state: Path) -> Cluster:
    env = dict(os.environ)
    env["USSEG_SLURMCTLD_PORT"] = str(free_port())
    env["USSEG_SLURMD_PORT"] = str(free_port())
    proc = subprocess.run(
        ["bash", str(START), str(state)], check=False, env=env, capture_output=True, text=True, timeout=180
    )
    if proc.returncode != 0:
        raise AssertionError(f"start-cluster.sh failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    conf = state.resolve() / "etc" / "slurm.conf"
    assert f"export SLURM_CONF={conf}" in proc.stdout
    env["SLURM_CONF"] = str(conf)
    return Cluster(state=state.resolve(), conf=conf, env=env)


def stop_cluster(cluster: Cluster) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", str(STOP), str(cluster.state)], check=False, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A running single-node cluster for the session; its daemons are stopped at the end."""
    require_cluster_prerequisites()
    cluster = start_cluster(tmp_path_factory.mktemp("slurm"))
    pids = cluster.pids
    try:
        # Snakemake's job steps drop SLURM_CONF before `srun`, which then reads
        # /etc/slurm/slurm.conf: that has to be this cluster's (start-cluster.sh
        # links it when the path is free).
        system_conf = Path("/etc/slurm/slurm.conf")
        if not (system_conf.exists() and system_conf.resolve() == cluster.conf):
            message = (
                f"{system_conf} is not the test cluster's configuration (another SLURM on this "
                "machine, or a cluster started by hand: stop it with tools/slurm/stop-cluster.sh)"
            )
            if in_ci():
                pytest.fail(message)
            pytest.skip(message)
        yield cluster
    finally:
        proc = stop_cluster(cluster)
        left = wait_dead(pids.values())
        if proc.returncode != 0 or left:
            raise AssertionError(
                f"stop-cluster.sh did not stop the test cluster (rc {proc.returncode}, alive: {left}):\n"
                f"{proc.stdout}\n{proc.stderr}"
            )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def assert_same_numbers(a, b, where: str) -> None:
    """Equal JSON values; floats up to 1e-6 relative (the last printed digit)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{where}: keys {sorted(a)} != {sorted(b)}"
        for key in a:
            assert_same_numbers(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), f"{where}: {a} != {b}"
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_numbers(x, y, f"{where}[{i}]")
    elif isinstance(a, float) or isinstance(b, float):
        assert isinstance(b, (int, float)) and isinstance(a, (int, float)), f"{where}: {a!r} != {b!r}"
        assert (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-9), (
            f"{where}: {a!r} != {b!r}"
        )
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


# ----------------------------------------------------------------------------- the sbatch command


FAKE_SBATCH = """\
#!{python}
# Records the arguments it was called with, then fails the submission.
import json, os, sys
with open(os.environ["USSEG_FAKE_SBATCH_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
print("fake sbatch: arguments recorded", file=sys.stderr)
sys.exit(1)
"""
# The other SLURM commands the plugin asks before it submits, answering as a
# cluster without accounting on which proj_usseg is one of your accounts.
FAKE_CLIENTS = {
    "sacctmgr": "echo proj_usseg",
    "sshare": "exit 0",
    "sacct": "exit 1",
    "sinfo": "printf 'PARTITION\\ndebug*\\n'",
    "squeue": "exit 0",
    "scontrol": "printf 'MaxArraySize = 1001\\nMinJobAge = 600 sec\\n'",
}


@pytest.mark.parametrize("gpu_model", [None, "a100"])
def test_profile_submits_training_with_its_gpu_cpu_memory_time_partition_account_and_requeue(
    tmp_path, monkeypatch, gpu_model
):
    profile = load_profile()
    train = profile["set-resources"]["train"]
    defaults = profile["default-resources"]

    # The profile itself: partition and account in one place, a GPU for
    # training, requeue on pre-emption, incomplete outputs redone.
    assert profile["executor"] == "slurm"
    assert {"slurm_partition", "slurm_account", "runtime", "mem_mb"} <= set(defaults)
    for rule, resources in profile["set-resources"].items():
        assert "slurm_account" not in resources, f"{rule} sets its own account"
        assert "slurm_partition" not in resources, f"{rule} sets its own partition"
    assert isinstance(train["gpu"], int) and train["gpu"] >= 1
    assert profile["slurm-requeue"] is True
    assert profile["rerun-incomplete"] is True

    # Fill in the one place a user edits, exactly as a user would.
    defaults["slurm_partition"] = "gpu_part"
    defaults["slurm_account"] = "proj_usseg"
    if gpu_model:
        train["gpu_model"] = gpu_model
    prof = write_profile(profile, tmp_path / "profile")

    fake_bin = tmp_path / "fake-bin"
    fake_bin.mkdir()
    (fake_bin / "sbatch").write_text(FAKE_SBATCH.format(python=sys.executable))
    for name, body in FAKE_CLIENTS.items():
        (fake_bin / name).write_text(f"#!/bin/sh\n{body}\n")
    for script in fake_bin.iterdir():
        script.chmod(0o755)
    record = tmp_path / "sbatch-calls.jsonl"
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("USSEG_FAKE_SBATCH_LOG", str(record))
    monkeypatch.delenv("SLURM_CONF", raising=False)

    # Only the training job: everything upstream is there (stand-ins), and
    # only missing files trigger a job (no mtime trigger: the library's code
    # may be edited while this runs), so nothing else is submitted.
    workdir = tmp_path / "work"
    upstream = [
        "data/demo/abdominal_US/", "results/provenance/demo_data.json",
        "results/manifest.csv", "results/manifest_issues.csv", "results/dataset_root.json",
        "results/provenance/manifest.json",
        "results/labels/", "results/provenance/decode_masks.json",
        "results/splits.csv", "results/provenance/split.json",
    ]
    # The prepared arrays at the experiment's image size (rule prepare_arrays, an input of training).
    from usseg.experiment import Experiment
    from usseg.prepared_arrays import size_name

    size = size_name(Experiment.from_config(tiny_config(), "liver_unet").image_size)
    upstream += [f"results/prepared/{size}.safetensors", f"results/provenance/prepare_arrays/{size}.json"]
    now = time.time()
    for rel in upstream:
        path = workdir / rel
        if rel.endswith("/"):
            path.mkdir(parents=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("{}\n" if rel.endswith(".json") else "image_id\n")
    for rel in upstream:
        os.utime(workdir / rel, (now, now))
    target = "results/experiments/liver_unet/model.safetensors"
    proc = run_snakemake(
        # (the target right after a one-value option: --configfile would take it)
        workdir, "--rerun-triggers", "input", "--workflow-profile", str(prof), target,
        check=False, timeout=300,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "fake sbatch: arguments recorded" in output, output[-4000:]

    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(calls) == 1, calls
    argv = calls[0]

    # Split the call into options; the few values that vary per run are checked apart.
    with_value = {"--job-name", "--output", "--comment", "-A", "-p", "-t", "--mem", "-D"}
    options, i = {}, 0
    while i < len(argv):
        arg = argv[i]
        if arg in with_value:
            options[arg] = argv[i + 1]
            i += 2
            continue
        name, _, value = arg.partition("=")
        assert name not in options, f"{name} given twice: {argv}"
        options[name] = value if _ else True
        i += 1

    wrap = options.pop("--wrap")
    job_name = options.pop("--job-name")
    assert re.fullmatch(r"usseg_[0-9a-f-]{36}", job_name), job_name
    assert "--executor slurm-jobstep" in wrap and "train:experiment=liver_unet" in wrap, wrap
    gpus = f"{gpu_model}:{train['gpu']}" if gpu_model else str(train["gpu"])
    assert options == {
        "--parsable": True,
        "--output": str(workdir / "results" / "logs" / "slurm" / "rule_train" / "liver_unet" / "%j.log"),
        "--export": "ALL",
        "--comment": "rule_train_wildcards_liver_unet",
        "-A": "proj_usseg",
        "-p": "gpu_part",
        "-t": str(train["runtime"]),
        "--mem": str(train["mem_mb"]),
        "--requeue": True,
        "--open-mode": "append",
        "--cpus-per-gpu": str(train["cpus_per_gpu"]),
        "--gpus": gpus,
        "-D": str(workdir),
    }, argv


# ----------------------------------------------------------------------------- a real cluster


@pytest.mark.e2e
def test_cluster_scripts_run_a_job_are_idempotent_and_stop_only_their_own_daemons(
    slurm_cluster, tmp_path
):
    # A second cluster beside the session's, on its own ports and state folder. The folder is short on
    # purpose: slurmstepd's socket path below it must fit 107 bytes, which pytest's nested temporary
    # folders can exceed (see the test below).
    second = start_cluster(Path(tempfile.mkdtemp(prefix="usseg-slurm-")))
    try:
        pids = second.pids
        again = subprocess.run(
            ["bash", str(START), str(second.state)],
            check=False, env=second.env, capture_output=True, text=True, timeout=60,
        )
        assert again.returncode == 0 and "already running" in again.stderr, again.stderr
        assert second.pids == pids

        node = second.run("sinfo", "--noheader", "--Node", "--format=%N %P %T").stdout.split()
        assert node == ["localhost", "debug*", "idle"], node

        out = tmp_path / "hostname.out"
        job_id = second.run(
            "sbatch", "--parsable", f"--output={out}", "--wrap", "hostname"
        ).stdout.strip()
        # The scheduler's own cycle (sched_interval=5) decides when a job starts; a minute leaves room for a
        # loaded machine.
        deadline = time.monotonic() + 60
        while second.squeue_history().get(job_id, {}).get("state") != "COMPLETED":
            assert time.monotonic() < deadline, second.why_not_done(job_id)
            time.sleep(0.5)
        assert out.read_text().strip() == socket.gethostname()
        jobcomp = (second.state / "log" / "jobcomp.log").read_text()
        assert re.search(rf"JobId={job_id} .*JobState=COMPLETED", jobcomp), jobcomp
    finally:
        stopped = stop_cluster(second)
    assert stopped.returncode == 0, stopped.stderr
    assert wait_dead(pids.values()) == []
    # The session's cluster is untouched and still takes jobs.
    assert all(pid_alive(p) for p in slurm_cluster.pids.values())
    state = slurm_cluster.run("sinfo", "--noheader", "--Node", "--format=%T").stdout.strip()
    assert state in ("idle", "mixed", "allocated"), state
    # Stopping twice is harmless.
    assert stop_cluster(second).returncode == 0
    shutil.rmtree(second.state)


def test_a_state_folder_too_long_for_slurm_s_sockets_is_refused_before_any_daemon_starts(tmp_path):
    require_cluster_prerequisites()
    state = tmp_path / ("state-" + "x" * 60)
    proc = subprocess.run(["bash", str(START), str(state)], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "too long" in proc.stderr and str(state) in proc.stderr and "shorter STATE_DIR" in proc.stderr, proc.stderr
    assert not (state / "munge").exists() and not (state / "etc").exists()


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_tiny_workflow_on_slurm_runs_as_slurm_jobs_and_matches_the_local_run(
    slurm_cluster, tiny_run, tmp_path, monkeypatch
):
    prof = local_cluster_profile(tmp_path / "profile")
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))

    workdir = tmp_path / "work"
    workdir.mkdir()
    started = time.monotonic()
    proc = run_snakemake(workdir, "--workflow-profile", str(prof), "report", timeout=540)
    elapsed = time.monotonic() - started
    output = proc.stdout + proc.stderr
    print(f"tiny workflow on SLURM: {elapsed:.0f} s")

    # Which jobs ran, which went to SLURM.
    ran = {int(j): rule for j, rule in FINISHED.findall(output)}
    local = {int(re.search(r"jobid: (\d+)", body).group(1)): rule
             for kind, rule, body in HEADER.findall(output) if kind.startswith("local")}
    submitted = {int(j): (slurm_id, Path(log)) for j, slurm_id, log in SUBMITTED.findall(output)}
    assert ran, output[-4000:]
    assert CHEAP_LOCAL_RULES <= set(local.values()), local
    for job, rule in ran.items():
        if job in local:
            assert job not in submitted, f"local rule {rule} was sent to SLURM"
        else:
            assert job in submitted, f"job {job} ({rule}) ran without a SLURM job id"
    submitted_rules = Counter(ran[j] for j in submitted)
    tiny = tiny_config()
    n_experiments, n_test_sets = len(tiny["experiments"]), len(tiny["test_sets"])
    assert submitted_rules["train"] == n_experiments, submitted_rules
    assert submitted_rules["evaluate"] == n_experiments * n_test_sets, submitted_rules
    assert submitted_rules["diagnostics"] == 1, submitted_rules

    # Each SLURM job: its log where the profile puts it, written by the job
    # step inside the allocation, and slurmctld's record of it.
    logdir = workdir / "results" / "logs" / "slurm"
    history = slurm_cluster.squeue_history()
    jobcomp = (slurm_cluster.state / "log" / "jobcomp.log").read_text()
    for job, (slurm_id, log) in submitted.items():
        rule = ran[job]
        assert log.parent.is_relative_to(logdir / f"rule_{rule}") and log.name == f"{slurm_id}.log", log
        text = log.read_text()
        assert "--executor slurm-jobstep" in text and f"(Rule: {rule})" in text, text[-2000:]
        assert "1 of 1 steps (100%) done" in text, text[-2000:]
        record = history.get(slurm_id)
        assert record is not None, f"SLURM job {slurm_id} unknown to squeue: {history}"
        assert record["state"] == "COMPLETED", record
        assert record["name"].startswith("usseg_") and record["account"] == "usseg_ci", record
        assert record["partition"] == "debug", record
        assert re.search(rf"JobId={slurm_id} .*JobState=COMPLETED", jobcomp), slurm_id

    # The same results as the local run.
    local_results, slurm_results = tiny_run / "results", workdir / "results"
    for name in ("manifest.csv", "manifest_issues.csv", "splits.csv"):
        assert (slurm_results / name).read_bytes() == (local_results / name).read_bytes(), name
    local_labels = {p.name: sha256(p) for p in (local_results / "labels").glob("*.npy")}
    slurm_labels = {p.name: sha256(p) for p in (slurm_results / "labels").glob("*.npy")}
    assert local_labels and slurm_labels == local_labels
    summaries = sorted(local_results.glob("experiments/*/eval/*/summary.json"))
    assert len(summaries) == n_experiments * n_test_sets
    for summary in summaries:
        rel = summary.relative_to(local_results)
        expected = json.loads(summary.read_text())
        got = json.loads((slurm_results / rel).read_text())
        assert_same_numbers(got, expected, str(rel))
    assert (slurm_results / "report" / "report.html").is_file()
    if elapsed > 300:  # the budget; a slow or busy machine is not a failure
        warnings.warn(f"the tiny workflow took {elapsed:.0f} s on SLURM (budget: 300 s)", stacklevel=1)


@pytest.mark.e2e
@pytest.mark.timeout(600)
def test_training_requeued_by_slurm_resumes_from_its_last_checkpoint(
    slurm_cluster, tiny_run, tmp_path, tmp_path_factory, monkeypatch
):
    # The finished local run, with liver_unet made long enough to pre-empt
    # mid-training: only that training job is out of date. (The copy sits as
    # deep as the original: the code inputs are paths relative to the working
    # directory, and other paths would count as changed inputs.)
    workdir = tmp_path_factory.mktemp("requeue")
    workdir.rmdir()
    copy_run(tiny_run, workdir)
    shutil.rmtree(workdir / "results" / "checkpoints" / "liver_unet")
    epochs = 150
    config = tiny_config()
    config["experiments"]["liver_unet"]["epochs"] = epochs
    configfile = tmp_path / "long.yaml"
    configfile.write_text(yaml.safe_dump(config, sort_keys=False))
    prof = local_cluster_profile(tmp_path / "profile")
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    target = "results/experiments/liver_unet/model.safetensors"
    cmd = snakemake_cmd(workdir, "--workflow-profile", str(prof), target, configfile=configfile)
    log_path = tmp_path / "snakemake.log"
    with open(log_path, "w") as log:
        run = subprocess.Popen(cmd, cwd=workdir, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        # Pre-empt the training once it has saved an epoch: SLURM requeues
        # the job (same id), as it does for pre-emption with PreemptMode=REQUEUE.
        last = workdir / "results" / "checkpoints" / "liver_unet" / "last.safetensors"
        deadline = time.monotonic() + 240
        while not last.exists():
            assert run.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, "training never saved a checkpoint"
            time.sleep(0.2)
        jobs = [
            line.split("|")[0]
            for line in slurm_cluster.run(
                "squeue", "--noheader", "--states=RUNNING", "--format=%i|%k"
            ).stdout.splitlines()
            if line.endswith("|rule_train_wildcards_liver_unet")
        ]
        assert len(jobs) == 1, jobs
        job_id = jobs[0]
        slurm_cluster.run("scontrol", "requeue", job_id)
        # SLURM holds a requeued job back for a while (BeginTime) before it
        # may start again; let it start now.
        deadline, requeued = time.monotonic() + 120, False
        while True:
            state = slurm_cluster.run(
                "squeue", "--noheader", f"--jobs={job_id}", "--states=all", "--format=%T|%r"
            ).stdout.strip()
            if state.startswith("PENDING"):
                requeued = True
                if state == "PENDING|BeginTime":
                    slurm_cluster.run("scontrol", "update", f"JobId={job_id}", "StartTime=now", check=False)
            elif requeued and state.split("|")[0] in ("RUNNING", "COMPLETING", "COMPLETED"):
                break
            assert run.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, f"job {job_id} did not start again: {state}"
            time.sleep(0.5)
        returncode = run.wait(timeout=420)
    finally:
        if run.poll() is None:
            run.kill()
    output = log_path.read_text()
    assert returncode == 0, output[-4000:]

    # Snakemake submitted the training once and waited through the requeue.
    submitted = SUBMITTED.findall(output)
    assert [slurm_id for _, slurm_id, _ in submitted] == [job_id], submitted
    slurm_log = Path(submitted[0][2]).read_text()
    assert f"JOB {job_id} ON localhost CANCELLED" in slurm_log and "DUE TO JOB REQUEUE" in slurm_log
    assert slurm_log.count("--executor slurm-jobstep") == 2, "expected two attempts in one appended log"
    assert slurm_cluster.squeue_history()[job_id]["state"] == "COMPLETED"

    # The second attempt resumed after the last saved epoch and finished the rest.
    train_log = (workdir / "results" / "logs" / "train" / "liver_unet.log").read_text()
    resumed = re.search(r"experiment liver_unet: resuming from \S+last\.safetensors after epoch (\d+)", train_log)
    assert resumed, train_log[-3000:]
    assert 1 <= int(resumed.group(1)) < epochs
    assert "starting at epoch 1" not in train_log
    history = (workdir / "results" / "experiments" / "liver_unet" / "history.csv").read_text().splitlines()
    assert [int(row.split(",")[0]) for row in history[1:]] == list(range(1, epochs + 1))
