"""The bridge between a Snakemake `script:` and the library.

This is the only module that reads Snakemake's `snakemake` object. A script
does::

    with snakemake_step(snakemake):
        some_usseg_function(snakemake.input.x, ..., snakemake.output.y)

and gets: logging to the rule's log file and stderr; a UssegError shown as one
clear message (no traceback to dig through); a full disk or quota named as
such, with what to do; an unexpected error logged with its traceback and named
as a bug; and, on success, the provenance record written to the rule's
`provenance` output.

Threads: a rule's `threads:` is the job's share of --cores (a scheduling
weight, rules/common.smk `cpu_share`), and Snakemake sets OMP_NUM_THREADS and
the BLAS libraries' thread counts to it. A job's numbers must not depend on
--cores, so every step computes with one thread in those libraries
(`single_threaded_libraries`); a training or prediction then sets torch's
threads from its config (an experiment's `threads`, nnunet.threads). A library function that takes all of a rule's named
files (the report) gets them as a plain dict: `named_paths(snakemake.input)`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path

from usseg.errors import UssegError
from usseg.provenance import provenance_record, write_provenance
from usseg.training.history import EPOCH_LOGGER

# The environment variables Snakemake sets to a job's threads (read by libraries loaded later).
THREAD_VARIABLES = ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                    "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")


def single_threaded_libraries() -> None:
    """One thread in OpenMP and the BLAS libraries, loaded or not (see the module docstring)."""
    from threadpoolctl import threadpool_limits

    for name in THREAD_VARIABLES:
        os.environ[name] = "1"
    threadpool_limits(limits=1)

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging(log_path: str | None) -> None:
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S")
    console = logging.StreamHandler(sys.stderr)
    # Epoch lines only in the log file: a person reads the console.
    console.addFilter(lambda record: not record.name.startswith(EPOCH_LOGGER))
    handlers: list[logging.Handler] = [console]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="w"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)


def named_paths(io) -> dict[str, list[str]]:
    """Snakemake's named input/output lists as {name: [paths]}; unnamed items under '_'."""
    named: dict[str, list[str]] = {}
    covered: set[str] = set()
    for name in io.keys():
        value = getattr(io, name)
        paths = [str(v) for v in value] if isinstance(value, list) else [str(value)]
        named[name] = paths
        covered.update(paths)
    rest = [str(v) for v in io if str(v) not in covered]
    if rest:
        named["_"] = rest
    return named


# Errors that mean "no room left", not a bug: the disk is full or a quota is used up.
NO_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT}


def no_space_error(err: BaseException) -> OSError | None:
    """The "disk full" error behind `err` (itself, its cause or context), or None.

    Libraries with their own I/O (safetensors, written in Rust) report it as
    their own exception type whose text holds the OS message.
    """
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in NO_SPACE_ERRNOS:
            return err
        if "No space left on device" in str(err) or "Disk quota exceeded" in str(err):
            return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        err = err.__cause__ or err.__context__
    return None


def no_space_message(err: OSError) -> str:
    """What a full disk means for this job and what to do, naming the file being written."""
    target = err.filename or "an output file"
    folder = os.path.dirname(os.path.abspath(target)) if err.filename else "."
    return (
        f"no space left on the disk while writing {target} ({os.strerror(err.errno or errno.ENOSPC)}). "
        f"Free space on the file system that holds {folder} (see `df -h {folder}`), or point the "
        "results elsewhere (snakemake --directory), then re-run the same command: Snakemake removes "
        "this job's partial outputs and runs it again."
    )


@contextmanager
def snakemake_step(smk):
    single_threaded_libraries()
    log_path = smk.log[0] if len(smk.log) else None
    configure_logging(log_path)
    log = logging.getLogger(f"usseg.rule.{smk.rule}")
    where = f" (log: {log_path})" if log_path else ""
    try:
        yield log
        _write_record(smk, log)
    except UssegError as err:
        log.error("%s", err)
        print(f"\nusseg: rule {smk.rule} stopped: {err}{where}\n", file=sys.stderr)
        raise SystemExit(1) from None
    except Exception as err:
        full = no_space_error(err)
        if full is None:  # a bug, not bad input: keep the traceback, but say so plainly
            _unexpected(err, log, smk.rule, where)
        message = no_space_message(full)
        with contextlib.suppress(OSError):  # the log may sit on the same full disk
            log.error("%s", message)
        print(f"\nusseg: rule {smk.rule} stopped: {message}{where}\n", file=sys.stderr)
        raise SystemExit(1) from None


def _unexpected(err: Exception, log: logging.Logger, rule: str, where: str):
    log.exception("unexpected error")
    print(
        f"\nusseg: rule {rule} failed with an unexpected {type(err).__name__}: {err}. "
        f"This is a bug in usseg; the full traceback is in the log{where}.\n",
        file=sys.stderr,
    )
    raise SystemExit(1) from None


def _write_record(smk, log: logging.Logger) -> None:
    outputs = named_paths(smk.output)
    prov = outputs.pop("provenance", None)
    if prov:
        record = provenance_record(
            rule=smk.rule,
            inputs=named_paths(smk.input),
            outputs=outputs,
            params={k: getattr(smk.params, k) for k in smk.params.keys()},
            wildcards={k: getattr(smk.wildcards, k) for k in smk.wildcards.keys()},
            repo_dir=Path(smk.scriptdir).parent if getattr(smk, "scriptdir", None) else ".",
        )
        write_provenance(prov[0], record)
        log.info("provenance written to %s", prov[0])
