#!/usr/bin/env bash
# Start the local PostgreSQL and MariaDB the integration tests use, if they are down,
# and wait until each answers. Safe to run when they are already up.
set -euo pipefail

wait_for() {  # name, check command...
  local name=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then echo "services: $name is up"; return 0; fi
    sleep 1
  done
  echo "services: $name did not come up within 60 s" >&2
  return 1
}

postgres_up() { pg_isready -q -h 127.0.0.1 -p 5432; }
mariadb_up() { mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -uroot ping; }

if ! postgres_up >/dev/null 2>&1; then
  echo "services: starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
wait_for PostgreSQL postgres_up

if ! mariadb_up >/dev/null 2>&1; then
  echo "services: starting MariaDB"
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
fi
wait_for MariaDB mariadb_up
