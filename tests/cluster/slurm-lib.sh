# Shared by slurm-up.sh and slurm-down.sh (sourced, not run): where the local cluster lives, its lock,
# and how its daemons are stopped: by the pid files it wrote, checking that each pid is still that daemon.

SLURM_DIR=${DIFFBRAIN_SLURM_DIR:-/tmp/diffbrain-slurm}   # every piece of runtime state lives here
SLURM_LOCK=$SLURM_DIR.lock       # beside the folder, not inside: the folder is wiped at every start
SLURM_USERS_LOCK=$SLURM_DIR.users  # pytest sessions using the cluster hold a shared lock on this file
SLURM_MARKER=$SLURM_DIR/cluster.env  # written last by a successful start, removed first by a stop
SLURM_CLUSTER_NAME=diffbrain
SLURM_ETC=/etc/slurm              # where sbatch, sacct, squeue ... look for their configuration
MUNGE_SOCKET=$SLURM_DIR/munge/munge.socket
MARIADB_SOCKET=$SLURM_DIR/mariadb-run/mariadb.sock

# pid file | binary the pid must run (checked through /proc/PID/exe, so a recycled pid is never killed)
# Stop order: slurmd first (after the jobs), then the controller, accounting, the database, munge last.
SLURM_DAEMONS=(
  "$SLURM_DIR/run/slurmd.pid|slurmd"
  "$SLURM_DIR/run/slurmctld.pid|slurmctld"
  "$SLURM_DIR/run/slurmdbd.pid|slurmdbd"
  "$SLURM_DIR/mariadb-run/mariadb.pid|mariadbd"
  "$SLURM_DIR/munge/munged.pid|munged"
)

say() { echo "slurm-local: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

check_scratch_dir() {
  # Refuse a folder we might wipe by mistake: it must be absolute, not a top-level system folder, and either
  # absent, empty, or one of ours (holding the .diffbrain-slurm tag).
  case "$SLURM_DIR" in
    /*/*) ;;
    *) die "DIFFBRAIN_SLURM_DIR=$SLURM_DIR must be an absolute path at least two levels deep (e.g. /tmp/diffbrain-slurm)" ;;
  esac
  if [ -d "$SLURM_DIR" ] && [ -n "$(ls -A "$SLURM_DIR")" ] && [ ! -e "$SLURM_DIR/.diffbrain-slurm" ]; then
    die "$SLURM_DIR exists and was not made by slurm-up.sh; choose another DIFFBRAIN_SLURM_DIR or empty it"
  fi
}

take_lock() {
  # One start or stop at a time per machine. A caller that already holds the lock (the pytest fixture)
  # says so with DIFFBRAIN_SLURM_LOCK_HELD=1. fd 9 is closed for every daemon we start (9>&-), so no
  # daemon keeps the lock after the script ends.
  [ "${DIFFBRAIN_SLURM_LOCK_HELD:-}" = 1 ] && return 0
  exec 9>>"$SLURM_LOCK"
  flock -w 300 9 || die "another start or stop holds $SLURM_LOCK for more than 300 s"
}

users_present() {
  # True while a pytest session holds its shared lock on the users file.
  [ -e "$SLURM_USERS_LOCK" ] || return 1
  ! flock -n -x "$SLURM_USERS_LOCK" true
}

pid_is() {
  # pid_is PID NAME: PID is alive (not a zombie) and runs a binary whose name starts with NAME.
  local pid=$1 name=$2 exe
  [[ "$pid" =~ ^[0-9]+$ ]] && [ -d "/proc/$pid" ] || return 1
  grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null && return 1
  exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
  exe=${exe##*/}
  [[ "$exe" == "$name"* ]]
}

stop_pid() {
  # stop_pid PID NAME: SIGTERM, wait up to 15 s, then SIGKILL. Silent when PID is not that daemon.
  local pid=$1 name=$2
  pid_is "$pid" "$name" || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do pid_is "$pid" "$name" || return 0; sleep 0.1; done
  say "$name (pid $pid) ignored SIGTERM for 15 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do pid_is "$pid" "$name" || return 0; sleep 0.1; done
  say "WARNING: $name (pid $pid) still alive after SIGKILL"
}

pidfile_pid() { [ -s "$1" ] && tr -dc '0-9' <"$1" || true; }

cancel_all_jobs() {
  # Jobs first: slurmstepd outlives slurmd, and a job killed with its daemon never reaches accounting.
  pid_is "$(pidfile_pid "$SLURM_DIR/run/slurmctld.pid")" slurmctld || return 0
  local jobs
  jobs=$(timeout 10 squeue -h -o %A 2>/dev/null | sort -u | tr '\n' ' ') || true
  [ -n "${jobs// /}" ] || return 0
  say "cancelling jobs: $jobs"
  # shellcheck disable=SC2086
  timeout 10 scancel $jobs 2>/dev/null || true
  for _ in $(seq 100); do
    [ -z "$(timeout 10 squeue -h -o %A 2>/dev/null)" ] && return 0
    sleep 0.2
  done
  say "WARNING: jobs still listed 20 s after scancel: $(timeout 10 squeue -h -o '%A %T' | tr '\n' ' ')"
}

stop_daemons() {
  local entry file name
  cancel_all_jobs
  for entry in "${SLURM_DAEMONS[@]}"; do
    file=${entry%|*}; name=${entry#*|}
    stop_pid "$(pidfile_pid "$file")" "$name"
  done
}

stop_strays_of_this_folder() {
  # munged / mariadbd of an earlier start whose pid files went with a deleted folder: recognised by this
  # folder's path on their command line (and by their binary), stopped by pid.
  local d pid exe
  for d in /proc/[0-9]*; do
    pid=${d#/proc/}
    exe=$(readlink "$d/exe" 2>/dev/null) || continue
    case "${exe##*/}" in munged|mariadbd) ;; *) continue ;; esac
    tr '\0' ' ' <"$d/cmdline" 2>/dev/null | grep -qF -- "$SLURM_DIR/" || continue
    say "stopping leftover ${exe##*/} (pid $pid) of $SLURM_DIR"
    stop_pid "$pid" "${exe##*/}"
  done
}

stop_port_squatters() {
  # A slurm daemon from an earlier run whose pid file is gone (scratch folder deleted by hand, another
  # scratch folder) still holds the slurm ports and would make ours fail. Find it by the port it listens
  # on, check it is a slurm daemon, and stop that pid; anything else on the port is an error to report.
  local port owner pid exe
  for port in 6817 6818 6819; do
    owner=$(ss -Hltnp "sport = :$port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 || true)
    [ -n "$owner" ] || continue
    pid=${owner#pid=}
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null || echo unknown)
    case "${exe##*/}" in
      slurmctld*|slurmd*|slurmdbd*) say "stopping leftover ${exe##*/} (pid $pid) on port $port"; stop_pid "$pid" "${exe##*/}" ;;
      *) die "port $port (slurm) is held by pid $pid ($exe); stop it first" ;;
    esac
  done
}

# parse_force NAME ARGS...: sets force=1 for --force, dies on anything else (NAME is the script, for usage)
parse_force() {
  local name=$1; shift
  force=0
  case "${1:-}" in
    --force) force=1 ;;
    "") ;;
    *) die "unknown argument '$1' (usage: $name [--force])" ;;
  esac
}
