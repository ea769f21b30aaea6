#!/usr/bin/env python3
"""Drive an MCP server with the official MCP Python SDK client (PyPI `mcp` 2.x).

Connects over Streamable HTTP, lists every tool (all pages), calls the tools
asked for, and prints ONE JSON document on stdout. Exit status is 0 only when
everything succeeded (connect, every list page, every call answered with a
result; a result with isError=true counts as success of the *call* unless
--fail-on-tool-error is given).

Usage:
  .interop/venv/bin/python tests/interop/sdk_client.py --url http://127.0.0.1:9029/mcp \
      --mode legacy|auto \
      [--call NAME JSON_ARGS]... \
      [--progress-call NAME JSON_ARGS]... \
      [--trace] [--timeout SECONDS] [--fail-on-tool-error]

Modes (how `mcp.Client(mode=...)` negotiates, read from mcp/client/client.py
and mcp/client/_probe.py):
  legacy  initialize (protocolVersion 2025-11-25) + notifications/initialized,
          then MCP-Protocol-Version on every later request.
  auto    (SDK default) POST server/discover at 2026-07-28 first; adopts the
          modern era when the DiscoverResult lists a modern version, otherwise
          (any JSON-RPC error / HTTP 4xx / unparseable result / only legacy
          versions listed) falls back to initialize. -32022 listing a mutual
          modern version triggers one re-probe at that version.

Output (stdout, one JSON object):
  {
    "ok": true,
    "mode": "auto",
    "protocol_version": "2026-07-28",      # negotiated
    "era": "modern" | "legacy",
    "server_info": {...} | null,
    "tool_pages": 1,
    "tools": [...],          # Tool definitions as the SDK parsed them (by alias)
    "tools_wire": [...],     # the same tools exactly as they came over the wire
    "calls": [ {"name", "arguments", "progress_requested", "ok", "result",
                "result_wire", "error", "started_at", "finished_at",
                "progress": [{"progress","total","message","t"}],
                "progress_before_result": N} ],
    "http": [...]            # only with --trace: every HTTP exchange
    "errors": [...]
  }
Timestamps ("t", "started_at", "finished_at") are seconds since the client
started (monotonic clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import traceback
from typing import Any

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

T0 = time.monotonic()


def now() -> float:
    return round(time.monotonic() - T0, 4)


class _TeeStream(httpx2.AsyncByteStream):
    """Pass response bytes through while keeping a copy for the trace."""

    def __init__(self, inner: Any, sink: bytearray, on_close: Any) -> None:
        self._inner = inner
        self._sink = sink
        self._on_close = on_close

    async def __aiter__(self):  # type: ignore[override]
        async for chunk in self._inner:
            self._sink.extend(chunk)
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        finally:
            self._on_close()


class RecordingTransport(httpx2.AsyncBaseTransport):
    """Wraps the default transport and records every request/response pair."""

    def __init__(self) -> None:
        self._inner = httpx2.AsyncHTTPTransport()
        self.exchanges: list[dict[str, Any]] = []

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = request.content if hasattr(request, "content") else b""
        try:
            body_json: Any = json.loads(body) if body else None
        except ValueError:
            body_json = body.decode("utf-8", "replace")
        ex: dict[str, Any] = {
            "t": now(),
            "method": request.method,
            "url": str(request.url),
            "request_headers": dict(request.headers),
            "request_body": body_json,
        }
        self.exchanges.append(ex)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception as e:  # connection errors: record, then re-raise
            ex["transport_error"] = repr(e)
            raise
        ex["status"] = response.status_code
        ex["response_headers"] = dict(response.headers)
        sink = bytearray()

        def finish() -> None:
            ex["response_raw"] = sink.decode("utf-8", "replace")
            ex["response_messages"] = _decode_messages(ex["response_headers"].get("content-type", ""), ex["response_raw"])

        response.stream = _TeeStream(response.stream, sink, finish)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


def _decode_messages(content_type: str, raw: str) -> list[Any]:
    """JSON-RPC messages carried by a response body (JSON or SSE)."""
    out: list[Any] = []
    if "text/event-stream" in content_type:
        data: list[str] = []
        for line in raw.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line == "":
                if data:
                    try:
                        out.append(json.loads("\n".join(data)))
                    except ValueError:
                        pass
                    data = []
            elif line.startswith("data:"):
                v = line[5:]
                data.append(v[1:] if v.startswith(" ") else v)
        if data:
            try:
                out.append(json.loads("\n".join(data)))
            except ValueError:
                pass
    elif raw.strip():
        try:
            v = json.loads(raw)
            out.extend(v if isinstance(v, list) else [v])
        except ValueError:
            pass
    return out


def _wire_results(exchanges: list[dict[str, Any]], method: str) -> list[tuple[dict[str, Any], Any]]:
    """(request, response) JSON-RPC pairs for `method`, in order."""
    pairs = []
    for ex in exchanges:
        req = ex.get("request_body")
        if not isinstance(req, dict) or req.get("method") != method:
            continue
        for msg in ex.get("response_messages", []):
            if isinstance(msg, dict) and msg.get("id") == req.get("id") and ("result" in msg or "error" in msg):
                pairs.append((req, msg))
    return pairs


def _leaves(e: BaseException) -> list[BaseException]:
    """The real errors inside (nested) exception groups, e.g. from anyio task groups."""
    if isinstance(e, BaseExceptionGroup):
        return [leaf for sub in e.exceptions for leaf in _leaves(sub)]
    return [e]


def dump(model: Any) -> Any:
    return model.model_dump(by_alias=True, mode="json", exclude_unset=True)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    rec = RecordingTransport()
    out: dict[str, Any] = {"ok": False, "mode": args.mode, "url": args.url, "errors": []}
    http_client = create_mcp_http_client(timeout=httpx2.Timeout(args.timeout, read=args.timeout))
    http_client._transport = rec  # type: ignore[attr-defined]  # keep SDK defaults, record traffic
    calls = [(n, a, False) for n, a in args.call] + [(n, a, True) for n, a in args.progress_call]
    try:
        async with http_client:
            transport = streamable_http_client(args.url, http_client=http_client)
            async with Client(transport, mode=args.mode, cache=None, read_timeout_seconds=args.timeout) as client:
                out["protocol_version"] = client.protocol_version
                out["era"] = "legacy" if client.session.initialize_result is not None else "modern"
                si = client.server_info
                out["server_info"] = dump(si) if si is not None else None
                out["server_capabilities"] = dump(client.server_capabilities)

                tools: list[Any] = []
                cursor = None
                pages = 0
                while True:
                    pages += 1
                    if pages > 1000:
                        raise RuntimeError("tools/list pagination did not end after 1000 pages")
                    page = await client.list_tools(cursor=cursor)
                    tools.extend(dump(t) for t in page.tools)
                    cursor = page.next_cursor
                    if not cursor:
                        break
                out["tool_pages"] = pages
                out["tools"] = tools
                wire_tools: list[Any] = []
                for _req, resp in _wire_results(rec.exchanges, "tools/list"):
                    wire_tools.extend((resp.get("result") or {}).get("tools", []))
                out["tools_wire"] = wire_tools

                out["calls"] = []
                for name, arguments, with_progress in calls:
                    entry: dict[str, Any] = {
                        "name": name,
                        "arguments": arguments,
                        "progress_requested": with_progress,
                        "progress": [],
                        "started_at": now(),
                    }
                    out["calls"].append(entry)

                    async def on_progress(progress: float, total: float | None, message: str | None, _e=entry) -> None:
                        _e["progress"].append({"progress": progress, "total": total, "message": message, "t": now()})

                    n_before = len(_wire_results(rec.exchanges, "tools/call"))
                    try:
                        result = await client.call_tool(
                            name, arguments, progress_callback=on_progress if with_progress else None
                        )
                        entry["finished_at"] = now()
                        entry["result"] = dump(result)
                        entry["ok"] = True
                        if result.is_error and args.fail_on_tool_error:
                            entry["ok"] = False
                            out["errors"].append(f"tool {name} returned isError=true")
                    except Exception as e:  # noqa: BLE001 - reported in the JSON document
                        entry["finished_at"] = now()
                        entry["ok"] = False
                        entry["error"] = f"{type(e).__name__}: {e}"
                        err = getattr(e, "error", None)
                        if err is not None and hasattr(err, "model_dump"):
                            entry["error_data"] = dump(err)
                        out["errors"].append(f"call {name}: {entry['error']}")
                    wire = _wire_results(rec.exchanges, "tools/call")[n_before:]
                    entry["result_wire"] = wire[-1][1] if wire else None
                    entry["progress_before_result"] = sum(1 for p in entry["progress"] if p["t"] <= entry["finished_at"])
    except BaseException as e:  # noqa: BLE001 - exception groups from anyio included
        out["errors"].extend(f"{type(x).__name__}: {x}" for x in _leaves(e))
        out["traceback"] = traceback.format_exc()
    if args.trace:
        out["http"] = rec.exchanges
    out["ok"] = not out["errors"] and all(c.get("ok") for c in out.get("calls", []))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", required=True)
    ap.add_argument("--mode", default="auto", help="legacy | auto | a modern version such as 2026-07-28")
    ap.add_argument("--call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"))
    ap.add_argument("--progress-call", nargs=2, action="append", default=[], metavar=("NAME", "JSON_ARGS"))
    ap.add_argument("--trace", action="store_true", help="include every HTTP exchange in the output")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-request timeout, seconds")
    ap.add_argument("--fail-on-tool-error", action="store_true")
    args = ap.parse_args()
    try:
        args.call = [(n, json.loads(a)) for n, a in args.call]
        args.progress_call = [(n, json.loads(a)) for n, a in args.progress_call]
    except ValueError as e:
        print(json.dumps({"ok": False, "errors": [f"bad JSON_ARGS: {e}"]}))
        return 2
    out = asyncio.run(run(args))
    json.dump(out, sys.stdout, indent=1)
    sys.stdout.write("\n")
    if not out["ok"]:
        for e in out["errors"]:
            print(f"sdk_client: {e}", file=sys.stderr)
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
