"""A RabbitMQ vhost of this test run's own on the local broker, deleted at the run's end
with every queue in it, and with those of runs on this host that are gone. Queues left
behind pile up run after run, and a broker holding a few hundred quorum queues stopped
answering here."""

from __future__ import annotations

import os
import re
import secrets
import subprocess

from tests.integration.databases import HOST_TAG, process_is_gone

VHOST_PREFIX = "chat-outbox-test-"
RUN_VHOST = f"{VHOST_PREFIX}{HOST_TAG}-{os.getpid()}-{secrets.token_hex(2)}"
RUN_VHOST_NAME = re.compile(
    rf"{re.escape(VHOST_PREFIX)}(?P<host>[0-9a-f]{{6}})-(?P<pid>[0-9]+)-[0-9a-f]{{4}}"
)
BROKER_URL = "amqp://guest:guest@127.0.0.1:5672/"


def _rabbitmqctl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["rabbitmqctl", "-q", *args], capture_output=True, text=True, timeout=120, check=True
    )


def create_run_vhost() -> str:
    """This run's vhost, guest allowed everything in it; its URL."""
    _rabbitmqctl("add_vhost", RUN_VHOST)
    _rabbitmqctl("set_permissions", "-p", RUN_VHOST, "guest", ".*", ".*", ".*")
    return f"{BROKER_URL}{RUN_VHOST}"


def delete_run_vhosts() -> list[str]:
    """Delete this run's vhost and those of gone runs on this host; the names deleted."""
    names = _rabbitmqctl("list_vhosts", "name").stdout.split()
    deleted = []
    for name in names:
        match = RUN_VHOST_NAME.fullmatch(name)
        if match is None or match["host"] != HOST_TAG:
            continue
        if name == RUN_VHOST or process_is_gone(int(match["pid"])):
            _rabbitmqctl("delete_vhost", name)
            deleted.append(name)
    return deleted
