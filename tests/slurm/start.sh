#!/usr/bin/env bash
# tests/slurm/start.sh -- start (or confirm) the project's single-node SLURM cluster
# on localhost with fake GPUs, for tests and CI. Debian 12 (slurm-wlm 22.05), root,
# no systemd, no cgroups, no GPU needed.
#
# Idempotent: installs missing packages, (re)writes the configs, starts whatever is
# not running (munged, [mariadbd, slurmdbd,] slurmctld, slurmd), waits until the node
# is usable and creates the reservation. With everything up it is a no-op; slurmctld
# and slurmd (slurmdbd) are restarted only when their generated config changed.
# Progress goes to stderr; the last line on stdout is a one-line summary.
#
# Knobs (environment; defaults for the shared ones are in env.sh):
#   RSTRANSFER_SLURM_PREFIX    configs/state/logs/pids/db     [/tmp/rstransfer-slurm]
#   WITH_DBD=1|0               slurmdbd + MariaDB so `sacct` works; 0 = no accounting
#                              DB, job completions go to jobcomp/filetxt  [1]
#   RSTRANSFER_SLURM_CPUS / _MEM_MB / _GPUS   advertised node size [8 / 16000 / 2]
#                              (not the hardware: SlurmdParameters=config_overrides)
#   RSTRANSFER_SLURM_RESERVATION       reservation to create, "" = none [deep_learning]
#   RSTRANSFER_SLURM_RESERVATION_USERS users allowed in it             [$(id -un)]
#   RSTRANSFER_SLURM_{CTLD,SLURMD,DBD,DB}_PORT   [16817 / 16818 / 16819 / 13306]
#   RSTRANSFER_SLURM_LINK_ETC=1|0      symlink configs into /etc/slurm  [1]
#   FRESH_STATE=1              wipe slurmctld state (jobs, reservations, job-id
#                              counter) when slurmctld is (re)started     [0]
#   RSTRANSFER_SLURM_WAIT      seconds to wait for the node to be usable [90]
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=env.sh
. "$HERE/env.sh"

P=$RSTRANSFER_SLURM_PREFIX
CLUSTER=$RSTRANSFER_SLURM_CLUSTER
WITH_DBD=${WITH_DBD:-1}
NODE=$(hostname -s)            # SlurmctldHost must be the short hostname
CPUS=${RSTRANSFER_SLURM_CPUS:-8}
MEM=${RSTRANSFER_SLURM_MEM_MB:-16000}
GPUS=${RSTRANSFER_SLURM_GPUS:-2}
GPU_PART=$RSTRANSFER_SLURM_GPU_PARTITION
CPU_PART=$RSTRANSFER_SLURM_CPU_PARTITION
RESV=$RSTRANSFER_SLURM_RESERVATION
RESV_USERS=${RSTRANSFER_SLURM_RESERVATION_USERS:-$(id -un)}
CTLD_PORT=$RSTRANSFER_SLURM_CTLD_PORT
SLURMD_PORT=$RSTRANSFER_SLURM_SLURMD_PORT
DBD_PORT=$RSTRANSFER_SLURM_DBD_PORT
DB_PORT=$RSTRANSFER_SLURM_DB_PORT
LINK_ETC=${RSTRANSFER_SLURM_LINK_ETC:-1}
FRESH_STATE=${FRESH_STATE:-0}
WAIT=${RSTRANSFER_SLURM_WAIT:-90}
SOCK=$P/munge/munge.socket
RUN=$P/run
DB=$P/db

T0=$(date +%s%N)
elapsed() { local ms=$(( ($(date +%s%N) - T0) / 1000000 )); printf '%d.%01d' $((ms / 1000)) $((ms % 1000 / 100)); }
log() { printf '[slurm/start.sh %5ss] %s\n' "$(elapsed)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (daemons run as root, packages are installed with apt)"
case $WITH_DBD in 0|1) ;; *) die "WITH_DBD must be 0 or 1, not '$WITH_DBD'" ;; esac
[ "$GPUS" -ge 1 ] 2>/dev/null || die "RSTRANSFER_SLURM_GPUS must be >= 1"

mkdir -p "$P"
# One start.sh at a time per prefix (two test sessions starting together).
# NB: every daemon is started with 9>&-, or it would inherit the lock and hold it forever.
exec 9>"$P/.start.lock"
flock -w 300 9 || die "another start.sh holds $P/.start.lock"

# ------------------------------------------------------------------- helpers
alive() {  # alive <pidfile> <comm>: pid file names a live process with that name
  local pid; pid=$(cat "$1" 2>/dev/null) || return 1
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$2" ]
}
stop_daemon() {  # stop_daemon <pidfile> <comm>: SIGTERM, SIGKILL after 15 s
  local pid
  if alive "$1" "$2"; then
    pid=$(cat "$1"); kill "$pid" 2>/dev/null || true
    for _ in $(seq 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  fi
  rm -f "$1"
}
waitfor() {  # waitfor <secs> <cmd...>: retry every 0.25 s
  local n=$(( $1 * 4 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  return 1
}
# wait_up <secs> <pidfile> <comm> <logfile> <cmd...>: like waitfor, but gives up
# as soon as the daemon is gone (after a 5 s grace for daemonizing) and then
# dies with the last fatal/error lines of its log.
wait_up() {
  local n=$(( $1 * 4 )) pf=$2 comm=$3 logf=$4 i; shift 4
  for ((i = 1; i <= n; i++)); do
    "$@" >/dev/null 2>&1 && return 0
    if [ "$i" -gt 20 ] && ! alive "$pf" "$comm"; then break; fi
    sleep 0.25
  done
  log "$comm did not come up; from $logf:"
  grep -iE 'fatal|error' "$logf" 2>/dev/null | grep -v pmix | tail -3 >&2
  die "$comm failed to start, see $logf"
}
# put_file <path> <mode>  (content on stdin): rewrite only if different.
# Returns 0 if the file changed, 1 if it was already up to date.
put_file() {
  local tmp; tmp=$(mktemp "$1.XXXXXX")
  cat > "$tmp"; chmod "$2" "$tmp"
  if [ -f "$1" ] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; chmod "$2" "$1"; return 1; fi
  mv -f "$tmp" "$1"; return 0
}

# ------------------------------------------------------------ 1. packages
PKGS="munge slurmctld slurmd slurm-client"
[ "$WITH_DBD" = 1 ] && PKGS="$PKGS slurmdbd mariadb-server"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
  log "installing:$missing"
  policy_added=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    # Containers usually have one; elsewhere postinst would start munge/slurm/mariadb
    # with Debian's default configs. Ours starts everything by hand.
    printf '#!/bin/sh\n# temporary, from rstransfer tests/slurm/start.sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d; policy_added=1
    trap '[ "$policy_added" = 1 ] && rm -f /usr/sbin/policy-rc.d' EXIT
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt_log=$P/apt.log
  # shellcheck disable=SC2086
  { apt-get -o DPkg::Lock::Timeout=600 update -q \
    && apt-get -o DPkg::Lock::Timeout=600 install -y -q --no-install-recommends $missing; } \
    > "$apt_log" 2>&1 || { tail -20 "$apt_log" >&2; die "apt-get failed, see $apt_log"; }
  if [ "$policy_added" = 1 ]; then rm -f /usr/sbin/policy-rc.d; policy_added=0; fi
  # shellcheck disable=SC2086
  log "installed: $(dpkg-query -W -f='${Package}=${Version} ' $PKGS)"
fi

# --------------------------------------------------------- 2. files/configs
mkdir -p "$P"/{etc,state,spool,log,run,dev,munge}
chmod 755 "$P" "$P/munge"       # munged: the socket dir must be world-executable
[ -s "$P/munge/munge.key" ] || mungekey --create --keyfile="$P/munge/munge.key" --force
chmod 600 "$P/munge/munge.key"

# Fake GPUs: 22.05 drops gres/gpu without File=, and File= must be a char/block
# device. mknod as root; a symlink to /dev/null is the fallback.
gres_lines=""
for ((i = 0; i < GPUS; i++)); do
  f=$P/dev/nvidia$i
  if [ ! -c "$f" ]; then rm -f "$f"; mknod "$f" c 195 "$i" 2>/dev/null || ln -sfn /dev/null "$f"; fi
  gres_lines+="NodeName=$NODE Name=gpu File=$f"$'\n'
done

put_file "$P/etc/mail-stub.sh" 755 <<EOF || true
#!/bin/sh
# MailProg stand-in written by rstransfer tests/slurm/start.sh.
# slurmctld runs: MailProg -s "<subject>" <recipient>   (no body)
# Appends one line per mail: <ISO date> TAB <recipient(s)> TAB <subject>
subject=""
if [ "\$1" = "-s" ]; then subject=\$2; shift 2; fi
printf '%s\t%s\t%s\n' "\$(date -Iseconds)" "\$*" "\$subject" >> "$P/log/mail.log"
EOF

if [ "$WITH_DBD" = 1 ]; then
  ACCT="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
# the link to slurmdbd authenticates through OUR munge socket, not /run/munge:
AccountingStoragePass=$SOCK
# track GPUs as a TRES (sacct ReqTRES/AllocTRES show gres/gpu=N);
# slurmctld is fatal with this but without slurmdbd
AccountingStorageTRES=gres/gpu
# keep --comment in sacct: snakemake's slurm plugin names every job after the
# run UUID and puts the rule (rule_NAME) into the comment
AccountingStoreFlags=job_comment
JobCompType=jobcomp/none"
else
  ACCT="AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$P/log/jobcomp.txt"
fi

conf_changed=0
put_file "$P/etc/slurm.conf" 644 <<EOF && conf_changed=1
# generated by rstransfer tests/slurm/start.sh -- do not edit, rerun start.sh
ClusterName=$CLUSTER
SlurmctldHost=$NODE(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$P/state
SlurmdSpoolDir=$P/spool/slurmd.%n
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$P/log/slurmctld.log
SlurmdLogFile=$P/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# no cgroups in CI containers: GPU "isolation" is CUDA_VISIBLE_DEVICES only
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
$ACCT
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# without it a job lacking --mem gets the whole node's memory
DefMemPerCPU=500
SchedulerType=sched/backfill
MpiDefault=none
ReturnToService=2
MinJobAge=300
KillWait=5
MailProg=$P/etc/mail-stub.sh
# advertise CPUs/memory from this file, not from the (smaller) hardware
SlurmdParameters=config_overrides
GresTypes=gpu
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Boards=1 SocketsPerBoard=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$MEM Gres=gpu:$GPUS State=UNKNOWN
PartitionName=$GPU_PART Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
PartitionName=$CPU_PART Nodes=$NODE MaxTime=INFINITE State=UP
EOF
printf '%s' "$gres_lines" | put_file "$P/etc/gres.conf" 644 && conf_changed=1

dbd_changed=0
if [ "$WITH_DBD" = 1 ]; then
  # mode 600 or slurmdbd is fatal ("should be 600 is 644")
  put_file "$P/etc/slurmdbd.conf" 600 <<EOF && dbd_changed=1
# generated by rstransfer tests/slurm/start.sh
AuthType=auth/munge
AuthInfo=socket=$SOCK
DbdHost=$NODE
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
StorageType=accounting_storage/mysql
# TCP on 127.0.0.1: "localhost" would mean the default socket in /run/mysqld
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurmpw
StorageLoc=slurm_acct_db
LogFile=$P/log/slurmdbd.log
PidFile=$RUN/slurmdbd.pid
DebugLevel=info
EOF
else
  rm -f "$P/etc/slurmdbd.conf"
fi

export SLURM_CONF=$P/etc/slurm.conf
if [ "$LINK_ETC" = 1 ]; then
  # snakemake's slurm jobstep strips SLURM_CONF before its inner srun, so the
  # default path must work; gres.conf/slurmdbd.conf are looked up next to it.
  mkdir -p /etc/slurm
  for f in slurm.conf gres.conf slurmdbd.conf; do
    if [ -e "$P/etc/$f" ]; then
      if [ -e "/etc/slurm/$f" ] && [ ! -L "/etc/slurm/$f" ]; then
        mv "/etc/slurm/$f" "/etc/slurm/$f.bak.$(date +%s)"
        log "moved a real /etc/slurm/$f aside"
      fi
      [ "$(readlink "/etc/slurm/$f" 2>/dev/null)" = "$P/etc/$f" ] || ln -sfn "$P/etc/$f" "/etc/slurm/$f"
    elif [ -L "/etc/slurm/$f" ] && [[ "$(readlink "/etc/slurm/$f")" == "$P"/* ]]; then
      rm -f "/etc/slurm/$f"
    fi
  done
fi

# ---------------------------------------------------------------- 3. daemons
if ! alive "$RUN/munged.pid" munged; then
  log "starting munged"
  rm -f "$RUN/munged.pid"
  munged --key-file="$P/munge/munge.key" --socket="$SOCK" --pid-file="$RUN/munged.pid" \
    --log-file="$P/log/munged.log" --seed-file="$P/munge/munged.seed" --num-threads=4 --force 9>&-
  wait_up 10 "$RUN/munged.pid" munged "$P/log/munged.log" munge -S "$SOCK" -n
fi

if [ "$WITH_DBD" = 1 ]; then
  if [ ! -d "$DB/data/mysql" ]; then
    log "initialising the MariaDB datadir"
    rm -rf "$DB"; mkdir -p "$DB"
    mariadb-install-db --no-defaults --user=root --datadir="$DB/data" \
      --auth-root-authentication-method=socket --skip-test-db > "$P/log/mariadb-install.log" 2>&1 \
      || die "mariadb-install-db failed, see $P/log/mariadb-install.log"
  fi
  if ! alive "$RUN/mariadbd.pid" mariadbd; then
    log "starting mariadbd (127.0.0.1:$DB_PORT)"
    rm -f "$DB/mysqld.sock" "$RUN/mariadbd.pid"
    setsid nohup mariadbd --no-defaults --user=root --datadir="$DB/data" --socket="$DB/mysqld.sock" \
      --port="$DB_PORT" --bind-address=127.0.0.1 --pid-file="$RUN/mariadbd.pid" \
      --log-error="$P/log/mariadbd.log" --innodb-buffer-pool-size=128M \
      --innodb-lock-wait-timeout=900 --skip-name-resolve </dev/null >/dev/null 2>&1 9>&- &
    echo $! > "$RUN/mariadbd.pid"    # setsid/nohup exec: $! is mariadbd itself
    wait_up 60 "$RUN/mariadbd.pid" mariadbd "$P/log/mariadbd.log" \
      mariadb --no-defaults -S "$DB/mysqld.sock" -uroot -e 'select 1'
    waitfor 10 alive "$RUN/mariadbd.pid" mariadbd || die "mariadbd wrote no pid file"
    mariadb --no-defaults -S "$DB/mysqld.sock" -uroot -e "
      CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurmpw';
      CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurmpw';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';"
  fi
  if [ "$dbd_changed" = 1 ] && alive "$RUN/slurmdbd.pid" slurmdbd; then
    log "slurmdbd.conf changed: restarting slurmdbd"; stop_daemon "$RUN/slurmdbd.pid" slurmdbd
  fi
  if ! alive "$RUN/slurmdbd.pid" slurmdbd; then
    log "starting slurmdbd (127.0.0.1:$DBD_PORT)"
    rm -f "$RUN/slurmdbd.pid"
    slurmdbd 9>&-   # daemonizes; reads slurmdbd.conf next to $SLURM_CONF
    wait_up 60 "$RUN/slurmdbd.pid" slurmdbd "$P/log/slurmdbd.log" timeout 5 sacctmgr -n list cluster
  fi
  # the cluster must exist in the DB before slurmctld registers its TRES,
  # otherwise slurmctld dies ("Problem adding tres to the database")
  if [ -z "$(timeout 10 sacctmgr -n -P list cluster "$CLUSTER" format=cluster)" ]; then
    timeout 10 sacctmgr -i add cluster "$CLUSTER" >/dev/null || die "sacctmgr add cluster $CLUSTER failed"
    log "cluster $CLUSTER added to the accounting DB"
  fi
fi

if [ "$conf_changed" = 1 ]; then   # node/plugin changes need a restart, not a reconfigure
  if alive "$RUN/slurmd.pid" slurmd; then log "slurm.conf changed: restarting slurmd"; stop_daemon "$RUN/slurmd.pid" slurmd; fi
  if alive "$RUN/slurmctld.pid" slurmctld; then log "slurm.conf changed: restarting slurmctld"; stop_daemon "$RUN/slurmctld.pid" slurmctld; fi
fi
if ! alive "$RUN/slurmctld.pid" slurmctld; then
  # State is kept by default so job ids keep counting up across restarts: the
  # accounting DB outlives slurmctld, and `sacct -j N` must not find an older N.
  if [ "$FRESH_STATE" = 1 ]; then log "FRESH_STATE=1: wiping slurmctld state"; rm -rf "${P:?}/state/"*; fi
  log "starting slurmctld (127.0.0.1:$CTLD_PORT)"
  rm -f "$RUN/slurmctld.pid"
  slurmctld -i 9>&-   # -i: ignore unreadable state (config changed since last run)
  wait_up 30 "$RUN/slurmctld.pid" slurmctld "$P/log/slurmctld.log" timeout 5 scontrol ping
fi
if ! alive "$RUN/slurmd.pid" slurmd; then
  rm -rf "${P:?}/spool/"*
  mkdir -p "$P/spool/slurmd.$NODE"     # must exist before slurmd starts
  log "starting slurmd (node $NODE: $CPUS cpus, ${MEM} MB, gpu:$GPUS)"
  rm -f "$RUN/slurmd.pid"
  slurmd -N "$NODE" 9>&-
fi

node_state() { timeout 5 sinfo -h -n "$NODE" -o %T 2>/dev/null | head -1; }
node_ok() { node_state | grep -qxE 'idle|mixed|allocated|completing|reserved|planned'; }
if ! node_ok; then
  resumed=0
  for ((i = 1; ; i++)); do
    node_ok && break
    st=$(timeout 5 sinfo -h -n "$NODE" -o '%T %E' 2>/dev/null || true)
    if [ "$i" -gt 20 ] && ! alive "$RUN/slurmd.pid" slurmd; then
      log "slurmd died; from $P/log/slurmd.log:"
      grep -iE 'fatal|error' "$P/log/slurmd.log" 2>/dev/null | grep -v pmix | tail -3 >&2
      die "slurmd failed to start (node '$st')"
    fi
    # e.g. drained after a gres mismatch that is fixed now (ReturnToService=2
    # does not undo a drain): resume once, after slurmd had time to register
    if [ "$resumed" = 0 ] && [ "$i" -gt 12 ] && [[ $st =~ drain|down|inval|fail ]]; then
      log "node $NODE is '$st': trying state=resume"
      timeout 5 scontrol update nodename="$NODE" state=resume || true
      resumed=1
    fi
    [ "$i" -le $((WAIT * 4)) ] || die "node $NODE not usable after ${WAIT}s ('$st'), see $P/log/slurmd.log and slurmctld.log"
    sleep 0.25
  done
fi

if [ -n "$RESV" ] && ! timeout 5 scontrol show reservation "$RESV" >/dev/null 2>&1; then
  # Partial-node reservation (half of the cores): jobs that do not name it still
  # run. Nodes=ALL would block them ("ReqNodeNotAvail, Reserved for maintenance").
  # IGNORE_JOBS: creating it must not fail because jobs are running.
  timeout 10 scontrol create reservation ReservationName="$RESV" Users="$RESV_USERS" \
    StartTime=now Duration=UNLIMITED Nodes="$NODE" CoreCnt=$((CPUS / 2)) Flags=IGNORE_JOBS >/dev/null \
    || die "could not create reservation $RESV"
  log "reservation $RESV created (users $RESV_USERS, $((CPUS / 2)) of $CPUS cores)"
fi

[ "$LINK_ETC" = 1 ] || log "clients need SLURM_CONF=$SLURM_CONF (source tests/slurm/env.sh)"
summary=$(timeout 5 sinfo -h -N -n "$NODE" -p "$GPU_PART" -o '%N %T cpus=%c mem=%mMB gres=%G' 2>/dev/null || true)
acct=$([ "$WITH_DBD" = 1 ] && echo slurmdbd || echo jobcomp/filetxt)
echo "local SLURM ready in $(elapsed)s: cluster=$CLUSTER node=[$summary] partitions=$GPU_PART*,$CPU_PART reservation=${RESV:-none} accounting=$acct prefix=$P"
