"""Every bad argument or setting ends the CLI with exit 2 and one line, never a traceback.

The CLI runs in-process, on a SQLite file of the test's own: the out-of-range values that
crashed reached the driver (an id past 64 bits) or datetime (a moment past year 1)."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Mapping, Sequence
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime
from pathlib import Path
from unittest import mock

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chat_outbox.entrypoints import cli
from chat_outbox.entrypoints.cli import build_parser, main
from chat_outbox.entrypoints.config import BY_KEY, DECLARATIONS, ConfigError, Settings
from chat_outbox.entrypoints.config_schema import Declaration
from chat_outbox.entrypoints.log_setup import configure_logging

pytestmark = pytest.mark.unit

Outcome = tuple[int, str, str]
# Whole numbers and floats as an operator might type them, from the ordinary to the absurd.
NUMBER_TEXT = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.integers(min_value=-(10**400), max_value=10**400).map(str),
    st.floats().map(repr),
    st.from_regex(r"\A[-+]?\d{1,25}(\.\d{1,5})?(e[-+]?\d{1,3})?\Z"),
    st.sampled_from(["0", "-1", "1e308", "nan", "inf", "-inf", "9" * 5000, "1_000", " 7 "]),
)
MOMENT_TEXT = st.one_of(
    NUMBER_TEXT.map(lambda number: number + "d"),
    st.from_regex(r"\A\d{1,30}(\.\d{1,9})?[smhdw]\Z"),
    st.builds(
        lambda moment, offset: moment.isoformat() + offset,
        # The edges, where an offset carries the time past year 1 or 9999 in UTC.
        st.datetimes(max_value=datetime(1, 1, 2))
        | st.datetimes(min_value=datetime(9999, 12, 30))
        | st.datetimes(),
        st.sampled_from(["", "Z", "+14:00", "-14:00", "+23:59", "-23:59"]),
    ),
)
CLI_SETTINGS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The environment of a migrated SQLite database, with no stray CHAT_OUTBOX_* set."""
    path = tmp_path_factory.mktemp("bad_arguments") / "outbox.sqlite3"
    env = {"CHAT_OUTBOX_DATABASE_URL": f"sqlite+aiosqlite:///{path}", "CHAT_OUTBOX_BUS": "memory"}
    code, _, err = run_cli(["migrate"], env)
    assert code == 0, err
    return env


def run_cli(argv: Sequence[str], env: Mapping[str, str]) -> Outcome:
    """main(argv) in this process under `env` only: its exit code, stdout and stderr, with
    the logging configuration put back afterwards for the tests that capture logs."""
    out, err = io.StringIO(), io.StringIO()
    kept = {name: value for name, value in os.environ.items() if not name.startswith("CHAT_")}
    saved, root = structlog.get_config(), logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        with (
            mock.patch.dict(os.environ, {**kept, **env}, clear=True),
            mock.patch.object(cli, "configure_logging", configure_uncached),
            redirect_stdout(out),
            redirect_stderr(err),
        ):
            try:
                code = main(list(argv))
            except SystemExit as stop:  # argparse's usage errors
                code = stop.code if isinstance(stop.code, int) else 2
    finally:
        structlog.configure(**saved)
        root.handlers[:], root.level = handlers, level
    return code, out.getvalue(), err.getvalue()


def configure_uncached(log_format: str, level: str) -> None:
    """The CLI's logging, minus caching: a logger cached now would escape capture_logs later."""
    configure_logging(log_format, level)
    structlog.configure(cache_logger_on_first_use=False)


def assert_ok_or_one_line(outcome: Outcome, *, allowed_failure: str | None = None) -> None:
    """Exit 0, or exit 2 with one line on stderr; exit 1 only with the expected one line."""
    code, _, err = outcome
    if code == 0:
        return
    assert err.count("\n") == 1, err
    assert err.startswith("chat-outbox"), err
    if code == 1 and allowed_failure is not None:
        assert allowed_failure in err, err
        return
    assert code == 2, err


@pytest.mark.parametrize(
    "argv",
    [
        ["history", "--conversation-id", "c", "--limit", str(2**64)],
        ["history", "--conversation-id", "c", "--limit", "-1"],
        ["history", "--conversation-id", "c", "--limit", "0"],
        ["dead", "show", str(2**64)],
        ["dead", "list", "--limit", str(2**64)],
        ["dead", "requeue", "--id", str(2**63)],
        ["dead", "requeue", "--since", "0001-01-01T00:00:00+01:00"],
        ["dead", "requeue", "--until", "9999-12-31T23:59:59-14:00"],
        [
            "send",
            "--user-id",
            "9" * 5000,
            "--conversation-id",
            "c",
            "--role",
            "user",
            "--message",
            "x",
        ],
        ["demo", "--messages", "-5"],
    ],
)
def test_an_out_of_range_argument_exits_2_with_one_line(
    database: dict[str, str], argv: list[str]
) -> None:
    """Numbers past the database's columns, negative limits (no LIMIT on SQLite) and moments
    past year 1 or 9999 in UTC are usage errors, not a crash or every row."""
    code, out, err = run_cli(argv, database)
    assert (code, out) == (2, ""), err
    assert err.count("\n") == 1, err


@CLI_SETTINGS
@given(number=NUMBER_TEXT)
def test_any_number_as_a_limit_or_an_id_exits_0_or_2(database: dict[str, str], number: str) -> None:
    """history --limit, dead list --limit, dead show ID and dead requeue --id answer any
    number text with a result or one usage line (dead show: or `no outbox row`)."""
    for argv in (
        ["history", "--conversation-id", "c", "--limit", number],
        ["dead", "list", "--limit", number],
        ["dead", "requeue", "--id", number],
    ):
        assert_ok_or_one_line(run_cli(argv, database))
    show = run_cli(["dead", "show", number], database)
    assert_ok_or_one_line(show, allowed_failure="no outbox row has id")


@CLI_SETTINGS
@given(moment=MOMENT_TEXT)
def test_any_time_or_duration_as_since_until_or_older_than_exits_0_or_2(
    database: dict[str, str], moment: str
) -> None:
    """dead requeue --since/--until and purge --older-than take any time or duration text
    to a result or one usage line."""
    for argv in (
        ["dead", "requeue", "--since", moment],
        ["dead", "requeue", "--until", moment],
        ["dead", "list", "--since", moment],
        ["purge", "--older-than", moment],
    ):
        assert_ok_or_one_line(run_cli(argv, database))


@settings(max_examples=200, deadline=None)
@given(
    option=st.sampled_from(
        [
            ("consume", "--idle-exit"),
            ("demo", "--messages"),
            ("demo", "--conversations"),
            ("serve", "--port"),
            ("send", "--user-id"),
        ]
    ),
    number=NUMBER_TEXT,
)
def test_any_number_for_a_process_option_is_parsed_in_range_or_refused(
    option: tuple[str, str], number: str
) -> None:
    """Options read before a process starts take a finite, in-range number or stop the
    parse with exit 2 and one line: no NaN or 1e308 seconds, no negative demo sizes."""
    command, flag = option
    argv = [command, flag, number]
    if command == "send":
        argv += ["--conversation-id", "c", "--role", "user", "--message", "x"]
    err = io.StringIO()
    with redirect_stderr(err):
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as stop:
            code = stop.code
            assert code == 2
            assert err.getvalue().count("\n") == 1
            return
    value = getattr(args, flag.removeprefix("--").replace("-", "_"))
    if command == "send":  # any int here: ChatMessage.create refuses it with one line
        assert isinstance(value, int)
        return
    limits = {"--idle-exit": 365 * 86_400, "--port": 65_535}
    assert 0 < value <= limits.get(flag, 100_000)


def numeric_settings() -> list[str]:
    """The keys of the settings that hold a number (or auto and a number)."""
    return [
        declaration.key
        for declaration in DECLARATIONS
        if declaration.type in ("int", "float", "int|None", "float|None")
    ]


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(numeric_settings()), number=NUMBER_TEXT)
def test_any_number_for_a_numeric_setting_is_bounded_or_refused_in_one_line(
    name: str, number: str
) -> None:
    """Each numeric setting from the environment is within a year of seconds, a day of
    milliseconds and 100,000 of a batch, or refused with one line naming it."""
    variable = f"CHAT_OUTBOX_{name.upper()}"
    try:
        value = Settings.from_env({variable: number}).value(BY_KEY[name])
    except ConfigError as error:
        refusal = str(error)
        assert "\n" not in refusal
        assert variable in refusal
        return
    ceiling = 1024**3 if name.endswith(("_bytes", "_size")) else 10 * 365 * 86_400
    assert value is None or 0 <= value <= ceiling


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("relay_lease_seconds", "1e308"),
        ("relay_batch_size", "9" * 23),
        ("consumer_batch_size", "9" * 23),
        ("purge_batch_size", "1e5000"),
        ("relay_poll_interval", "1e308"),
        ("retention", "1e308"),
        ("kafka_request_timeout_ms", "9" * 23),
        ("rabbitmq_prefetch", "65536"),
        ("max_retry", str(2**31)),
    ],
)
def test_an_absurd_numeric_setting_exits_2_with_one_line(
    database: dict[str, str], name: str, value: str
) -> None:
    """Settings that were accepted and then crashed the relay stop the CLI at the start."""
    code, _, err = run_cli(["stats"], {**database, f"CHAT_OUTBOX_{name.upper()}": value})
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert f"CHAT_OUTBOX_{name.upper()}" in err


@pytest.mark.parametrize(
    "url", ["amqp://h:99999/", "amqp://h:-1/", "amqp://h:port/", "amqp://h:0/", "amqp://[::1/"]
)
def test_a_rabbitmq_url_with_a_bad_port_exits_2_with_one_line(
    database: dict[str, str], url: str
) -> None:
    """The URL's port is checked with the settings, not at the first connect."""
    code, _, err = run_cli(["stats"], {**database, "CHAT_OUTBOX_RABBITMQ_URL": url})
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert "CHAT_OUTBOX_RABBITMQ_URL" in err


def test_a_config_file_that_is_not_utf8_exits_2_with_one_line(
    database: dict[str, str], tmp_path: Path
) -> None:
    """TOML is UTF-8: a Latin-1 file is a usage error naming the file and the byte."""
    path = tmp_path / "latin1.toml"
    path.write_bytes('topic = "caf\xe9"\n'.encode("latin-1"))
    code, _, err = run_cli(["--config", str(path), "stats"], database)
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert f"{path} is not UTF-8 at byte" in err


def test_settings_at_their_largest_still_run_the_relay_and_consumer(
    database: dict[str, str],
) -> None:
    """The bounds are safe: the in-process demo relays and consumes with every setting at
    its maximum that the demo does not wait on."""
    largest = {
        "CHAT_OUTBOX_RELAY_BATCH_SIZE": "100000",
        "CHAT_OUTBOX_CONSUMER_BATCH_SIZE": "100000",
        "CHAT_OUTBOX_PURGE_BATCH_SIZE": "100000",
        "CHAT_OUTBOX_RELAY_LEASE_SECONDS": "604800",
        "CHAT_OUTBOX_SWEEP_PUBLISHED_AFTER": "31536000",
        "CHAT_OUTBOX_RETENTION": "315360000",
        "CHAT_OUTBOX_PURGE_INTERVAL": "31536000",
        "CHAT_OUTBOX_MAX_RETRY": "10000",
        "CHAT_OUTBOX_MAX_MESSAGE_BYTES": str(64 * 1024 * 1024),
        "CHAT_OUTBOX_RELAY_LANES": "8",
        "CHAT_OUTBOX_CONSUMER_WRITES": "64",
    }
    code, _, err = run_cli(
        ["demo", "--messages", "4", "--conversations", "2"], {**database, **largest}
    )
    assert code == 0, err


@pytest.mark.parametrize(
    "servers", ["h:99999", "h:0", "h:", "h:port", "a,,b", "[::1]:x", "h:9092,k:70000"]
)
def test_kafka_bootstrap_servers_with_a_bad_port_exit_2_with_one_line(
    database: dict[str, str], servers: str
) -> None:
    """Each host:port of the Kafka bootstrap list is checked with the settings."""
    env = {**database, "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS": servers}
    code, _, err = run_cli(["stats"], env)
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert "CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS" in err


@settings(max_examples=300, deadline=None)
@given(
    declaration=st.sampled_from(DECLARATIONS),
    raw=st.text(st.characters(exclude_categories=())),  # surrogates included
)
def test_any_text_for_any_setting_gives_settings_or_one_line(
    declaration: Declaration, raw: str
) -> None:
    """Any text, undecodable bytes (lone surrogates) included, for any declared variable
    gives Settings whose text values encode as UTF-8, or a one-line ConfigError."""
    try:
        loaded = Settings.from_env({declaration.variable: raw})
    except ConfigError as error:
        refusal = str(error)
        assert "\n" not in refusal
        return
    value = loaded.value(declaration)
    if isinstance(value, str):
        value.encode("utf-8")


@pytest.mark.parametrize(
    "template",
    ["javascript:alert(1)//{trace_id}", "https://t/{trace_id}/{trace_id}", "https://t/", "t"],
)
def test_a_trace_url_that_is_not_an_http_template_exits_2_with_one_line(
    database: dict[str, str], template: str
) -> None:
    """The dashboard links to it: only an http(s) URL with one {trace_id} is taken."""
    code, _, err = run_cli(["stats"], {**database, "CHAT_OUTBOX_ADMIN_TRACE_URL": template})
    assert code == 2, err
    assert err.count("\n") == 1, err
    assert "CHAT_OUTBOX_ADMIN_TRACE_URL" in err
