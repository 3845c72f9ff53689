#!/usr/bin/env python
"""Integrations benchmark: MCP tool-call latency as a phone call sees it, and webhook signing cost.

    .venv/bin/python bench/integrations_bench.py                  # 300 calls, concurrency 1 and 8
    .venv/bin/python bench/integrations_bench.py --calls 1000 --concurrency 16

All real code paths, on loopback: the project's Telegram MCP server (mcp SDK, uvicorn,
bearer guard, pydantic argument validation) in front of the fake Telegram Bot API, reached
through the real MCP client.

1. Toolbox: one session opened per "call" (`McpToolbox`), then N `send_message` calls,
   sequentially and with C concurrent callers sharing the session — what a live call pays
   per tool use once the toolbox is open. Also the time to open the toolbox.
2. One-shot: `call_tool` (connect + initialize + call + close each time) — what the
   dashboard's "test connection" style paths pay, and why calls keep sessions open.
3. Webhook signing and verification (`webhooks_signing`) for a 2 KB body.

Prints p50/p95/max in milliseconds and throughput; asserts nothing.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from integrations.mcp_client import McpToolbox, ServerSpec, ToolboxServer, call_tool  # noqa: E402
from integrations.mcp_servers.telegram import TelegramConfig, build_server  # noqa: E402
from integrations.testing.fake_telegram import FakeTelegram  # noqa: E402
from integrations.testing.mcp import serve_mcp  # noqa: E402
from integrations.webhooks_signing import signature_header, verify_signature  # noqa: E402

BOT = "1:BENCH"
CALLER = "bench-token"


def summary(name: str, samples_ms: list[float], wall_s: float | None = None) -> None:
    ordered = sorted(samples_ms)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    line = (f"{name:<44} n={len(ordered):<5} p50={statistics.median(ordered):7.2f} ms  "
            f"p95={p95:7.2f} ms  max={ordered[-1]:7.2f} ms")
    if wall_s:
        line += f"  {len(ordered) / wall_s:8.1f}/s"
    print(line)


async def toolbox_bench(spec: ServerSpec, calls: int, concurrency: int) -> None:
    started = time.perf_counter()
    async with McpToolbox([ToolboxServer("telegram", spec)], call_timeout_s=30) as box:
        open_ms = (time.perf_counter() - started) * 1000
        print(f"{'toolbox open (initialize + list_tools)':<44} {open_ms:7.2f} ms")
        for workers in sorted({1, concurrency}):
            samples: list[float] = []
            queue: asyncio.Queue[int] = asyncio.Queue()
            for n in range(calls):
                queue.put_nowait(n)

            async def worker(queue: asyncio.Queue[int], samples: list[float]) -> None:
                while not queue.empty():
                    n = queue.get_nowait()
                    t0 = time.perf_counter()
                    outcome = await box.call("telegram__send_message", {"chat_id": 1001, "text": f"bench {n}"})
                    samples.append((time.perf_counter() - t0) * 1000)
                    if outcome.is_error:
                        raise RuntimeError(outcome.output)

            wall = time.perf_counter()
            await asyncio.gather(*(worker(queue, samples) for _ in range(workers)))
            summary(f"toolbox send_message, {workers} concurrent", samples, time.perf_counter() - wall)


async def one_shot_bench(spec: ServerSpec, calls: int) -> None:
    samples = []
    wall = time.perf_counter()
    for n in range(calls):
        t0 = time.perf_counter()
        result = await call_tool(spec, "send_message", {"chat_id": 1001, "text": f"one-shot {n}"})
        samples.append((time.perf_counter() - t0) * 1000)
        if result.is_error:
            raise RuntimeError(result.text)
    summary("one-shot connect+call+close", samples, time.perf_counter() - wall)


def signing_bench(iterations: int) -> None:
    body = os.urandom(1024).hex().encode()  # 2 KB, like a call.ended with a short transcript
    secret = "whsec_" + "x" * 43
    sign, verify = [], []
    for _ in range(iterations):
        t0 = time.perf_counter()
        header = signature_header(secret, body)
        t1 = time.perf_counter()
        verify_signature(secret, body, header)
        t2 = time.perf_counter()
        sign.append((t1 - t0) * 1000)
        verify.append((t2 - t1) * 1000)
    summary("webhook sign (2 KB body)", sign)
    summary("webhook verify (2 KB body)", verify)


def main() -> None:
    import logging

    # The SDK and uvicorn log every request at INFO; the figures are the output here.
    logging.basicConfig(level=logging.WARNING)
    for name in ("mcp", "httpx", "httpx2", "uvicorn", "uvicorn.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--one-shot-calls", type=int, default=50)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPUs")
    with FakeTelegram(tokens={BOT}) as fake:
        config = TelegramConfig(caller_tokens=frozenset({CALLER}), api_base=fake.url)
        with serve_mcp(build_server(config), config) as url:
            spec = ServerSpec(url=f"{url}/mcp", headers={"Authorization": f"Bearer {CALLER}",
                                                         "X-Telegram-Bot-Token": BOT})
            asyncio.run(toolbox_bench(spec, args.calls, args.concurrency))
            asyncio.run(one_shot_bench(spec, args.one_shot_calls))
    signing_bench(5000)


if __name__ == "__main__":
    main()
