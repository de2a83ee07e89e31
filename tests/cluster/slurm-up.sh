#!/usr/bin/env bash
# Start a one-node SLURM on this machine, as root, without systemd, for the tests:
#   munge -> MariaDB -> slurmdbd (accounting, which sacct and submitit need) -> slurmctld -> slurmd,
#   partitions `cpu` (default) and `gpu` (two fake GPUs), all runtime state in $DIFFBRAIN_SLURM_DIR
#   (default /tmp/diffbrain-slurm), wiped at every start; the configuration goes to /etc/slurm.
# Usage: tests/cluster/slurm-up.sh [--force]    (--force: restart even while a pytest session uses it)
# Stop with tests/cluster/slurm-down.sh. Exit status: 0 up, 3 cannot run here (not root, packages
# missing), 1 anything else (the daemons' log tails are printed).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm-lib.sh
. "$here/slurm-lib.sh"

parse_force slurm-up.sh "$@"

# --- can it run here at all? (exit 3: the fixture turns this into a skip, or a failure under CI) ----------
[ "$(id -u)" = 0 ] || { say "needs root (slurmd runs jobs as root; munge and MariaDB drop to their users)"; exit 3; }
missing=()
for bin in munged mungekey munge unmunge mariadbd mariadb-install-db mariadb-admin slurmdbd slurmctld slurmd \
           sacctmgr sbatch sacct squeue scontrol scancel sinfo ss flock runuser setsid; do
  command -v "$bin" >/dev/null || missing+=("$bin")
done
if [ ${#missing[@]} -gt 0 ]; then
  say "missing programs: ${missing[*]} (install with: bash tests/cluster/install-debian-packages.sh)"
  exit 3
fi

t0=$(date +%s.%N)
check_scratch_dir
take_lock
if users_present && [ $force = 0 ]; then
  die "a pytest session is using the running cluster ($SLURM_USERS_LOCK is locked); use --force to restart it anyway"
fi

# --- clear whatever an earlier run left: its daemons (by pid file), port squatters, then the folder ----------
if [ -d "$SLURM_DIR" ]; then
  rm -f "$SLURM_MARKER"
  stop_daemons
fi
stop_strays_of_this_folder
stop_port_squatters
rm -rf "$SLURM_DIR"
mkdir -p "$SLURM_DIR"/{etc,state,spool,log,run,fakedev,submitit,munge,mariadb,mariadb-run}
touch "$SLURM_DIR/.diffbrain-slurm"
cleared=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')
chmod 755 "$SLURM_DIR"
log=$SLURM_DIR/log

started=0
on_error() {
  local rc=$?
  [ $started = 1 ] || exit $rc
  say "start failed (exit $rc); log tails follow, then everything started is stopped"
  for f in "$log"/*.log; do [ -s "$f" ] && { echo "==> $f" >&2; tail -n 15 "$f" >&2; }; done
  stop_daemons
  exit 1
}
trap on_error ERR
started=1

timings=""
lap() { timings+=" $1 $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN{printf "%.1f", b-a}')"; }

wait_for() {
  # wait_for SECONDS WHAT COMMAND...: run COMMAND (at most 10 s each try) every 0.1 s until it succeeds.
  local secs=$1 what=$2; shift 2
  local deadline=$((SECONDS + secs))
  while [ $SECONDS -lt $deadline ]; do
    timeout 10 "$@" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  say "timed out after ${secs} s waiting for $what"
  return 1
}

# --- the node as slurmd sees it: real short hostname and socket/core layout --------------------------------
host=$(hostname -s)
layout=$(slurmd -C | head -1)          # NodeName=h CPUs=.. Boards=.. SocketsPerBoard=.. CoresPerSocket=.. ...
[[ "$layout" == NodeName=* ]] || { say "unexpected 'slurmd -C' output: $layout"; false; }
cpus=$(grep -o 'CPUs=[0-9]*' <<<"$layout" | cut -d= -f2)
getent hosts "$host" >/dev/null || { say "hostname $host does not resolve (add it to /etc/hosts)"; false; }

# --- fake GPUs: gres/gpu wants one character device per GPU. Regular files are refused by slurmd (jobs then
# get gres/gpu but no CUDA_VISIBLE_DEVICES); File=/dev/null for both counts as one GPU (node INVAL). ---------
for i in 0 1; do mknod "$SLURM_DIR/fakedev/gpu$i" c 1 3; done    # major 1 minor 3 = a null device

# --- configuration (also kept in $SLURM_DIR/etc for the record) ---------------------------------------------
cat >"$SLURM_DIR/etc/slurm.conf" <<EOF
# Written by tests/cluster/slurm-up.sh: a one-node test cluster. Do not edit; it is rewritten at every start.
ClusterName=$SLURM_CLUSTER_NAME
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire=10: a requeued job may start again after 10 s instead of the default 120 s
AuthInfo=socket=$MUNGE_SOCKET,cred_expire=10
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=$host
AccountingStoragePort=6819
# for slurmdbd connections the munge socket is taken from here, not from AuthInfo
AccountingStoragePass=$MUNGE_SOCKET
AccountingStorageTRES=gres/gpu
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
# array tasks and requeued jobs start within seconds instead of tens of seconds
SchedulerParameters=batch_sched_delay=0,bf_interval=2,sched_min_interval=100000
# a small array limit (tasks 0..2), so that the toolkit's splitting of larger arrays is tested for real
MaxArraySize=3
StateSaveLocation=$SLURM_DIR/state
SlurmdSpoolDir=$SLURM_DIR/spool
SlurmctldPidFile=$SLURM_DIR/run/slurmctld.pid
SlurmdPidFile=$SLURM_DIR/run/slurmd.pid
SlurmctldLogFile=$log/slurmctld.log
SlurmdLogFile=$log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MailProg=/bin/true
ReturnToService=2
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
MinJobAge=300
KillWait=5
OverTimeLimit=0
GresTypes=gpu
$layout Gres=gpu:fake:2 State=UNKNOWN
PartitionName=cpu Nodes=$host Default=YES MaxTime=INFINITE State=UP
PartitionName=gpu Nodes=$host Default=NO MaxTime=INFINITE State=UP
EOF
cat >"$SLURM_DIR/etc/gres.conf" <<EOF
AutoDetect=off
NodeName=$host Name=gpu Type=fake File=$SLURM_DIR/fakedev/gpu[0-1]
EOF
cat >"$SLURM_DIR/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
AuthInfo=socket=$MUNGE_SOCKET
DbdHost=$host
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$log/slurmdbd.log
PidFile=$SLURM_DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=localhost
StorageUser=root
StorageLoc=slurm_acct_db
EOF
mkdir -p "$SLURM_ETC"
for f in slurm.conf gres.conf slurmdbd.conf; do install -m 644 "$SLURM_DIR/etc/$f" "$SLURM_ETC/$f"; done
chmod 600 "$SLURM_ETC/slurmdbd.conf" "$SLURM_DIR/etc/slurmdbd.conf"   # slurmdbd refuses a readable one

# --- 1. munge: its own key, socket, pid and log in the scratch folder, running as the munge user ------------
mungekey --create --keyfile="$SLURM_DIR/munge/munge.key" 2>>"$log/munged.log"
chown -R munge:munge "$SLURM_DIR/munge"
chmod 755 "$SLURM_DIR/munge"; chmod 400 "$SLURM_DIR/munge/munge.key"
touch "$log/munged.log"; chown munge:munge "$log/munged.log"
runuser -u munge -- /usr/sbin/munged --socket="$MUNGE_SOCKET" --key-file="$SLURM_DIR/munge/munge.key" \
  --pid-file="$SLURM_DIR/munge/munged.pid" --log-file="$log/munged.log" \
  --seed-file="$SLURM_DIR/munge/munged.seed" </dev/null >>"$log/munged.log" 2>&1 9>&-
wait_for 10 "munged" sh -c "munge -S '$MUNGE_SOCKET' -n | unmunge -S '$MUNGE_SOCKET'"
lap munge

# --- 2. MariaDB: fresh data folder, root over the unix socket without a password, no TCP ---------------------
chown mysql:mysql "$SLURM_DIR/mariadb" "$SLURM_DIR/mariadb-run"
touch "$log/mariadb.log"; chown mysql:mysql "$log/mariadb.log"
mariadb-install-db --no-defaults --user=mysql --datadir="$SLURM_DIR/mariadb" \
  --auth-root-authentication-method=socket --skip-test-db >"$log/mariadb-install.log" 2>&1
setsid /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$SLURM_DIR/mariadb" \
  --socket="$MARIADB_SOCKET" --pid-file="$SLURM_DIR/mariadb-run/mariadb.pid" --log-error="$log/mariadb.log" \
  --skip-networking --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900 \
  </dev/null >>"$log/mariadb.log" 2>&1 9>&- &
wait_for 60 "MariaDB" mariadb-admin --no-defaults --socket="$MARIADB_SOCKET" ping
lap mariadb

# --- 3. slurmdbd (finds MariaDB through MYSQL_UNIX_PORT), then register the cluster -------------------------
MYSQL_UNIX_PORT=$MARIADB_SOCKET slurmdbd </dev/null >>"$log/slurmdbd.log" 2>&1 9>&-
wait_for 60 "slurmdbd" sacctmgr -n list cluster
sacctmgr -i add cluster "$SLURM_CLUSTER_NAME" >/dev/null
lap slurmdbd

# --- 4. slurmctld, 5. slurmd; ready when the node is idle in both partitions -----------------------------------
slurmctld </dev/null >>"$log/slurmctld.log" 2>&1 9>&-
wait_for 30 "slurmctld" scontrol ping
lap slurmctld
slurmd </dev/null >>"$log/slurmd.log" 2>&1 9>&-
wait_for 60 "the node to be idle in partitions cpu and gpu" \
  sh -c '[ "$(sinfo -h -o "%P %t" | tr "\n" " ")" = "cpu* idle gpu idle " ]'

lap slurmd
t1=$(date +%s.%N)
cat >"$SLURM_MARKER.tmp" <<EOF
DIFFBRAIN_SLURM_HOST=$host
DIFFBRAIN_SLURM_CPUS=$cpus
DIFFBRAIN_SLURM_PARTITIONS=cpu,gpu
DIFFBRAIN_SLURM_DEFAULT_PARTITION=cpu
DIFFBRAIN_SLURM_GPU_PARTITION=gpu
DIFFBRAIN_SLURM_GPUS=2
DIFFBRAIN_SLURM_CLUSTER=$SLURM_CLUSTER_NAME
DIFFBRAIN_SLURM_OWNER=${DIFFBRAIN_SLURM_OWNER:-manual}
DIFFBRAIN_SLURM_STARTED_AT=$(date +%s)
DIFFBRAIN_SLURM_START_SECONDS=$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}')
EOF
mv "$SLURM_MARKER.tmp" "$SLURM_MARKER"
trap - ERR
say "ready at (s since start): cleanup $cleared$timings"
say "up in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s: host $host, $cpus CPUs, partitions cpu (default) and gpu (gpu:fake:2); state in $SLURM_DIR"
