#!/usr/bin/env bash
# Start a throwaway single-node SLURM cluster on Debian 12 (as root, no systemd needed):
# munged + slurmctld + slurmd, no accounting database, FAKE_GPUS fake GPUs declared through GRES
# device files (char devices identical to /dev/null); the steps are commented below.
# Writes the PIDs of the daemons it started to $STATE/pids for stop-slurm.sh.
set -euo pipefail
NGPU=${FAKE_GPUS:-2}
GPU_TYPE=${GPU_TYPE:-fake}
STATE=${STATE:?set STATE to a directory for pids}
export DEBIAN_FRONTEND=noninteractive
mkdir -p "$STATE"
: > "$STATE/pids"

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null
fi

H=$(hostname -s)
NCPU=$(nproc)
# Leave 2 GB to the head process (Snakemake and its local rules).
MEM=$(( $(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p') - 2048 ))

# --- munge ---------------------------------------------------------------------------------
[ -s /etc/munge/munge.key ] || mungekey --create --force
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
install -d -o munge -g munge -m 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged
  echo "/run/munge/munged.pid" >> "$STATE/pids"
fi
munge -n | unmunge >/dev/null

# --- fake GPUs -----------------------------------------------------------------------------
for i in $(seq 0 $((NGPU - 1))); do
  if [ ! -e /dev/fakegpu$i ]; then
    mknod -m 666 /dev/fakegpu$i c 1 3
    echo "/dev/fakegpu$i" >> "$STATE/devices"
  fi
done

# --- configuration -------------------------------------------------------------------------
install -d -o slurm -g slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm
cat > /etc/slurm/slurm.conf <<EOF
ClusterName=augloss-ci
SlurmctldHost=${H}(127.0.0.1)
SlurmUser=slurm
AuthType=auth/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
# MinJobAge must stay >= 3 x slurm-init-seconds-before-status-checks for squeue status checks
MinJobAge=300
# A job past its time limit gets SIGTERM, then SIGKILL 5 s later (tests of TIMEOUT + retry)
KillWait=5
OverTimeLimit=0
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
GresTypes=gpu
NodeName=${H} NodeAddr=127.0.0.1 CPUs=${NCPU} RealMemory=${MEM} Gres=gpu:${GPU_TYPE}:${NGPU} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
cat > /etc/slurm/gres.conf <<EOF
AutoDetect=off
NodeName=${H} Name=gpu Type=${GPU_TYPE} File=/dev/fakegpu[0-$((NGPU - 1))]
EOF

# --- daemons -------------------------------------------------------------------------------
slurmctld
echo "/run/slurmctld.pid" >> "$STATE/pids"
slurmd
echo "/run/slurmd.pid" >> "$STATE/pids"
for _ in $(seq 60); do
  state=$(sinfo -h -n "$H" -o %T 2>/dev/null || true)
  [ "$state" = idle ] && break
  case "$state" in
    drain* | inval* | down*) scontrol update nodename="$H" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
sinfo -N -o '%N %c %m %G %T'
if [ "$(sinfo -h -n "$H" -o %T)" != idle ]; then
  echo "slurm: node not idle" >&2
  tail -20 /var/log/slurm/slurmctld.log >&2
  exit 1
fi
