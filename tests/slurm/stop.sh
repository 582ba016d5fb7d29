#!/usr/bin/env bash
# tests/slurm/stop.sh -- tear down what start.sh started. Always exits 0 (it runs
# from traps after failed tests); problems are reported as warnings on stderr.
#
# Only processes named by our pid files are signalled, and only if /proc/PID/comm
# has the expected daemon name: SIGTERM, then SIGKILL after a timeout.
#
# Knobs:
#   RSTRANSFER_SLURM_PREFIX    same prefix as for start.sh    [/tmp/rstransfer-slurm]
#   PURGE=1                    also delete state, spool, logs and the MariaDB datadir
#                              (keeps the munge key and the generated configs)
#   RSTRANSFER_SLURM_STOP_TIMEOUT  seconds to wait after SIGTERM per daemon [15]
#   RSTRANSFER_SLURM_LINK_ETC=0    leave /etc/slurm alone
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"
P=$RSTRANSFER_SLURM_PREFIX
RUN=$P/run
PURGE=${PURGE:-0}
LINK_ETC=${RSTRANSFER_SLURM_LINK_ETC:-1}
TIMEOUT=${RSTRANSFER_SLURM_STOP_TIMEOUT:-15}
log() { echo "[slurm/stop.sh $(date +%T)] $*" >&2; }
rc_note=0

alive() {  # alive <pidfile> <comm>
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
stop_daemon() {  # stop_daemon <pidfile> <comm>
  local pid
  if ! alive "$1" "$2"; then
    if [ -f "$1" ]; then log "$2: stale pid file $1 (no live '$2' with that pid), removing"; fi
    rm -f "$1"; return 0
  fi
  pid=$(cat "$1"); log "stopping $2 (pid $pid)"
  kill "$pid" 2>/dev/null
  for _ in $(seq $((TIMEOUT * 4))); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  if kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]; then
    log "$2 (pid $pid) still alive after ${TIMEOUT}s: SIGKILL"
    kill -9 "$pid" 2>/dev/null
    for _ in $(seq 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && { log "WARNING: $2 (pid $pid) survived SIGKILL"; rc_note=1; }
  fi
  rm -f "$1"
}

# 1. cancel remaining jobs, so that no job/slurmstepd outlives slurmd
if alive "$RUN/slurmctld.pid" slurmctld; then
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | tr '\n' ' ')
  if [ -n "${jobs// /}" ]; then
    log "cancelling jobs: $jobs"
    # shellcheck disable=SC2086
    timeout 10 scancel $jobs 2>/dev/null
    for _ in $(seq 60); do
      [ -z "$(timeout 5 squeue -h -t PD,R,CG,S -o %A 2>/dev/null)" ] && break; sleep 0.25
    done
  fi
fi

# 2. daemons in reverse start order
stop_daemon "$RUN/slurmd.pid"    slurmd
stop_daemon "$RUN/slurmctld.pid" slurmctld
stop_daemon "$RUN/slurmdbd.pid"  slurmdbd
stop_daemon "$RUN/mariadbd.pid"  mariadbd
stop_daemon "$RUN/munged.pid"    munged

# 3. /etc/slurm symlinks that point into our prefix (real files are left alone)
if [ "$LINK_ETC" = 1 ]; then
  for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -L "/etc/slurm/$f" ] && [[ "$(readlink "/etc/slurm/$f")" == "$P"/* ]]; then
      rm -f "/etc/slurm/$f"
    fi
  done
fi

# 4. optional purge
if [ "$PURGE" = 1 ]; then
  log "PURGE=1: deleting state, spool, logs and DB under $P"
  rm -rf "${P:?}"/{state,spool,log,run,db,apt.log}
fi

if [ "$rc_note" = 0 ]; then log "stopped (prefix $P)"; else log "stopped with warnings (prefix $P)"; fi
exit 0
