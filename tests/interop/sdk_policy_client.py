#!/usr/bin/env python3
"""The official MCP Python SDK client (PyPI `mcp` 2.x) with a bearer token, reporting which tools a caller sees and what its calls get (for policy tests).

Connects over Streamable HTTP sending `Authorization: Bearer <token>` on every
request (the SDK's own HTTP client, `create_mcp_http_client(headers=...)`),
lists the tools, makes the calls asked for, and prints ONE JSON document:

  {
    "ok": true,                      # connected and every call answered
    "era": "modern" | "legacy",
    "tools": ["name", ...],          # what tools/list showed this caller
    "calls": [{"name", "arguments", "ok", "is_error", "text", "error"}],
    "errors": [...]                  # connection / protocol failures (e.g. a 401)
  }

Usage:
  .interop/venv/bin/python tests/interop/sdk_policy_client.py --url URL \
      [--token TOKEN] [--mode legacy|auto] [--call NAME JSON_ARGS]...

Exit status 0 when connected and every call got a result (a result with
isError=true is still an answer), 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
    out: dict[str, Any] = {"ok": False, "mode": args.mode, "errors": [], "calls": []}
    headers = {"Authorization": f"Bearer {args.token}"} if args.token else None
    http_client = create_mcp_http_client(headers=headers, timeout=httpx2.Timeout(args.timeout, read=args.timeout))
    try:
        async with http_client:
            transport = streamable_http_client(args.url, http_client=http_client)
            async with Client(transport, mode=args.mode, cache=None, read_timeout_seconds=args.timeout) as client:
                out["era"] = "legacy" if client.session.initialize_result is not None else "modern"
                page = await client.list_tools()
                out["tools"] = [t.name for t in page.tools]
                for name, arguments in args.call:
                    entry: dict[str, Any] = {"name": name, "arguments": arguments, "ok": False}
                    out["calls"].append(entry)
                    try:
                        result = await client.call_tool(name, arguments)
                        entry["ok"] = True
                        entry["is_error"] = bool(result.is_error)
                        entry["text"] = " ".join(getattr(c, "text", "") for c in result.content)
                    except Exception as e:  # noqa: BLE001 - reported in the document
                        entry["error"] = f"{type(e).__name__}: {e}"
                        out["errors"].append(f"call {name}: {entry['error']}")
    except BaseException as e:  # noqa: BLE001 - exception groups from anyio included
        out["errors"].extend(f"{type(x).__name__}: {x}" for x in _leaves(e))
    out["ok"] = not out["errors"] and all(c["ok"] for c in out["calls"])
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", default="")
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"))
    ap.add_argument("--timeout", type=float, default=30.0)
    args = ap.parse_args()
    args.call = [(n, json.loads(a)) for n, a in args.call]
    out = asyncio.run(run(args))
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
