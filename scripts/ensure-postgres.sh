#!/usr/bin/env bash
# Make sure the PostgreSQL server in $1 (a postgresql:// URL) accepts connections; start a local
# Debian cluster if one is installed but stopped, otherwise explain what is needed.
set -euo pipefail
url="$1"
py="${PY:-.venv/bin/python}"
server_url=$(echo "$url" | sed -E 's#/[^/?]*(\?.*)?$#/postgres#')

ping() { "$py" - "$server_url" <<'PY' >/dev/null 2>&1
import sys, psycopg
psycopg.connect(sys.argv[1], connect_timeout=2).close()
PY
}

ping && { echo "PostgreSQL: reachable at $server_url"; exit 0; }
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
  version=$(ls /etc/postgresql | sort -V | tail -1)
  echo "PostgreSQL: starting cluster $version/main…"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 50); do ping && { echo "PostgreSQL: started"; exit 0; }; sleep 0.2; done
fi
cat >&2 <<MSG
PostgreSQL does not answer at $server_url.
make test runs the suite on SQLite and on PostgreSQL. Start a server that accepts
  $url
(for example: sudo apt-get install postgresql, with trust or password auth for that user),
or set TEST_DATABASE_URL=postgresql://USER:PASSWORD@HOST:PORT/DBNAME for another one.
MSG
exit 1
