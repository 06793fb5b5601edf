"""Each setting is declared once, with its doc; the environment, the TOML file (flat or by
section), Settings.of, `config show` and docs/configuration.md all read that declaration,
and a secret shows nowhere."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import attrs
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from chat_outbox import ConfigError, Settings
from chat_outbox.entrypoints.config import BY_KEY, DECLARATIONS
from chat_outbox.entrypoints.config_command import show_config, shown
from chat_outbox.entrypoints.config_docs import reference
from chat_outbox.entrypoints.config_file import QUALIFIED, load_settings
from chat_outbox.entrypoints.config_schema import SPEC, Declaration

pytestmark = pytest.mark.unit

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
CANARY = "CANARY-s3cret-0123456789-abcdefghijklmnop"
# Every variable users' deployments may set: renaming one would break them.
NAMES = """
DATABASE_URL BUS TOPIC EVENTS LOG_FORMAT LOG_LEVEL MAX_MESSAGE_BYTES MAX_RETRY RELAY_BATCH_SIZE
RELAY_POLL_INTERVAL RELAY_MAX_POLL_INTERVAL RELAY_WAKEUP_COALESCE_MS RELAY_PACE_MS
SWEEP_PUBLISHED_AFTER RELAY_LEASE_SECONDS RELAY_CLAIM RELAY_LANES RETENTION PURGE_INTERVAL
PURGE_BATCH_SIZE CONSUMER_GROUP CONSUMER_BATCH_SIZE CONSUMER_WRITES
CONSUMER_HANDLER_ATTEMPTS KAFKA_BOOTSTRAP_SERVERS
KAFKA_SECURITY_PROTOCOL KAFKA_SASL_MECHANISM KAFKA_SASL_USERNAME KAFKA_SASL_PASSWORD
KAFKA_SSL_CAFILE KAFKA_COMPRESSION KAFKA_ENABLE_IDEMPOTENCE KAFKA_CREATE_TOPICS
KAFKA_TOPIC_PARTITIONS KAFKA_REPLICATION_FACTOR KAFKA_REQUEST_TIMEOUT_MS
KAFKA_MAX_REQUEST_SIZE KAFKA_SESSION_TIMEOUT_MS KAFKA_HEARTBEAT_INTERVAL_MS
KAFKA_REBALANCE_TIMEOUT_MS KAFKA_FETCH_MAX_WAIT_MS KAFKA_COMMIT_INTERVAL_MS RABBITMQ_URL
RABBITMQ_QUEUES RABBITMQ_PREFETCH RABBITMQ_CONFIRM_TIMEOUT_MS RABBITMQ_MAX_MESSAGE_SIZE
HTTP_HOST HTTP_PORT HTTP_MAX_BODY_BYTES HTTP_MAX_RESPONSE_BYTES HTTP_HEADER_TIMEOUT_SECONDS
HTTP_BODY_TIMEOUT_SECONDS HTTP_KEEP_ALIVE_SECONDS HTTP_MAX_CONNECTIONS ADMIN_TOKEN
ADMIN_TRACE_URL AUTH_JWT_SECRET AUTH_JWT_PUBLIC_KEY_FILE AUTH_JWT_ALGORITHMS AUTH_USER_CLAIM
AUTH_AUDIENCE AUTH_ISSUER AUTH_SERVICE_SCOPE METRICS_HOST METRICS_PORT METRICS_REFRESH_SECONDS
"""
VARIABLES = NAMES.split()
SECRETS = [d for d in DECLARATIONS if d.secret]


def test_every_variable_keeps_its_name_and_has_one_declaration() -> None:
    """The variables are those deployments set, each declared once, and the keys a file
    takes (flat or by section) name one setting each."""
    assert sorted(d.variable for d in DECLARATIONS) == sorted(f"CHAT_OUTBOX_{v}" for v in VARIABLES)
    assert len(BY_KEY) == len(DECLARATIONS)
    assert not set(QUALIFIED) & set(BY_KEY)
    assert len({(d.section, d.name) for d in DECLARATIONS}) == len(DECLARATIONS)


def test_every_section_field_is_a_declaration_with_a_one_line_doc() -> None:
    """No field of a section escapes the declarations: each has its parser and its doc."""
    sections = [holder.default.factory for holder in attrs.fields(Settings)]  # type: ignore[union-attr]
    fields = [field for cls in sections for field in attrs.fields(cls)]
    assert len(fields) == len(DECLARATIONS)
    for field in fields:
        spec = field.metadata[SPEC]
        assert spec.doc.strip(), field.name
        assert "\n" not in spec.doc, field.name
    for d in DECLARATIONS:
        assert d.spec.most is None or d.spec.least is not None, d.key


def test_the_committed_reference_matches_the_declarations() -> None:
    """docs/configuration.md is `chat-outbox config docs`' output: regenerate it with
    `.venv/bin/chat-outbox config docs > docs/configuration.md`."""
    assert REFERENCE.read_text(encoding="utf-8") == reference()
    for d in DECLARATIONS:
        assert f"`{d.variable}`" in reference()


@pytest.mark.parametrize("declaration", SECRETS, ids=[d.key for d in SECRETS])
def test_a_secret_never_shows_in_repr_or_config_show(
    declaration: Declaration, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Secrets are ***, URLs lose their password: in repr, and `config show` (both forms)."""
    value = {
        "database_url": f"postgresql+asyncpg://chat:{CANARY}@db/chat",
        "rabbitmq_url": f"amqp://guest:{CANARY}@mq:5672/",
    }.get(declaration.key, CANARY)
    loaded = Settings.of(**{declaration.key: value})
    assert loaded.value(declaration) == value
    assert CANARY not in repr(loaded)
    assert CANARY not in json.dumps(shown(loaded, {}))
    monkeypatch.setenv(declaration.variable, value)
    for as_json in (False, True):
        args = argparse.Namespace(config=None, json=as_json)
        assert asyncio.run(show_config(args, loaded)) == 0
        out = capsys.readouterr().out
        assert CANARY not in out
        assert declaration.variable in out or as_json


@settings(max_examples=200, deadline=None)
@given(
    declaration=st.sampled_from(SECRETS),
    before=st.text(max_size=12),
    after=st.text(max_size=12),
    shape=st.sampled_from(["{}", "amqp://u:{}@h:99999/", "postgresql+asyncpg://u:{}@h:x/d"]),
)
def test_a_secret_never_shows_in_a_config_error(
    declaration: Declaration, before: str, after: str, shape: str
) -> None:
    """Whatever is wrong with a secret or a URL holding a password, the error leaves it out;
    the checks across settings (a JWT secret with a key file) too."""
    assume(shape != "{}" or declaration.spec.secret)  # a URL's password is in a URL
    raw = shape.format(before + CANARY + after)
    for environ in (
        {declaration.variable: raw},
        {declaration.variable: raw, "CHAT_OUTBOX_AUTH_JWT_PUBLIC_KEY_FILE": "key.pem"},
        {declaration.variable: raw, "CHAT_OUTBOX_AUTH_JWT_ALGORITHMS": "RS256"},
    ):
        refusal = ""
        try:
            Settings.from_env(environ)
        except ConfigError as error:
            refusal = str(error)
        assert CANARY not in refusal


SAMPLES = {
    "database_url": "postgresql+asyncpg://chat:pw@db/chat",
    "topic": "from-file",
    "max_retry": 7,
    "relay_batch_size": 50,
    "sweep_published_after": 12.5,
    "relay_lanes": 3,
    "retention": "7d",
    "purge_interval": "2h",
    "purge_batch_size": 10,
    "consumer_group": "g",
    "consumer_writes": 2,
    "kafka_sasl_password": "pw",
    "kafka_enable_idempotence": True,
    "rabbitmq_queues": 8,
    "http_port": 9000,
    "admin_token": "tok",
    "admin_trace_url": "https://trace/{trace_id}",
    "auth_jwt_secret": "x" * 40,
    "auth_jwt_algorithms": "HS512",
    "metrics_port": 9100,
    "metrics_refresh_seconds": 2.0,
}


def _toml(value: object) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def test_the_section_form_and_the_flat_form_give_equal_settings(tmp_path: Path) -> None:
    """`[relay]` + `retention` is `retention`, `[http]` + `admin_token` is `admin_token`:
    a file by sections reads as the same file with flat keys, and as Settings.of."""
    flat, by_section = tmp_path / "flat.toml", tmp_path / "sections.toml"
    flat.write_text("".join(f"{key} = {_toml(v)}\n" for key, v in SAMPLES.items()))
    tables: dict[str, list[str]] = {}
    for key, value in SAMPLES.items():
        d = BY_KEY[key]
        tables.setdefault(d.section, []).append(f"{d.name} = {_toml(value)}\n")
    by_section.write_text("".join(f"[{name}]\n{''.join(rows)}" for name, rows in tables.items()))
    from_flat, from_sections = load_settings({}, str(flat)), load_settings({}, str(by_section))
    assert from_flat.settings == from_sections.settings == Settings.of(**SAMPLES)
    assert from_sections.settings.relay.retention == 7 * 86_400
    assert from_sections.origins["admin_token"] == f"file {by_section}"
    assert from_flat.settings != Settings()


def test_a_setting_given_twice_in_a_file_is_refused(tmp_path: Path) -> None:
    """`retention` and `[relay]` + `retention` are one setting: the file must choose."""
    path = tmp_path / "twice.toml"
    path.write_text('retention = "1d"\n[relay]\nretention = "2d"\n')
    with pytest.raises(ConfigError, match="retention is set twice"):
        load_settings({}, str(path))


@settings(max_examples=300, deadline=None)
@given(declaration=st.sampled_from(DECLARATIONS), raw=st.text(max_size=30))
def test_every_declared_setting_reads_alike_from_the_environment_and_arguments(
    declaration: Declaration, raw: str
) -> None:
    """For any declared setting and any text, the environment and Settings.of agree: the
    same value, or the same one-line error naming the variable."""
    outcomes: list[object] = []
    reads: list[Callable[[], Settings]] = [
        lambda: Settings.from_env({declaration.variable: raw}),
        lambda: Settings.of(**{declaration.key: raw}),
    ]
    for read in reads:
        try:
            outcomes.append(read().value(declaration))
        except ConfigError as error:
            outcomes.append(error.args)
    assert outcomes[0] == outcomes[1]
    if isinstance(outcomes[0], tuple):
        assert "\n" not in outcomes[0][0]
