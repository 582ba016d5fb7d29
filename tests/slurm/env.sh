# tests/slurm/env.sh -- client environment for the project's local SLURM cluster.
#
# Source it (POSIX sh, bash, zsh; safe under `set -eu`):
#     . tests/slurm/env.sh
# start.sh and stop.sh source it too, so the defaults below live in one place.
# Variables that are already set are kept, so knobs can be overridden from
# the caller's environment.
#
# It does NOT set RSTRANSFER_SLURM=1: that switch ("the cluster is up, run the
# slurm-marked tests") belongs to whoever ran start.sh successfully.

# Everything the cluster writes: configs, state, spool, logs, pid files, MariaDB.
: "${RSTRANSFER_SLURM_PREFIX:=/tmp/rstransfer-slurm}"
# Name of the cluster in slurm.conf and in the accounting DB.
: "${RSTRANSFER_SLURM_CLUSTER:=localci}"
# Partitions and reservation that start.sh creates (tests read these).
: "${RSTRANSFER_SLURM_GPU_PARTITION:=gpus}"
: "${RSTRANSFER_SLURM_CPU_PARTITION:=cpu}"
: "${RSTRANSFER_SLURM_RESERVATION=deep_learning}"
# Ports: non-default on purpose so that this cluster cannot collide with a
# system SLURM/MariaDB on a shared box.
: "${RSTRANSFER_SLURM_CTLD_PORT:=16817}"
: "${RSTRANSFER_SLURM_SLURMD_PORT:=16818}"
: "${RSTRANSFER_SLURM_DBD_PORT:=16819}"
: "${RSTRANSFER_SLURM_DB_PORT:=13306}"

# Where the MailProg stub appends "<date>\t<recipient>\t<subject>" lines.
RSTRANSFER_SLURM_MAIL_LOG=$RSTRANSFER_SLURM_PREFIX/log/mail.log

export RSTRANSFER_SLURM_PREFIX RSTRANSFER_SLURM_CLUSTER \
  RSTRANSFER_SLURM_GPU_PARTITION RSTRANSFER_SLURM_CPU_PARTITION RSTRANSFER_SLURM_RESERVATION \
  RSTRANSFER_SLURM_CTLD_PORT RSTRANSFER_SLURM_SLURMD_PORT RSTRANSFER_SLURM_DBD_PORT \
  RSTRANSFER_SLURM_DB_PORT RSTRANSFER_SLURM_MAIL_LOG

# SLURM clients (sinfo, sbatch, sacct, ...) read this. start.sh also symlinks
# /etc/slurm/slurm.conf to the same file, because snakemake's slurm jobstep
# strips every SLURM_* variable (SLURM_CONF included) before its inner `srun`.
# Never export an empty SLURM_CONF: every client then fails ("cannot stat").
SLURM_CONF=$RSTRANSFER_SLURM_PREFIX/etc/slurm.conf
export SLURM_CONF
