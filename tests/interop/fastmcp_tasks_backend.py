#!/usr/bin/env python3
"""A FastMCP (PyPI `fastmcp`) backend with a tool that runs as a task, through the
`io.modelcontextprotocol/tasks` extension of `fastmcp-tasks` (SEP-2663), for the
gateway's task relay tests.

Tools (each names the node this server stands for in its answer):
  * ``slow_sum(a, b, seconds)`` -> may run as a task (``task=True``); sleeps
    ``seconds`` then returns ``"<node>: a+b=<sum>"``. A client that declares the
    extension gets a task handle, one that does not gets the answer when ready.

Run (fastmcp-tasks pins its own fastmcp, so it has a venv of its own):
  .interop/venv-tasks/bin/python tests/interop/fastmcp_tasks_backend.py --host 127.0.0.1 --port 9100 \
      [--node-name fastmcp-node]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket

from fastmcp import FastMCP
from fastmcp_tasks import TasksExtension

NODE_NAME = os.environ.get("NODE_NAME") or socket.gethostname()

mcp = FastMCP(name="fastmcp-tasks-backend", instructions="Task test backend written with FastMCP.")
mcp.add_extension(TasksExtension(url="memory://"))


@mcp.tool(task=True)
async def slow_sum(a: int, b: int, seconds: float = 1.0) -> str:
    """Add two numbers, slowly (may run as a background task)."""
    await asyncio.sleep(min(max(seconds, 0.0), 30.0))
    return f"{NODE_NAME}: a+b={a + b}"


def main() -> None:
    global NODE_NAME
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/mcp")
    ap.add_argument("--node-name", default=None)
    args = ap.parse_args()
    if args.node_name:
        NODE_NAME = args.node_name
    mcp.run(
        transport="http",
        host=args.host,
        port=args.port,
        path=args.path,
        stateless_http=True,
        show_banner=False,
        log_level="warning",
    )


if __name__ == "__main__":
    main()
