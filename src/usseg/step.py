"""The bridge between a Snakemake `script:` and the library.

This is the one library module that takes Snakemake's `snakemake` object
(scripts pass it here, and otherwise read only its named files and params;
the library below takes plain paths and values). A script does::

    with snakemake_step(snakemake):
        some_usseg_function(snakemake.input.x, ..., snakemake.output.y)

and gets: logging to the rule's log file, and usseg's own lines also on the
console; everything else the job prints (third-party libraries' prints and
progress bars, Python warnings, output of C code and of child processes) in
the log file only, so every console line is usseg's or Snakemake's; a
UssegError shown as one clear message (no traceback to dig through); a full
disk or quota named as such, with what to do; an unexpected error logged with
its traceback and named as a bug; and, on success, the provenance record
written to the rule's `provenance` output. A library function that takes all
of a rule's named files (the report) gets them as a plain dict:
`named_paths(snakemake.input)`.

Threads: a rule's `threads:` is the job's share of --cores (a scheduling
weight, rules/common.smk `cpu_share`), and Snakemake sets OMP_NUM_THREADS and
the BLAS libraries' thread counts to it. A job's numbers must not depend on
--cores, so every step computes with one thread in those libraries
(`single_threaded_libraries`); a training or prediction then sets torch's
threads from its config (an experiment's `threads`, nnunet.threads).
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


# Loggers whose records reach the console; every other logger (a library's) writes to the log file only.
CONSOLE_LOGGER = "usseg"


def _on_console(record: logging.LogRecord) -> bool:
    """usseg's records, but not the epoch lines (a person reads the console; those are for the log)."""
    name = record.name
    return (name == CONSOLE_LOGGER or name.startswith(CONSOLE_LOGGER + ".")) and not name.startswith(EPOCH_LOGGER)


def configure_logging(log_path: str | None, console=None) -> None:
    """Every record to the log file (when there is one); usseg's own records also to `console` (default stderr).

    Python warnings become records of logger "py.warnings", so they land in
    the log file with a time, not on the console.
    """
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in list(root.handlers):
        root.removeHandler(handler)
    formatter = logging.Formatter(LOG_FORMAT, datefmt="%H:%M:%S")
    to_console = logging.StreamHandler(console or sys.stderr)
    to_console.addFilter(_on_console)
    handlers: list[logging.Handler] = [to_console]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        # Appending: the job's other output (output_to_log) is appended to the same file.
        handlers.append(logging.FileHandler(log_path, mode="a"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    logging.captureWarnings(True)


@contextmanager
def output_to_log(log_path: str | None):
    """Within: file descriptors 1 and 2 write to the (emptied) log file; yields the console stream.

    Redirecting the descriptors, not only sys.stdout/sys.stderr, also sends
    what C code, tqdm and child processes (nnU-Net's workers) print to the
    log. The console stream is a copy of the original stderr, for usseg's
    own lines. Without a log file nothing is redirected (the console is stderr).
    """
    if not log_path:
        yield sys.stderr
        return
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    open(log_path, "w").close()  # one job, one log
    _flush_std()
    saved = os.dup(1), os.dup(2)
    console = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8", errors="backslashreplace")
    log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    # Python-level writers too, in case sys.stdout/sys.stderr are not descriptors 1 and 2.
    streams = sys.stdout, sys.stderr
    log_text = open(log_path, "a", buffering=1, encoding="utf-8", errors="backslashreplace")
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        os.close(log_fd)
        sys.stdout = sys.stderr = log_text
        yield console
    finally:
        _flush_std()
        sys.stdout, sys.stderr = streams
        log_text.close()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in saved:
            os.close(fd)
        with contextlib.suppress(OSError):
            console.close()


def _flush_std() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


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
        "results elsewhere (Snakemake's --directory option), then re-run the same command: Snakemake removes "
        "this job's partial outputs and runs it again."
    )


@contextmanager
def snakemake_step(smk):
    single_threaded_libraries()
    log_path = smk.log[0] if len(smk.log) else None
    with output_to_log(log_path) as console:
        configure_logging(log_path, console)
        log = logging.getLogger(f"usseg.rule.{smk.rule}")
        where = f" (log: {log_path})" if log_path else ""
        try:
            yield log
            _write_record(smk, log)
        except UssegError as err:
            log.error("%s", err)
            print(f"\nusseg: rule {smk.rule} stopped: {err}{where}\n", file=console)
            raise SystemExit(1) from None
        except Exception as err:
            full = no_space_error(err)
            if full is None:  # a bug, not bad input: keep the traceback, but say so plainly
                _unexpected(err, log, smk.rule, where, console)
            message = no_space_message(full)
            with contextlib.suppress(OSError):  # the log may sit on the same full disk
                log.error("%s", message)
            print(f"\nusseg: rule {smk.rule} stopped: {message}{where}\n", file=console)
            raise SystemExit(1) from None
        finally:
            logging.captureWarnings(False)
            for handler in list(logging.getLogger().handlers):
                logging.getLogger().removeHandler(handler)
                handler.close()


def _unexpected(err: Exception, log: logging.Logger, rule: str, where: str, console):
    log.exception("unexpected error")
    print(
        f"\nusseg: rule {rule} failed with an unexpected {type(err).__name__}: {err}. "
        f"This is a bug in usseg; the full traceback is in the log{where}.\n",
        file=console,
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
