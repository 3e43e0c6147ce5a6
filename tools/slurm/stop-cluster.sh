#!/usr/bin/env bash
# Stop the single-node SLURM cluster that tools/slurm/start-cluster.sh started
# in STATE_DIR: cancel its jobs, then stop its slurmd, slurmctld and munged.
#
#   tools/slurm/stop-cluster.sh [STATE_DIR]   # default: $USSEG_SLURM_DIR or /tmp/usseg-slurm-$UID
#
# Only processes named by STATE_DIR's pid files are signalled, and only when
# the process behind the pid really is that daemon started with STATE_DIR's
# files; nothing is killed by name. Safe to run twice or when nothing runs.
# STATE_DIR itself is kept (logs, job history); delete it by hand when done.
set -uo pipefail

STATE_DIR="${1:-${USSEG_SLURM_DIR:-${TMPDIR:-/tmp}/usseg-slurm-$(id -u)}}"
say() { echo "stop-cluster: $*" >&2; }

if [ ! -d "$STATE_DIR" ]; then
  say "nothing to stop: $STATE_DIR does not exist"
  exit 0
fi
STATE_DIR="$(cd "$STATE_DIR" && pwd -P)"
RUN="$STATE_DIR/run" MUNGE="$STATE_DIR/munge" CONF="$STATE_DIR/etc/slurm.conf"

ours() { # name pidfile -> prints the pid when it is our daemon
  local pid
  [ -s "$2" ] || return 1
  pid="$(cat "$2" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$1" | grep -qF "$STATE_DIR" || return 1
  echo "$pid"
}

stop() { # name pidfile
  local pid i
  if ! pid="$(ours "$1" "$2")"; then
    rm -f "$2"
    return 0
  fi
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do            # up to 10 s, then SIGKILL
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$1 ($pid) ignored SIGTERM; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  rm -f "$2"
  say "stopped $1 ($pid)"
}

# Jobs first, while slurmctld still answers: their processes belong to this
# cluster's slurmd and would otherwise outlive it.
if [ -f "$CONF" ] && ours slurmctld "$RUN/slurmctld.pid" >/dev/null && command -v scancel >/dev/null; then
  SLURM_CONF="$CONF" scancel --quiet --full --partition=debug 2>/dev/null || true
  for _ in $(seq 1 50); do
    [ -z "$(SLURM_CONF="$CONF" squeue -h -t RUNNING,COMPLETING,PENDING -o %i 2>/dev/null)" ] && break
    sleep 0.2
  done
fi

stop slurmd "$RUN/slurmd.pid"
stop slurmctld "$RUN/slurmctld.pid"
stop munged "$MUNGE/munged.pid"
rm -f "$MUNGE/munge.socket.2" "$MUNGE/munge.socket.2.lock"

# The /etc/slurm/slurm.conf symlink, if start-cluster.sh made it and it still
# points here.
if [ -s "$RUN/linked-system-conf" ]; then
  link="$(cat "$RUN/linked-system-conf")"
  if [ -L "$link" ] && [ "$(readlink "$link")" = "$CONF" ]; then
    rm -f "$link"
  fi
  rm -f "$RUN/linked-system-conf"
fi
say "done ($STATE_DIR)"
