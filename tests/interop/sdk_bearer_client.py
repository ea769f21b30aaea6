#!/usr/bin/env python3
"""The official MCP Python SDK client (PyPI `mcp` 2.x) with a bearer token.

Connects over Streamable HTTP with `Authorization: Bearer $MCP_BEARER_TOKEN`
(from the environment, so the token is not on a command line; no header when
the variable is unset), lists the tools, calls one tool, and prints ONE JSON
document on stdout:

  {"ok": bool, "era": "modern"|"legacy", "tools": [names],
   "result": {...} | null, "errors": [...]}

Usage:
  MCP_BEARER_TOKEN=... .interop/venv/bin/python tests/interop/sdk_bearer_client.py \
      --url http://127.0.0.1:9029/mcp --mode auto|legacy --call NAME JSON_ARGS
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client


def _leaves(e: BaseException) -> list[BaseException]:
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in _leaves(sub)]
    return [e]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "era": None, "tools": [], "result": None, "errors": []}
    token = os.environ.get("MCP_BEARER_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else None
    http_client = create_mcp_http_client(
        headers=headers, timeout=httpx2.Timeout(args.timeout, read=args.timeout)
    )
    try:
        async with http_client:
            transport = streamable_http_client(args.url, http_client=http_client)
            async with Client(transport, mode=args.mode, cache=None, read_timeout_seconds=args.timeout) as client:
                out["era"] = "legacy" if client.session.initialize_result is not None else "modern"
                page = await client.list_tools()
                out["tools"] = [t.name for t in page.tools]
                name, arguments = args.call
                result = await client.call_tool(name, json.loads(arguments))
                out["result"] = result.model_dump(by_alias=True, mode="json", exclude_unset=True)
                out["ok"] = not result.is_error
    except BaseException as e:  # noqa: BLE001 - reported in the JSON document
        out["errors"].extend(f"{type(x).__name__}: {x}" for x in _leaves(e))
    return out


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--mode", default="auto", choices=["auto", "legacy"])
    p.add_argument("--call", nargs=2, metavar=("NAME", "JSON_ARGS"), required=True)
    p.add_argument("--timeout", type=float, default=30.0)
    args = p.parse_args()
    out = asyncio.run(run(args))
    print(json.dumps(out))
    sys.stdout.flush()
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
