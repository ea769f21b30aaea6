#!/usr/bin/env python3
"""Drive one tool call with the official MCP Python SDK client (PyPI `mcp` 2.x),
answering the server's mid-call questions, and print ONE JSON document.

Usage:
  .interop/venv/bin/python tests/interop/sdk_relay_client.py --url URL --mode legacy|auto \
      --tool NAME [--args JSON] [--log-level LEVEL] [--no-elicitation] [--answer TEXT]

The client declares elicitation (unless --no-elicitation), sampling and roots, and
answers: elicitation -> accept {"proceed": true, "note": ANSWER} (URL mode: accept,
the URL recorded); sampling -> text
"sampled ANSWER"; roots -> file:///ANSWER. Log messages are collected.

Output: {"ok", "protocol_version", "result": CallToolResult (by alias) | null,
         "text": first text content, "logs": [{"level","data"}], "asked": [methods],
         "urls": [URL-mode elicitation URLs], "progress": [values, with --progress],
         "capabilities": the server's, "prompts"/"prompt" (--op prompts),
         "resources"/"templates"/"contents" (--op resources), "completion" (--op complete),
         "error"}
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from typing import Any

from mcp import Client, types
from mcp.client.streamable_http import streamable_http_client


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"ok": False, "logs": [], "asked": [], "urls": [], "progress": [], "error": None}

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        out["logs"].append({"level": params.level, "data": params.data})

    async def on_elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        out["asked"].append("elicitation/create")
        if getattr(params, "mode", None) == "url":
            out["urls"].append(params.url)
            return types.ElicitResult(action="accept")
        return types.ElicitResult(action="accept", content={"proceed": True, "note": args.answer})

    async def on_sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        out["asked"].append("sampling/createMessage")
        return types.CreateMessageResult(
            role="assistant",
            content=types.TextContent(type="text", text=f"sampled {args.answer}"),
            model="test-model",
        )

    async def on_roots(context: Any) -> types.ListRootsResult:
        out["asked"].append("roots/list")
        return types.ListRootsResult(roots=[types.Root(uri=f"file:///{args.answer}")])

    kwargs: dict[str, Any] = dict(
        mode=args.mode,
        read_timeout_seconds=args.timeout,
        logging_callback=on_log,
        sampling_callback=on_sample,
        list_roots_callback=on_roots,
    )
    if not args.no_elicitation:
        kwargs["elicitation_callback"] = on_elicit
    if args.log_level:
        kwargs["log_level"] = args.log_level
    async with Client(streamable_http_client(args.url), **kwargs) as client:
        out["protocol_version"] = client.protocol_version
        out["capabilities"] = client.server_capabilities.model_dump(by_alias=True, mode="json", exclude_none=True)
        if args.capabilities_only:
            out["ok"] = True
            return out
        if args.log_level and client.session.initialize_result is not None:
            await client.set_logging_level(args.log_level)
        if args.op == "prompts":
            listed = await client.list_prompts()
            out["prompts"] = [p.model_dump(by_alias=True, mode="json", exclude_none=True) for p in listed.prompts]
            if args.tool != "-":
                got = await client.get_prompt(args.tool, json.loads(args.args))
                out["prompt"] = got.model_dump(by_alias=True, mode="json", exclude_none=True)
                texts = [getattr(m.content, "text", None) for m in got.messages]
                out["text"] = texts[0] if texts else None
            out["ok"] = True
            return out
        if args.op == "resources":
            listed = await client.list_resources()
            out["resources"] = [r.model_dump(by_alias=True, mode="json", exclude_none=True) for r in listed.resources]
            out["next_cursor"] = listed.next_cursor
            templates = await client.list_resource_templates()
            out["templates"] = [
                t.model_dump(by_alias=True, mode="json", exclude_none=True) for t in templates.resource_templates
            ]
            if args.uri:
                read = await client.read_resource(args.uri)
                out["contents"] = [c.model_dump(by_alias=True, mode="json", exclude_none=True) for c in read.contents]
            out["ok"] = True
            return out
        if args.op == "complete":
            ref = (
                types.ResourceTemplateReference(type="ref/resource", uri=args.uri)
                if args.uri
                else types.PromptReference(type="ref/prompt", name=args.tool)
            )
            done = await client.complete(
                ref, {"name": args.complete_arg, "value": args.complete_value}, json.loads(args.context)
            )
            out["completion"] = done.completion.model_dump(by_alias=True, mode="json", exclude_none=True)
            out["ok"] = True
            return out

        async def on_progress(progress: float, total: float | None, message: str | None) -> None:
            out["progress"].append(progress)

        res = await client.call_tool(
            args.tool, json.loads(args.args), progress_callback=on_progress if args.progress else None
        )
        out["result"] = res.model_dump(by_alias=True, mode="json", exclude_unset=True)
        texts = [c.text for c in res.content if getattr(c, "type", "") == "text"]
        out["text"] = texts[0] if texts else None
        out["ok"] = not res.is_error
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--mode", default="auto")
    ap.add_argument("--tool", required=True)
    ap.add_argument("--args", default="{}")
    ap.add_argument("--log-level", default=None)
    ap.add_argument("--no-elicitation", action="store_true")
    ap.add_argument("--answer", default="from-client")
    ap.add_argument("--timeout", type=float, default=30)
    ap.add_argument("--op", default="call", choices=["call", "prompts", "resources", "complete"],
                    help="call: call --tool; prompts: list prompts, get --tool (unless -) with --args; "
                    "complete: complete --complete-arg of prompt --tool with --context")
    ap.add_argument("--uri", default="", help="resources: read it; complete: the template to complete for")
    ap.add_argument("--complete-arg", default="")
    ap.add_argument("--complete-value", default="")
    ap.add_argument("--context", default="{}")
    ap.add_argument("--progress", action="store_true", help="ask for progress; values in \"progress\"")
    ap.add_argument("--capabilities-only", action="store_true", help="connect, report the server's capabilities, call nothing")
    args = ap.parse_args()
    try:
        out = asyncio.run(run(args))
    except BaseException as e:  # noqa: BLE001 - reported in the document
        out = {"ok": False, "error": repr(e), "trace": traceback.format_exc()}
    print(json.dumps(out))
    return 0 if out.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
