#!/usr/bin/env bash
# A one-node Slurm cluster on loopback, for the Slurm test tier
# (cmd/synthq/slurm_test.go) and for trying deploy/slurm/ by hand.
#
# Installs Debian's Slurm (slurmctld, slurmd, slurm-client: the parts of the
# slurm-wlm metapackage, without its recommended plugins) and munge with apt
# when they are missing, writes a configuration for this machine alone
# (NodeName=localhost on 127.0.0.1, every CPU, the machine's memory; no
# cgroups, no accounting database: proctrack/linuxproc and task/none work in a
# container or a sandbox where cgroups are not ours to use), creates a munge
# key, starts munged, slurmctld and slurmd as root and waits until `sinfo`
# shows the node idle. A second call finds them running and only prints the
# exports.
#
# State (config, spool, logs, pid files): ${SYNTHQ_SLURM_DIR:-/var/tmp/synthq-slurm}.
#
# stdout: shell lines to eval (export SLURM_CONF=… SYNTHQ_SLURM_DIR=…);
# everything else goes to stderr.
#
#   eval "$(bash .ci/slurm.sh)"
#   sinfo; sbatch --wrap 'hostname'
#
# `bash .ci/slurm.sh stop` stops the three daemons this script started.
set -euo pipefail

dir=${SYNTHQ_SLURM_DIR:-/var/tmp/synthq-slurm}
conf=$dir/slurm.conf

log() { echo "slurm.sh: $*" >&2; }

emit() {
  printf 'export SLURM_CONF=%q\n' "$conf"
  printf 'export SYNTHQ_SLURM_DIR=%q\n' "$dir"
}

# pidof_file FILE: the pid in FILE when that process is alive.
alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

if [ "${1:-}" = stop ]; then
  for d in slurmd slurmctld munged; do
    if alive "$dir/$d.pid"; then
      log "stopping $d ($(cat "$dir/$d.pid"))"
      kill "$(cat "$dir/$d.pid")" || true
    fi
  done
  exit 0
fi

idle() {
  SLURM_CONF=$conf sinfo -h -N -n localhost -o '%t' 2>/dev/null | grep -Eq '^(idle|mix|alloc)'
}

if alive "$dir/munged.pid" && alive "$dir/slurmctld.pid" && alive "$dir/slurmd.pid" && idle; then
  log "running: $(SLURM_CONF=$conf sinfo -h -N -o '%N %t %c CPUs %m MB' 2>/dev/null)"
  emit
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "must run as root (it installs packages and starts slurmd, which runs jobs as their users)"
  exit 1
fi

need=()
command -v munged >/dev/null 2>&1 || need+=(munge)
command -v slurmctld >/dev/null 2>&1 || need+=(slurmctld)
command -v slurmd >/dev/null 2>&1 || need+=(slurmd)
command -v sbatch >/dev/null 2>&1 || need+=(slurm-client)
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  apt-get -o DPkg::Lock::Timeout=900 update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=900 install -y -qq \
    --no-install-recommends "${need[@]}" >/tmp/synthq-slurm-apt.log 2>&1 \
    || { tail -20 /tmp/synthq-slurm-apt.log >&2; exit 1; }
fi
log "$(slurmctld -V)"

mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/munge"
chmod 755 "$dir"

# munge: its own key, socket and pid under $dir, so a system munged (if any)
# is left alone. munged refuses a key readable by others.
key=$dir/munge/munge.key
if [ ! -s "$key" ]; then
  dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
fi
chmod 400 "$key"
sock=$dir/munge/munge.socket.2
if ! alive "$dir/munged.pid"; then
  rm -f "$sock" "$sock.lock"
  # --force: start even though the key and sockets are owned by root and
  # not by a munge user (this is a throwaway one-node cluster).
  munged --force --key-file="$key" --socket="$sock" --pid-file="$dir/munged.pid" \
    --log-file="$dir/log/munged.log" --seed-file="$dir/munge/munged.seed"
fi
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || { log "munged did not start:"; tail -20 "$dir/log/munged.log" >&2; exit 1; }

cpus=$(nproc)
mem=$(awk '/MemTotal/ {print int($2/1024*0.9)}' /proc/meminfo)
host=$(hostname -s)
cat >"$conf.new" <<EOF
# Written by .ci/slurm.sh: one node on loopback, for tests.
ClusterName=synthq
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$sock
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: processes tracked by /proc, no task confinement.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SwitchType=switch/none
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
# Quick turnaround for tests: jobs start and end within a second or two, and a
# finished job stays visible to scontrol for 10 minutes.
SchedulerParameters=sched_interval=1
MessageTimeout=10
KillWait=5
MinJobAge=600
InactiveLimit=0
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
mv "$conf.new" "$conf"
export SLURM_CONF=$conf

if ! alive "$dir/slurmctld.pid"; then
  log "starting slurmctld"
  slurmctld -f "$conf"
fi
if ! alive "$dir/slurmd.pid"; then
  log "starting slurmd"
  slurmd -f "$conf" -N localhost
fi

for _ in $(seq 300); do idle && break; sleep 0.2; done
if ! idle; then
  log "the node did not become idle in 60 s:"
  sinfo -N -l >&2 || true
  tail -20 "$dir/log/slurmctld.log" "$dir/log/slurmd.log" >&2 || true
  exit 1
fi
log "ready: $(sinfo -h -N -o '%N %t %c CPUs %m MB')"
emit
