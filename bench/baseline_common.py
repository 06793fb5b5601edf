"""Shared by the baseline processes: arguments, and a stop event set by SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal


def arguments(description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", default="bench-baseline")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--linger-ms", type=int, default=5, help="the relay's producer linger")
    parser.add_argument("--listen", action="store_true", help="LISTEN bench_outbox wake-ups")
    return parser.parse_args()


def stop_event() -> asyncio.Event:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    return stopping
