"""Advice that works when copied: every `snakemake ...` a message suggests carries the run's own options.

A message that says "re-run with `snakemake --forcerun X report`" must plan
the same run as the one that printed it: with its --configfile, --config,
--directory, --snakefile and profile, not config.yaml's default run (after a
run on configs/tiny.yaml the bare command plans the demo's 34 default jobs).
The Snakefile reads those options from its own command line once, at
start-up (`command_line_options`), and puts them in the environment
(`RERUN_ENV`), which every job inherits; messages anywhere in the library
build their command with `command(...)`.

Nothing here imports more than the standard library: it runs in the Snakefile.
"""

from __future__ import annotations

import argparse
import os
import shlex

# The environment variable that carries "how to re-run this run" from the Snakefile to its jobs.
RERUN_ENV = "USSEG_RERUN"
PROGRAM = "snakemake"

# The command-line options that decide what a run is (which workflow, folder, configuration and
# profile), as Snakemake spells them; each is carried into advice. Others (cores, targets,
# --forcerun, --dry-run, ...) decide how or what part runs, and advice gives its own.
CARRIED_OPTIONS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("--snakefile", "-s"), "one"),
    (("--directory", "-d"), "one"),
    (("--configfile", "--configfiles"), "many"),
    (("--config", "-C"), "many"),
    (("--profile",), "one"),
    (("--workflow-profile",), "one"),
)


def command_line_options(argv: list[str]) -> list[str]:
    """The options of a Snakemake command line (without the program) that `CARRIED_OPTIONS` names.

    Parsed the way Snakemake parses them (argparse, the same option names and
    numbers of values), so `--configfile a.yaml b.yaml` and `--config=x=1`
    are read as Snakemake reads them.
    """
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    for names, arity in CARRIED_OPTIONS:
        parser.add_argument(*names, dest=names[0], action="append", nargs="+" if arity == "many" else None)
    known, _ = parser.parse_known_args(argv)
    out: list[str] = []
    for names, arity in CARRIED_OPTIONS:
        given = getattr(known, names[0])
        if not given:
            continue
        if arity == "many":
            out += [names[0], *(value for values in given for value in values)]
        else:
            out += [names[0], given[-1]]
    return out


def prefix() -> list[str]:
    """This run's options (from the environment; none outside a run)."""
    return shlex.split(os.environ.get(RERUN_ENV, ""))


def command(*words: str) -> str:
    """A command to copy, for this run: `snakemake`, the targets among `words` (the leading words that are
    not options), this run's options, then the rest of `words` (e.g. "report", "--forcerun", path).

    Targets come first: Snakemake reads every word after --configfile or --config up to the next option
    as one more value, so a target after them would be taken for a config file.
    """
    n = next((i for i, w in enumerate(words) if str(w).startswith("-")), len(words))
    return shlex.join([PROGRAM, *map(str, words[:n]), *prefix(), *map(str, words[n:])])


def remember(argv: list[str]) -> str:
    """Called once by the Snakefile: store this run's options for its jobs, unless a parent run did.

    A job (a script, or a cluster job that reads the Snakefile again with its
    own command line) finds the options of the run that started it in its
    environment and keeps them. Returns the options in force, as one string.
    """
    if RERUN_ENV not in os.environ:
        os.environ[RERUN_ENV] = shlex.join(command_line_options(argv))
    return os.environ[RERUN_ENV]


def is_job() -> bool:
    """Whether this process runs inside a job of a usseg run (the variable was inherited), not the run itself."""
    return RERUN_ENV in os.environ
