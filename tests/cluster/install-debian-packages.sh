#!/usr/bin/env bash
# Install the Debian packages the tests need: a one-node SLURM with accounting (see slurm-up.sh).
# Idempotent; does nothing when they are already installed. Needs root (CI runs as root).
# The packages' own services are not started: slurm-up.sh runs private copies of munge and MariaDB.
set -euo pipefail
pkgs=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server iproute2)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "tests/cluster: need root to install ${missing[*]} (run: sudo $0)" >&2
  exit 1
fi
echo "installing ${missing[*]}"
t0=$(date +%s)
# Keep the postinst scripts from starting munge, MariaDB and the slurm daemons (with no systemd they
# would run from /etc/init.d and linger): a policy-rc.d that refuses, only for the time of the install.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' >"$policy"
  chmod 755 "$policy"
  trap 'rm -f "$policy"' EXIT
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "installed in $(( $(date +%s) - t0 )) s"
