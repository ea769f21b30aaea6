#!/usr/bin/env python3
"""Run one tool call as a task with the official MCP Python SDK client (PyPI `mcp`
2.x) and print ONE JSON document.

The client declares the `io.modelcontextprotocol/tasks` extension (the SDK's
`ClientExtension`, from `fastmcp-tasks`) and calls with `allow_claimed=True`, so a
server that runs the call as a task answers with its `CreateTaskResult`; the client
then polls `tasks/get` itself until the task ends. On a legacy connection (`--mode
legacy`) the SDK drops the extension and the call is answered directly.

Usage:
  .interop/venv-tasks/bin/python tests/interop/sdk_tasks_client.py --url URL --mode legacy|auto \
      --tool NAME [--args JSON] [--timeout SECONDS]

Output: {"ok", "protocol_version", "capabilities", "created": CreateTaskResult | null,
         "polls": number of tasks/get, "final": the last tasks/get | null,
         "result": the tool's CallToolResult, "text": its first text, "error"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from typing import Any

from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from fastmcp_tasks.client import TasksClientExtension
from fastmcp_tasks.client_models import (
    ClientCreateTaskResult,
    ClientGetTaskResult,
    GetTaskRequest,
    GetTaskRequestParams,
)


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_none=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "created": None, "polls": 0, "final": None, "error": None}
    async with Client(
        streamable_http_client(args.url),
        mode=args.mode,
        read_timeout_seconds=args.timeout,
        extensions=[TasksClientExtension()],
    ) as client:
        out["protocol_version"] = client.protocol_version
        out["capabilities"] = dump(client.server_capabilities)
        await client.session.list_tools()
        raw = await client.session.call_tool(
            args.tool, json.loads(args.args), read_timeout_seconds=args.timeout, allow_claimed=True
        )
        if isinstance(raw, ClientCreateTaskResult):
            out["created"] = dump(raw)
            deadline = time.monotonic() + args.timeout
            while True:
                final = await client.session.send_request(
                    GetTaskRequest(params=GetTaskRequestParams(task_id=raw.task_id)), ClientGetTaskResult
                )
                out["polls"] += 1
                if final.status in ("completed", "failed", "cancelled"):
                    break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"task {raw.task_id} still {final.status}")
                await asyncio.sleep(min((final.poll_interval_ms or 500) / 1000, 1.0))
            out["final"] = dump(final)
            out["result"] = final.result
        else:
            out["result"] = dump(raw)
        content = (out["result"] or {}).get("content") or []
        out["text"] = content[0].get("text") if content else None
        out["ok"] = True
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--tool", required=True)
    ap.add_argument("--args", default="{}")
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    try:
        out = asyncio.run(run(args))
    except BaseException as e:  # one JSON document whatever happens
        out = {"ok": False, "error": f"{type(e).__name__}: {e}", "trace": traceback.format_exc()}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
