#!/usr/bin/env bash
# Installs the Debian packages the lab needs (tests/labkit/apt-packages.txt), and any more named
# after the log (the browser the console tests drive), that are missing.
# Needs root; prints one line, apt's own output goes to the log named by $1 (or stdout).
set -euo pipefail
cd "$(dirname "$0")"
log=${1:-/dev/stdout}
mapfile -t wanted < <(grep -v '^\s*#' apt-packages.txt | grep -v '^\s*$')
missing=()
for p in "${wanted[@]}" "${@:2}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ "${#missing[@]}" -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "test packages missing (${missing[*]}): run as root, or the tests that need them skip" >&2
  exit 0
fi
echo "Installing ${missing[*]} (apt-get; details in $log)"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >>"$log" 2>&1
apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$log" 2>&1
