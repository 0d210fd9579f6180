#!/usr/bin/env bash
# System packages the test suite drives for real: PostgreSQL 15 (the store's second database),
# Debian's Chromium with its ChromeDriver (the dashboard's browser test) and openssl (a
# self-signed certificate for serve's TLS test). Idempotent: it
# installs only what is missing, retrying apt's network steps. Without root (or apt) it says
# what is missing and stops with an error, so a missing package is never skipped quietly.
set -euo pipefail

declare -A NEEDS=(
  [/usr/lib/postgresql/15/bin/initdb]=postgresql-15
  [/usr/bin/chromium]=chromium
  [/usr/bin/chromedriver]=chromium-driver
  [/usr/bin/openssl]=openssl
)
missing=()
for path in "${!NEEDS[@]}"; do
  [[ -x "$path" ]] || missing+=("${NEEDS[$path]}")
done
((${#missing[@]} == 0)) && exit 0

if [[ $(id -u) -ne 0 ]] || ! command -v apt-get >/dev/null; then
  echo "missing system packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
  exit 1
fi
retry() {
  for attempt in 1 2 3; do
    "$@" && return 0
    echo "attempt $attempt of: $* failed; retrying" >&2
    sleep $((attempt * 5))
  done
  return 1
}
export DEBIAN_FRONTEND=noninteractive
retry apt-get update -q
retry apt-get install -y -q --no-install-recommends "${missing[@]}"
