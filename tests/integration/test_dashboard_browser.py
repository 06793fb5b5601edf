"""The dashboard in headless Chromium against real processes: `serve`, `relay` and
`consume` on PostgreSQL and the local Kafka broker. A relay limited to 2 KiB requests kills
an oversized message (MessageSizeTooLarge, fatal) as it would in production; the browser
then finds it, reads why, requeues it, watches it reach consumed, and reads each of its
failures in its journey. Screenshots go to test-artifacts/screenshots/."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as wanted
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.integration.browser import SCREENSHOTS, chromium, replaced
from tests.integration.dashboard_helpers import ADMIN_TOKEN, HOSTILE, TRACE_URL, TRACEPARENT
from tests.integration.databases import fresh_database_url
from tests.integration.http_helpers import free_port
from tests.integration.kafka_helpers import unique_names

pytestmark = pytest.mark.integration

BIG = "an oversized tool output " + "x" * 3000
HELD = "the answer waiting behind the oversized one"
WAIT_S = 30


class Stack:
    """The three processes, the base URL and an admin HTTP client to check against."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env = env
        self.logs = logs
        self.processes: list[subprocess.Popen[bytes]] = []
        port = free_port()
        self.base = f"http://127.0.0.1:{port}"
        self.http = httpx.Client(base_url=self.base, timeout=10)
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        self.big = 0
        """The outbox id of the message the first relay kills."""

    def run(self, *command: str, **env: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "chat_outbox", *command],
            env={**self.env, **env},
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")[-3000:]
        return done.stdout.decode()

    def start(self, *command: str) -> None:
        log = (self.logs / f"{'-'.join(command)}.log").open("wb")
        self.processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "chat_outbox", *command],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        )

    def stats(self) -> dict[str, Any]:
        document: dict[str, Any] = self.http.get("/v1/outbox/stats", headers=self.admin).json()
        return document

    def until(self, what: str, check: Callable[[], bool]) -> None:
        deadline = time.monotonic() + WAIT_S
        while not check():
            if time.monotonic() > deadline:
                tails = "\n".join(
                    f"{p.name}: {p.read_text()[-1500:]}" for p in self.logs.glob("*.log")
                )
                pytest.fail(f"{what} did not happen within {WAIT_S} s\n{tails}")
            time.sleep(0.2)

    def post(self, conversation: str, text: str) -> int:
        response = self.http.post(
            f"/v1/conversations/{conversation}/messages",
            json={"user_id": 7, "role": "assistant", "message": text},
            headers={"traceparent": TRACEPARENT},
        )
        assert response.status_code == 202, response.text
        outbox_id: int = response.json()["outbox_id"]
        return outbox_id

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.http.close()


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Messages recorded through `serve`; a 2 KiB-request relay kills the big one, which is
    requeued and killed again by a 2500-byte one; then a normal relay and a consumer
    deliver everything else and keep running."""
    tmp = tmp_path_factory.mktemp("dashboard-browser")
    url = asyncio.run(fresh_database_url("postgresql", tmp, "browser"))
    topic, group = unique_names("dashboard")
    env = {key: value for key, value in os.environ.items() if not key.startswith("CHAT_OUTBOX_")}
    env.update(
        CHAT_OUTBOX_DATABASE_URL=url,
        CHAT_OUTBOX_BUS="kafka",
        CHAT_OUTBOX_KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        CHAT_OUTBOX_TOPIC=topic,
        CHAT_OUTBOX_CONSUMER_GROUP=group,
        CHAT_OUTBOX_KAFKA_SESSION_TIMEOUT_MS="6000",
        CHAT_OUTBOX_KAFKA_HEARTBEAT_INTERVAL_MS="500",
        CHAT_OUTBOX_KAFKA_REBALANCE_TIMEOUT_MS="2000",
        CHAT_OUTBOX_KAFKA_FETCH_MAX_WAIT_MS="10",
        CHAT_OUTBOX_RELAY_POLL_INTERVAL="0.05",
        CHAT_OUTBOX_ADMIN_TOKEN=ADMIN_TOKEN,
        CHAT_OUTBOX_ADMIN_TRACE_URL=TRACE_URL,
        CHAT_OUTBOX_LOG_FORMAT="json",
    )
    stack = Stack(env, tmp)
    stack.run("migrate")
    stack.start("serve", "--port", stack.base.rsplit(":", 1)[1])
    try:
        stack.until("serve answering", lambda: _answers(stack))
        stack.big = stack.post("browser-dead", BIG)
        stack.post("browser-dead", HELD)
        for n in range(6):
            stack.post(f"browser-ok-{n % 3}", f"message {n} of a healthy conversation")
        for text in HOSTILE:
            stack.post("browser-hostile", text)
        stack.run("relay", "--once", CHAT_OUTBOX_KAFKA_MAX_REQUEST_SIZE="2048")
        # Requeued and killed again under another limit: two failures, each its own error.
        stack.run("dead", "requeue", "--id", str(stack.big))
        stack.run("relay", "--once", CHAT_OUTBOX_KAFKA_MAX_REQUEST_SIZE="2500")
        stack.start("relay")
        stack.start("consume")
        stack.until(
            "delivery of all but the dead row and the one behind it",
            lambda: stack.stats()["consumed"] == 6 + len(HOSTILE),
        )
        yield stack
    finally:
        stack.stop()


def _answers(stack: Stack) -> bool:
    try:
        return stack.http.get("/healthz").status_code == 200
    except httpx.TransportError:
        return False


@pytest.fixture(scope="module")
def browser(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    """Chromium, logged in through the login form."""
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as driver:
        driver.get(f"{stack.base}/admin")
        WebDriverWait(driver, 10).until(wanted.presence_of_element_located((By.ID, "token")))
        shot(driver, "0-login")
        driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
        driver.find_element(By.ID, "login").click()
        WebDriverWait(driver, 10).until(wanted.presence_of_element_located((By.ID, "by-type")))
        yield driver


def shot(driver: WebDriver, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1400, max(900, min(int(height) + 40, 3000)))
    assert driver.save_screenshot(str(SCREENSHOTS / f"{name}.png"))


def text_of(driver: WebDriver, element_id: str) -> str:
    return str(driver.find_element(By.ID, element_id).text)


def test_the_overview_shows_the_counts_that_stats_gives(stack: Stack, browser: WebDriver) -> None:
    stats = json.loads(stack.run("stats", "--json"))
    browser.get(f"{stack.base}/admin")
    for status in ("pending", "published", "consumed", "dead"):
        assert text_of(browser, f"count-{status}") == str(stats[status]), status
    assert text_of(browser, "held-behind-dead") == str(stats["held_behind_dead"]) == "1"
    assert len(browser.find_elements(By.CSS_SELECTOR, "svg.chart")) == 3
    assert "chat_history_persist" in text_of(browser, "by-type")
    assert browser.find_elements(By.CSS_SELECTOR, "#relays tbody tr")  # the running relay
    shot(browser, "1-overview")


def test_a_messages_journey_is_found_by_its_outbox_id(stack: Stack, browser: WebDriver) -> None:
    browser.get(f"{stack.base}/admin/journey")
    Select(browser.find_element(By.ID, "search-by")).select_by_value("id")
    browser.find_element(By.ID, "search").send_keys(str(stack.big + 2))
    browser.find_element(By.ID, "find").click()
    WebDriverWait(browser, 10).until(wanted.presence_of_element_located((By.ID, "timeline")))
    steps = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .step")]
    assert steps == ["recorded", "published", "consumed", "in chat history"]
    link = browser.find_element(By.ID, "trace-link").get_attribute("href")
    assert link == TRACE_URL.replace("{trace_id}", TRACEPARENT.split("-")[1])
    shot(browser, "2-journey")


def test_a_script_in_a_chat_message_renders_as_text(stack: Stack, browser: WebDriver) -> None:
    browser.get(f"{stack.base}/admin/conversation?id=browser-hostile")
    texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#history .text")]
    assert texts == list(HOSTILE)
    assert browser.execute_script("return window.__pwned === undefined") is True
    assert not browser.find_elements(By.CSS_SELECTOR, "main img, main script, main b")
    shot(browser, "3-conversation-hostile")


def test_a_dead_row_is_found_understood_and_requeued_until_consumed(
    stack: Stack, browser: WebDriver
) -> None:
    big = stack.big
    browser.get(f"{stack.base}/admin/dead")
    browser.find_element(By.NAME, "error").send_keys("MessageSizeTooLarge")
    unfiltered = browser.find_element(By.ID, "filter")
    unfiltered.click()
    # The unfiltered page lists the row too: wait for the filtered page to replace it.
    WebDriverWait(browser, 10).until(replaced(unfiltered))
    row = WebDriverWait(browser, 10).until(
        wanted.presence_of_element_located((By.ID, f"dead-{big}"))
    )
    assert "MessageSizeTooLarge" in row.find_element(By.CSS_SELECTOR, ".error").text
    assert row.find_element(By.CSS_SELECTOR, ".held").text == "1"
    shot(browser, "4-dead-letters")

    row.find_element(By.LINK_TEXT, "Requeue conversation…").click()
    WebDriverWait(browser, 10).until(wanted.presence_of_element_located((By.ID, "confirm-requeue")))
    shot(browser, "5-confirm-requeue")
    browser.find_element(By.ID, "confirm-requeue").click()

    WebDriverWait(browser, WAIT_S).until(
        wanted.text_to_be_present_in_element((By.ID, f"watched-{big}"), "consumed")
    )
    assert "Requeued 1 row" in text_of(browser, "requeued")
    shot(browser, "6-requeued-consumed")
    stack.until("the held message consumed too", lambda: stack.stats()["pending"] == 0)
    browser.get(f"{stack.base}/admin/journey?id={big}")
    assert text_of(browser, "journey-status") == "consumed"
    steps = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .step")]
    assert steps == [
        "recorded",
        "dead",
        "requeued",
        "dead",
        "requeued",
        "published",
        "consumed",
        "in chat history",
    ]
    errors = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline .error")]
    assert len(errors) == 2
    assert all("MessageSizeTooLarge" in error for error in errors), errors
    assert "(2048)" in errors[0], errors
    assert "(2500)" in errors[1], errors
    shot(browser, "7-journey-after-requeue")
    browser.get(f"{stack.base}/admin")
    assert text_of(browser, "count-dead") == "0"
    shot(browser, "8-overview-after-requeue")
