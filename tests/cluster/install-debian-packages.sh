#!/usr/bin/env bash
# Install the Debian packages the tests need: a one-node SLURM with accounting (see slurm-up.sh).
# Idempotent; does nothing when they are already installed. Needs root (CI runs as root).
set -euo pipefail
pkgs=(slurmctld slurmd slurm-client slurmdbd munge mariadb-server)
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
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
