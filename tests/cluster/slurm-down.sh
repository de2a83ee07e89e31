#!/usr/bin/env bash
# Stop the one-node SLURM that slurm-up.sh started: cancel the jobs, then stop slurmd, slurmctld, slurmdbd,
# MariaDB and munge, each by the pid file in $DIFFBRAIN_SLURM_DIR (never by name). The folder and its logs
# stay until the next start wipes them. Usage: tests/cluster/slurm-down.sh [--force]
# (--force: stop even while a pytest session uses the cluster).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=slurm-lib.sh
. "$here/slurm-lib.sh"

parse_force slurm-down.sh "$@"
[ "$(id -u)" = 0 ] || die "needs root"
[ -d "$SLURM_DIR" ] || { say "nothing to stop: $SLURM_DIR does not exist"; exit 0; }
t0=$(date +%s.%N)
take_lock
if users_present && [ $force = 0 ]; then
  die "a pytest session is using the cluster ($SLURM_USERS_LOCK is locked); use --force to stop it anyway"
fi
rm -f "$SLURM_MARKER"
stop_daemons
t1=$(date +%s.%N)
left=$(pgrep -x slurmstepd | tr '\n' ' ' || true)   # report only: these are not ours to kill by name
[ -z "$left" ] || say "WARNING: slurmstepd processes still running: $left"
say "down in $(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.1f", b-a}') s"
