#!/usr/bin/env bash
# Start a throw-away single-node SLURM cluster on this machine: one private
# munged, one slurmctld and one slurmd (node "localhost", partition "debug"),
# with every file under one state folder. Used by tests/test_slurm.py and for
# trying profiles/slurm/ without a real cluster. Needs root (slurmd starts
# jobs as their users); works without systemd and without cgroups.
#
#   tools/slurm/start-cluster.sh [STATE_DIR]     # default: $USSEG_SLURM_DIR or /tmp/usseg-slurm-$UID
#   source STATE_DIR/env                         # points sinfo/sbatch/snakemake at it (SLURM_CONF)
#   tools/slurm/stop-cluster.sh [STATE_DIR]
#
# Idempotent: when the cluster of STATE_DIR already answers, it says so and
# leaves it alone. Everything lives in STATE_DIR (config, munge key and
# socket, spool, logs, pid files); the one file outside it is a symlink
# /etc/slurm/slurm.conf -> STATE_DIR/etc/slurm.conf, made only when that path
# is free (see below). The system munged is not used: this cluster has its own.
# Ports default to 6817/6818; set USSEG_SLURMCTLD_PORT / USSEG_SLURMD_PORT to move them.
#
# Accounting is off (AccountingStorageType=accounting_storage/none), as on many
# small clusters: `sacct` does not work, finished jobs stay visible to
# `squeue --states=all` for MinJobAge seconds, and every finished job is also
# appended to STATE_DIR/log/jobcomp.log (JobCompType=jobcomp/filetxt).
set -euo pipefail

STATE_DIR="${1:-${USSEG_SLURM_DIR:-${TMPDIR:-/tmp}/usseg-slurm-$(id -u)}}"
CTLD_PORT="${USSEG_SLURMCTLD_PORT:-6817}"
SLURMD_PORT="${USSEG_SLURMD_PORT:-6818}"
WAIT_S="${USSEG_SLURM_START_TIMEOUT:-60}"

die() { echo "start-cluster: $*" >&2; exit 1; }
say() { echo "start-cluster: $*" >&2; }

for bin in munged slurmctld slurmd sinfo scontrol; do
  command -v "$bin" >/dev/null 2>&1 || die "'$bin' not found. Install Debian's slurmctld slurmd slurm-client munge (tools/install-system-deps.sh)."
done
[ "$(id -u)" -eq 0 ] || die "must run as root: slurmd starts each job as the user who submitted it."

mkdir -p "$STATE_DIR"
STATE_DIR="$(cd "$STATE_DIR" && pwd -P)"
ETC="$STATE_DIR/etc" RUN="$STATE_DIR/run" LOG="$STATE_DIR/log" SPOOL="$STATE_DIR/spool" MUNGE="$STATE_DIR/munge"
CONF="$ETC/slurm.conf"
SOCKET="$MUNGE/munge.socket.2"
export SLURM_CONF="$CONF"

# A daemon of ours is running when its pid file names a live process that is
# that daemon (a recycled pid of some other program does not count).
alive() { # name pidfile
  local pid
  [ -s "$2" ] || return 1
  pid="$(cat "$2" 2>/dev/null)" || return 1
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" | grep -F "$1" | grep -qF "$STATE_DIR"
}

# A link left by an earlier start-cluster.sh whose cluster was killed without
# stop-cluster.sh (e.g. an interrupted test session): it points at a missing
# file, or at one of our configs whose slurmctld no longer runs.
stale_link() { # link
  local target other pid
  target="$(readlink "$1")"
  [ -e "$target" ] || return 0
  head -n1 "$target" | grep -qF "Written by tools/slurm/start-cluster.sh" || return 1
  other="$(dirname "$(dirname "$target")")"
  pid="$(cat "$other/run/slurmctld.pid" 2>/dev/null)" || return 0
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
  ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF "$other"
}

node_state() { sinfo -h -N -n localhost -o %T 2>/dev/null | head -n1 | tr -d '~#!%$@^-' ; }

if alive munged "$MUNGE/munged.pid" && alive slurmctld "$RUN/slurmctld.pid" && alive slurmd "$RUN/slurmd.pid"; then
  case "$(node_state)" in
    idle|mixed|allocated)
      say "already running (state: $STATE_DIR)"
      echo "export SLURM_CONF=$CONF"
      exit 0 ;;
  esac
fi

# slurmstepd listens on a Unix socket $SPOOL/d/<node>_<job>.<step>, and a
# socket path holds at most 107 bytes: past that every job fails to launch and
# stays PENDING (launch failed requeued held). Refuse such a folder up front.
LONGEST_SOCKET="$SPOOL/d/localhost_4294967294.4294967294"
if [ "${#LONGEST_SOCKET}" -gt 107 ]; then
  die "state folder '$STATE_DIR' is too long (${#LONGEST_SOCKET} bytes for slurmstepd's socket path, 107 at most): pass a shorter STATE_DIR, e.g. /tmp/usseg-slurm."
fi

mkdir -p "$ETC" "$RUN" "$LOG" "$SPOOL/ctld" "$SPOOL/d" "$MUNGE"
chmod 0700 "$MUNGE"

# --- munge: a private instance with its own key and socket ------------------
if [ ! -s "$MUNGE/munge.key" ]; then
  if command -v mungekey >/dev/null 2>&1; then
    mungekey --create --keyfile="$MUNGE/munge.key" --bits=1024
  else
    dd if=/dev/urandom of="$MUNGE/munge.key" bs=1 count=1024 status=none
  fi
  say "created munge key $MUNGE/munge.key"
fi
chmod 0400 "$MUNGE/munge.key"
if ! alive munged "$MUNGE/munged.pid"; then
  rm -f "$SOCKET" "$SOCKET.lock" "$MUNGE/munged.pid"
  # --force: carry on past munged's checks of the folders above the socket
  # and key (e.g. pytest's temporary folders); the munge folder itself is
  # root's and mode 0700.
  munged --force --socket="$SOCKET" --key-file="$MUNGE/munge.key" \
    --pid-file="$MUNGE/munged.pid" --log-file="$MUNGE/munged.log" \
    --seed-file="$MUNGE/munged.seed"
fi

# --- slurm.conf: this machine's CPUs and memory, no cgroups, no accounting --
CPUS="$(nproc --all 2>/dev/null || getconf _NPROCESSORS_ONLN)"
MEM_MB="$(awk '/^MemTotal:/ {print int($2 / 1024)}' /proc/meminfo)"
# Leave room for the daemons and the snakemake that submits the jobs.
REAL_MEM=$(( MEM_MB > 2048 ? MEM_MB - 1024 : MEM_MB * 3 / 4 ))
SLURM_USER="$(id -un)"

cat >"$CONF.tmp" <<EOF
# Written by tools/slurm/start-cluster.sh; rewritten on every start.
ClusterName=usseg
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=$SLURM_USER
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$SPOOL/ctld
SlurmdSpoolDir=$SPOOL/d
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOG/slurmctld.log
SlurmdLogFile=$LOG/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: plain process tracking, no task containment.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
# No accounting database: sacct does not work; jobcomp keeps a history file.
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$LOG/jobcomp.log
# Finished jobs stay in squeue --states=all for 10 minutes, so Snakemake's
# SLURM executor can read their final state without sacct.
MinJobAge=600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=5
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=512
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REAL_MEM State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
mv "$CONF.tmp" "$CONF"
printf 'export SLURM_CONF=%s\n' "$CONF" >"$STATE_DIR/env"

# SLURM_CONF does not reach everything: Snakemake's job step (the plugin's
# slurm-jobstep) strips SLURM_* variables before its `srun`, which then reads
# the compiled-in /etc/slurm/slurm.conf. On a machine without a SLURM of its
# own, point that path at this cluster; stop-cluster.sh removes the link again.
SYSTEM_CONF=/etc/slurm/slurm.conf
if [ -L "$SYSTEM_CONF" ] && [ "$(readlink "$SYSTEM_CONF")" = "$CONF" ]; then
  :
elif [ -L "$SYSTEM_CONF" ] && stale_link "$SYSTEM_CONF"; then
  say "replacing $SYSTEM_CONF -> $(readlink "$SYSTEM_CONF"), left by a cluster that no longer runs"
  ln -sfn "$CONF" "$SYSTEM_CONF"
  echo "$SYSTEM_CONF" >"$RUN/linked-system-conf"
elif [ -e "$SYSTEM_CONF" ] || [ -L "$SYSTEM_CONF" ]; then
  say "WARNING: $SYSTEM_CONF exists and is not this cluster's; sbatch/squeue with"
  say "SLURM_CONF=$CONF work, but Snakemake's job steps (srun) will read $SYSTEM_CONF."
else
  mkdir -p "$(dirname "$SYSTEM_CONF")"
  ln -s "$CONF" "$SYSTEM_CONF"
  echo "$SYSTEM_CONF" >"$RUN/linked-system-conf"
fi

# --- daemons -----------------------------------------------------------------
# Both fork into the background and write their pid files (paths above).
if ! alive slurmctld "$RUN/slurmctld.pid"; then
  rm -f "$RUN/slurmctld.pid"
  slurmctld -f "$CONF"
fi
if ! alive slurmd "$RUN/slurmd.pid"; then
  rm -f "$RUN/slurmd.pid"
  slurmd -f "$CONF" -N localhost
fi

# --- wait until the node takes jobs -----------------------------------------
deadline=$(( $(date +%s) + WAIT_S ))
state=""
while :; do
  state="$(node_state || true)"
  case "$state" in
    idle|mixed|allocated) break ;;
    drained|draining|down)
      # A node left down by an earlier run: it is ours, bring it back.
      scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true ;;
  esac
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "start-cluster: node not idle after ${WAIT_S}s (state: '${state:-no answer}')." >&2
    echo "--- $LOG/slurmctld.log (tail)" >&2; tail -n 30 "$LOG/slurmctld.log" >&2 2>/dev/null || true
    echo "--- $LOG/slurmd.log (tail)" >&2; tail -n 30 "$LOG/slurmd.log" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 1
done
say "up: node localhost ($CPUS CPUs, ${REAL_MEM} MB) in partition debug, state $state (state: $STATE_DIR)"
echo "export SLURM_CONF=$CONF"
