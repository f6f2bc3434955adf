#!/usr/bin/env bash
# Debian packages the test suite drives for real: Chromium (browser tests through Playwright),
# bubblewrap (the solver sandbox's outer jail), libseccomp (its syscall filter) and uidmap
# (newuidmap: the sandbox's uid per slot for an unprivileged user, tested as one).
# Installed with apt when missing. `--runtime` (make run): the sandbox's packages only, no Chromium.
set -euo pipefail
missing=()
if [ "${1:-}" != --runtime ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
command -v bwrap >/dev/null 2>&1 || missing+=(bubblewrap)
ldconfig -p 2>/dev/null | grep -q 'libseccomp\.so\.2' || missing+=(libseccomp2)
command -v newuidmap >/dev/null 2>&1 || missing+=(uidmap)
[ ${#missing[@]} -eq 0 ] && { echo "System packages: present (bubblewrap, libseccomp, uidmap$([ "${1:-}" != --runtime ] && echo ', chromium'))"; exit 0; }
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "System packages: installing ${missing[*]} with apt…"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
elif command -v sudo >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  sudo apt-get update -qq
  sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "Missing: ${missing[*]}. Install them with your package manager (Debian: apt-get install ${missing[*]})." >&2
  exit 1
fi
