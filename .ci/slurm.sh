#!/usr/bin/env bash
# A throw-away one-node SLURM cluster on localhost, used by CI to test the slurm profile.
#
#   bash .ci/slurm.sh install   apt packages slurmctld, slurmd, slurm-client, munge (root)
#   bash .ci/slurm.sh start     install if needed, write the configs, start munged, slurmctld
#                               and slurmd, and wait until the node accepts jobs
#   bash .ci/slurm.sh stop      stop the daemons this script started, by their saved PIDs
#   bash .ci/slurm.sh status    the saved daemons and what sinfo says
#
# Debian 12 (Slurm 22.05), run as root, no systemd needed: every daemon runs in its
# foreground mode under setsid, so `$!` is the daemon itself and its PID file is ours.
#
# The cluster has no accounting database (no slurmdbd): `sacct` answers "accounting storage
# is disabled", so Snakemake's slurm executor must poll with `--slurm-status-command squeue`
# (workflow/profiles/slurm-ci does this). MinJobAge keeps finished jobs visible to squeue
# long enough for that mode (the plugin needs MinJobAge >= 3 x its first poll delay).
#
# Environment:
#   PLN_SLURM_DIR=/tmp/pln-slurm   state, spool, logs and PID files of the running cluster
#   PLN_SLURM_GPUS=2               fake GPUs declared on the node (gres gpu; at most 5);
#                                  0 declares none
#   PLN_SLURM_PARTITION=gpu        name of the single (default) partition; the same name as
#                                  slurm_partition in workflow/profiles/slurm/config.yaml
set -euo pipefail

STATE_DIR=${PLN_SLURM_DIR:-/tmp/pln-slurm}
FAKE_GPUS=${PLN_SLURM_GPUS:-2}
PARTITION=${PLN_SLURM_PARTITION:-gpu}
CONF_DIR=/etc/slurm
PACKAGES=(slurmctld slurmd slurm-client munge)
# started in this order, stopped in the reverse one
DAEMONS=(munged slurmctld slurmd)

say() { printf '[slurm.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { say "error: $*"; exit 1; }

# fail at once, with the end of its log, when a daemon we started has exited
check_alive() {
  local name
  for name in "${DAEMONS[@]}"; do
    if [[ -f $(pid_file "$name") ]] && ! is_running "$name"; then
      tail -n 5 "$STATE_DIR/log/$name.out" "$STATE_DIR/log/$name.log" 2>/dev/null >&2 || true
      die "$name exited during start-up (logs: $STATE_DIR/log)"
    fi
  done
}

# poll CMD... every 0.25 s until it succeeds; fail after LIMIT seconds
await() {
  local limit=$1 label=$2; shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    check_alive
    (( SECONDS - start < limit )) || die "$label not ready after ${limit} s (logs: $STATE_DIR/log)"
    sleep 0.25
  done
  say "$label ready after $(( SECONDS - start )) s"
}

pid_file() { echo "$STATE_DIR/$1.pid"; }

is_running() {  # NAME: is the daemon we started still alive?
  local file; file=$(pid_file "$1")
  [[ -f $file ]] && kill -0 "$(cat "$file")" 2>/dev/null
}

launch() {  # NAME CMD...: run a foreground-mode daemon detached, remember its PID
  local name=$1; shift
  setsid "$@" >"$STATE_DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$(pid_file "$name")"
  say "started $name (pid $!)"
}

packages_missing() {
  local pkg
  for pkg in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || return 0
  done
  return 1
}

cmd_install() {
  (( EUID == 0 )) || die "install needs root (apt-get)"
  if packages_missing; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${PACKAGES[@]}" >/dev/null
  fi
  say "packages: $(dpkg-query -W -f='${Package} ${Version}; ' "${PACKAGES[@]}")"
}

# One `key=value` field of the node line that `slurmd -C` prints for this machine.
node_field() { slurmd -C | head -1 | tr ' ' '\n' | sed -n "s/^$1=//p"; }

write_configs() {
  local host gres_types="" node_gres=""
  host=$(hostname -s)
  if (( FAKE_GPUS > 0 )); then
    gres_types="GresTypes=gpu"
    node_gres="Gres=gpu:$FAKE_GPUS"
    # Fake GPUs: SLURM schedules them and sets CUDA_VISIBLE_DEVICES, but nothing is behind
    # them. Each needs its own character device (SLURM refuses duplicates): harmless ones.
    local fake_devices=(/dev/null /dev/zero /dev/full /dev/random /dev/urandom)
    (( FAKE_GPUS <= ${#fake_devices[@]} )) || die "at most ${#fake_devices[@]} fake GPUs"
    : >"$CONF_DIR/gres.conf"
    for (( i = 0; i < FAKE_GPUS; i++ )); do
      echo "NodeName=$host Name=gpu File=${fake_devices[i]}" >>"$CONF_DIR/gres.conf"
    done
  else
    rm -f "$CONF_DIR/gres.conf"
  fi
  cat >"$CONF_DIR/slurm.conf" <<EOF
# One-node SLURM cluster on localhost for CI, written by .ci/slurm.sh; do not edit.
ClusterName=plnci
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# a job without --mem would otherwise take the whole node's memory
DefMemPerCPU=1000
ReturnToService=2
# finished jobs stay visible to squeue for 10 minutes (squeue status polling needs it)
MinJobAge=600
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=$STATE_DIR/state
SlurmdSpoolDir=$STATE_DIR/spool
SlurmctldPidFile=$STATE_DIR/slurmctld.pidfile
SlurmdPidFile=$STATE_DIR/slurmd.pidfile
SlurmctldLogFile=$STATE_DIR/log/slurmctld.log
SlurmdLogFile=$STATE_DIR/log/slurmd.log
$gres_types
NodeName=$host NodeAddr=127.0.0.1 CPUs=$(node_field CPUs) Boards=$(node_field Boards) SocketsPerBoard=$(node_field SocketsPerBoard) CoresPerSocket=$(node_field CoresPerSocket) ThreadsPerCore=$(node_field ThreadsPerCore) RealMemory=$(node_field RealMemory) $node_gres State=UNKNOWN
PartitionName=$PARTITION Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  say "wrote $CONF_DIR/slurm.conf (node $host, fake GPUs: $FAKE_GPUS, partition $PARTITION)"
}

munge_works() { munge -n | unmunge; }
node_idle() { sinfo -h -o %T | grep -qx idle; }

cmd_start() {
  local name
  for name in "${DAEMONS[@]}"; do
    ! is_running "$name" || die "$name is already running (pid $(cat "$(pid_file "$name")")); run stop first"
  done
  cmd_install
  # Fresh state every time: jobs or a cluster name left from an earlier run confuse slurmctld.
  rm -rf "$STATE_DIR"
  mkdir -p "$STATE_DIR/state" "$STATE_DIR/spool" "$STATE_DIR/log"
  write_configs

  # munged must run as user munge; setpriv execs (runuser would fork and hide the PID)
  install -d -o munge -g munge -m 0755 /run/munge
  launch munged setpriv --reuid=munge --regid=munge --init-groups /usr/sbin/munged -F
  await 30 munged munge_works
  launch slurmctld /usr/sbin/slurmctld -D
  await 30 slurmctld scontrol ping
  launch slurmd /usr/sbin/slurmd -D
  await 60 "node (idle)" node_idle
  sinfo -o '%P %a %D %T %N cpus=%c mem=%m gres=%G'
}

cmd_stop() {
  local i name file pid
  for (( i = ${#DAEMONS[@]} - 1; i >= 0; i-- )); do
    name=${DAEMONS[i]}
    file=$(pid_file "$name")
    [[ -f $file ]] || continue
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid"
      for _ in {1..40}; do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
      if kill -0 "$pid" 2>/dev/null; then
        kill -KILL "$pid"
        say "$name (pid $pid) ignored SIGTERM; sent SIGKILL"
      else
        say "stopped $name (pid $pid)"
      fi
    fi
    rm -f "$file"
  done
}

cmd_status() {
  local name
  for name in "${DAEMONS[@]}"; do
    if is_running "$name"; then
      echo "$name: running, pid $(cat "$(pid_file "$name")")"
    else
      echo "$name: not running"
    fi
  done
  sinfo -o '%P %a %D %T %N cpus=%c mem=%m gres=%G' 2>&1 || true
}

case ${1:-} in
  install) cmd_install ;;
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *) echo "usage: $0 install|start|stop|status" >&2; exit 2 ;;
esac
