#!/usr/bin/env python3
"""A realistic FastMCP (PyPI `fastmcp`) backend for interop tests.

The gateway discovers it like any other node server; its tools come from a
server framework nobody on this project wrote, so the catalog rewrite and the
call relay are proven against real third-party output.

Tools:
  * ``echo_node``      -> plain string result naming the node this server stands for.
  * ``plan_inspection`` -> rich input schema: nested object (pydantic model),
    enum (Literal and Enum), list of objects (pydantic model -> ``$defs`` /
    ``$ref``), defaults, bounds; returns structured output.
  * ``slow_count``     -> sleeps between steps and reports progress 3 times
    (``ctx.report_progress``), then returns a summary.

Run:
  .interop/venv/bin/python tests/interop/fastmcp_backend.py --host 127.0.0.1 --port 9100 \
      [--node-name fastmcp-node] [--stateful] [--json-response]

Endpoint: http://HOST:PORT/mcp (Streamable HTTP). Stateless by default (no
Mcp-Session-Id is minted), pass --stateful for sessions.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import os
import socket
from typing import Annotated, Literal

from fastmcp import Context, FastMCP
from pydantic import BaseModel, Field

NODE_NAME = os.environ.get("NODE_NAME") or socket.gethostname()

mcp = FastMCP(
    name="fastmcp-interop-backend",
    instructions="Interop test backend written with FastMCP.",
    # FastMCP inlines $defs/$ref by default (a middleware); keep pydantic's
    # $defs/$ref so the gateway's schema rewrite is proven on them.
    dereference_schemas=False,
)


class Severity(str, enum.Enum):
    """How loud a finding is."""

    low = "low"
    medium = "medium"
    high = "high"


class Window(BaseModel):
    """A maintenance window (nested object)."""

    start_hour: Annotated[int, Field(ge=0, le=23, description="Hour of day the window opens (UTC).")] = 2
    duration_minutes: Annotated[int, Field(ge=5, le=240, description="Length of the window in minutes.")] = 30
    days: list[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]] = Field(
        default_factory=lambda: ["sat", "sun"], description="Days the window applies to."
    )


class Check(BaseModel):
    """One check to run (array item, emitted as a $defs entry referenced by $ref)."""

    name: Annotated[str, Field(min_length=1, max_length=64, description="Check identifier.")]
    severity: Severity = Severity.medium
    threshold: Annotated[float | None, Field(description="Optional numeric threshold.")] = None
    labels: dict[str, str] = Field(default_factory=dict, description="Free-form labels.")


class Plan(BaseModel):
    """Structured result of plan_inspection."""

    node: str
    mode: str
    check_count: int
    window: Window
    checks: list[Check]
    dry_run: bool


@mcp.tool
def echo_node(message: Annotated[str, Field(description="Text to echo back.")] = "hello") -> str:
    """Echo a message back, prefixed with the node this backend stands for."""
    return f"{NODE_NAME}: {message}"


@mcp.tool(
    title="Plan an inspection",
    annotations={"readOnlyHint": True, "idempotentHint": True},
)
def plan_inspection(
    checks: Annotated[list[Check], Field(min_length=1, max_length=10, description="Checks to run, in order.")],
    mode: Annotated[Literal["quick", "standard", "deep"], Field(description="How thorough to be.")] = "standard",
    window: Annotated[Window, Field(description="When the inspection may run.")] = Window(),
    dry_run: Annotated[bool, Field(description="Only plan, do not schedule.")] = True,
    tags: Annotated[list[str], Field(description="Tags to attach.")] = [],  # noqa: B006 - FastMCP copies defaults
) -> Plan:
    """Plan a node inspection from a list of checks; exercises a rich JSON Schema."""
    return Plan(node=NODE_NAME, mode=mode, check_count=len(checks), window=window, checks=checks, dry_run=dry_run)


@mcp.tool
async def slow_count(
    ctx: Context,
    steps: Annotated[int, Field(ge=1, le=10, description="How many progress steps to report.")] = 3,
    delay_ms: Annotated[int, Field(ge=0, le=5000, description="Pause before each step, milliseconds.")] = 300,
) -> str:
    """Count slowly, reporting progress after each step (3 steps by default)."""
    for i in range(1, steps + 1):
        await asyncio.sleep(delay_ms / 1000)
        await ctx.report_progress(progress=i, total=steps, message=f"step {i} of {steps}")
    return f"{NODE_NAME}: counted {steps} steps"


def main() -> None:
    global NODE_NAME
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/mcp")
    ap.add_argument("--node-name", default=None, help="node name reported by echo_node (default: $NODE_NAME or hostname)")
    ap.add_argument("--stateful", action="store_true", help="mint Mcp-Session-Id (default: stateless)")
    ap.add_argument("--json-response", action="store_true", help="answer POSTs with JSON instead of SSE")
    ap.add_argument(
        "--host-origin-protection",
        action="store_true",
        help="reject non-localhost Host/Origin (DNS-rebinding protection); needed for that conformance scenario",
    )
    args = ap.parse_args()
    if args.node_name:
        NODE_NAME = args.node_name
    mcp.run(
        transport="http",
        host=args.host,
        port=args.port,
        path=args.path,
        stateless_http=not args.stateful,
        json_response=args.json_response,
        host_origin_protection=args.host_origin_protection,
        show_banner=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
