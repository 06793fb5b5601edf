#!/usr/bin/env bash
# Start the local PostgreSQL, MariaDB and RabbitMQ the integration tests use, if they are down,
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

# RabbitMQ: the broker, and a vhost of its own for the tests (each test also names its
# exchanges and queues uniquely). The adapter needs no plugin: it hashes keys onto queues.
RABBITMQ_TEST_VHOST=${CHAT_OUTBOX_TEST_RABBITMQ_VHOST:-chat-outbox-test}
# The broker's greeting to an AMQP 0-9-1 header: a broker can hold its port open and yet
# never answer (seen here once), which counts as down too.
amqp_answers() {
  python3 -c '
import socket, sys
with socket.create_connection(("127.0.0.1", 5672), timeout=5) as s:
    s.settimeout(10)
    s.sendall(b"AMQP\x00\x00\x09\x01")
    sys.exit(0 if s.recv(1) == b"\x01" else 1)
'
}
rabbitmq_up() { amqp_answers && rabbitmqctl -q await_startup; }

if (exec 3<>/dev/tcp/127.0.0.1/5672) >/dev/null 2>&1 && ! amqp_answers >/dev/null 2>&1; then
  echo "services: RabbitMQ holds its port but does not answer AMQP: restarting it"
  pkill -KILL -u rabbitmq -f beam.smp || true
  sleep 2
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) >/dev/null 2>&1; then
  echo "services: starting RabbitMQ"
  rabbitmq-server -detached
fi
wait_for RabbitMQ rabbitmq_up
if ! rabbitmqctl -q list_vhosts name | grep -qx "$RABBITMQ_TEST_VHOST"; then
  rabbitmqctl -q add_vhost "$RABBITMQ_TEST_VHOST"
fi
rabbitmqctl -q set_permissions -p "$RABBITMQ_TEST_VHOST" guest '.*' '.*' '.*'
