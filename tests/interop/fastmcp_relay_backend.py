#!/usr/bin/env python3
"""A FastMCP (PyPI `fastmcp`) backend whose tools talk back to the client mid-call,
for the relay tests: log messages, elicitation, sampling and roots.

Tools (each names the node this server stands for in its answer):
  * ``log_steps``   -> sends debug, info and warning log messages, then returns.
  * ``confirm``     -> asks the client (form-mode elicitation) for a yes/no and a
    note; returns what the client answered (or how it refused).
  * ``ask_model``   -> sampling/createMessage; returns the model's text.
  * ``show_roots``  -> roots/list; returns the client's root URIs.
  * ``connect_account`` -> URL-mode elicitation (the user opens a link); returns the
    client's action.
  * ``confirm_then_sample`` -> two questions in turn (elicitation, then sampling).
  * ``count_steps`` -> reports progress for each of ``steps`` steps.

Prompt ``confirmed_diagnosis(service)`` asks the client to confirm first (elicitation);
``show_node()`` (no arguments) embeds the resource ``node://info`` and an image.
Resource ``node://badge`` is binary (a PNG).
Prompt ``diagnose(service, severity)`` names the node; ``service`` completes from a
list that includes ``<node>-agent``. Resources: ``node://info`` (text naming the
node) and the template ``node://logs/{name}`` (``name`` completes like ``service``).

Run:
  .interop/venv/bin/python tests/interop/fastmcp_relay_backend.py --host 127.0.0.1 --port 9100 \
      [--node-name fastmcp-node] [--stateful]
"""

from __future__ import annotations

import argparse
import base64
import os
import socket

import mcp_types

from fastmcp import Context, FastMCP
from fastmcp.prompts import Message
from pydantic import BaseModel

NODE_NAME = os.environ.get("NODE_NAME") or socket.gethostname()

BADGE_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
)

mcp = FastMCP(name="fastmcp-relay-backend", instructions="Relay test backend written with FastMCP.")


class Answer(BaseModel):
    """What `confirm` asks for."""

    proceed: bool
    note: str = ""


@mcp.tool
async def log_steps(ctx: Context, label: str = "run") -> str:
    """Log three messages (debug, info, warning) during the call."""
    await ctx.debug(f"{label}: debug detail")
    await ctx.info(f"{label}: starting on {NODE_NAME}")
    await ctx.warning(f"{label}: almost done")
    return f"{NODE_NAME}: logged {label}"


@mcp.tool
async def confirm(ctx: Context, question: str = "Proceed?") -> str:
    """Ask the client to confirm (elicitation, form mode)."""
    try:
        got = await ctx.elicit(question, Answer)
    except Exception as e:  # the client refused or cannot elicit
        return f"{NODE_NAME}: elicitation failed: {e}"
    if got.action == "accept":
        return f"{NODE_NAME}: accepted proceed={got.data.proceed} note={got.data.note}"
    return f"{NODE_NAME}: {got.action}"


async def sample(ctx: Context, prompt: str) -> str:
    """Ask the client's model (sampling/createMessage); its text."""
    from mcp.types import SamplingMessage, TextContent

    res = await ctx.session.create_message(
        messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
        max_tokens=32,
        # On the call's own stream (the gateway opens no standalone GET stream).
        related_request_id=ctx.request_id,
    )
    return str(getattr(res.content, "text", res.content))


@mcp.tool
async def ask_model(ctx: Context, prompt: str = "Say hi") -> str:
    """Ask the client's model (sampling/createMessage)."""
    try:
        said = await sample(ctx, prompt)
    except Exception as e:
        return f"{NODE_NAME}: sampling failed: {e}"
    return f"{NODE_NAME}: model said {said}"


@mcp.tool
async def show_roots(ctx: Context) -> str:
    """Ask the client for its roots (roots/list)."""
    from mcp import types
    from mcp.shared.message import ServerMessageMetadata

    try:
        # ServerSession.list_roots() has no related_request_id: send it on the call's
        # own stream (the gateway opens no standalone GET stream).
        res = await ctx.session.send_request(
            types.ListRootsRequest(),
            types.ListRootsResult,
            metadata=ServerMessageMetadata(related_request_id=ctx.request_id),
        )
    except Exception as e:
        return f"{NODE_NAME}: roots failed: {e}"
    return f"{NODE_NAME}: roots " + ",".join(str(r.uri) for r in res.roots)


@mcp.tool
async def connect_account(ctx: Context, account: str = "demo") -> str:
    """Send the user to a link (URL-mode elicitation) to connect an account."""
    try:
        res = await ctx.session.elicit_url(
            message=f"Connect the account {account} on {NODE_NAME}",
            url=f"https://accounts.example.com/connect?account={account}&node={NODE_NAME}",
            elicitation_id=f"connect-{account}",
            related_request_id=ctx.request_id,
        )
    except Exception as e:
        return f"{NODE_NAME}: url elicitation failed: {e}"
    return f"{NODE_NAME}: url {res.action}"


@mcp.tool
async def confirm_then_sample(ctx: Context) -> str:
    """Ask two questions in turn: a confirmation (elicitation), then the model (sampling)."""
    try:
        got = await ctx.elicit("Proceed?", Answer)
        if got.action != "accept":
            return f"{NODE_NAME}: {got.action}"
        said = await sample(ctx, "Say hi")
    except Exception as e:
        return f"{NODE_NAME}: questions failed: {e}"
    return f"{NODE_NAME}: note={got.data.note} model said {said}"


@mcp.tool
async def count_steps(ctx: Context, steps: int = 3) -> str:
    """Report progress for each step."""
    import anyio

    for i in range(1, steps + 1):
        await ctx.report_progress(i, steps, f"step {i}")
        await anyio.sleep(0.05)
    return f"{NODE_NAME}: counted {steps}"


@mcp.prompt
def diagnose(service: str, severity: str = "warning") -> str:
    """Ask for a diagnosis of a service on this node."""
    return f"On node {NODE_NAME}, diagnose {service} (severity {severity})."


@mcp.prompt
async def confirmed_diagnosis(ctx: Context, service: str) -> str:
    """Ask the client to confirm (elicitation) before writing the prompt."""
    try:
        got = await ctx.elicit(f"Diagnose {service} on {NODE_NAME}?", Answer)
    except Exception as e:  # the client refused or cannot elicit
        return f"{NODE_NAME}: not confirmed ({type(e).__name__})"
    data = getattr(got, "data", None)
    note = getattr(data, "note", "") if data is not None else ""
    return f"{NODE_NAME}: {got.action} diagnosis of {service} ({note})"


@mcp.resource("node://info")
def node_info() -> str:
    """Which node this is."""
    return f"node {NODE_NAME}"


@mcp.resource("node://badge", mime_type="image/png")
def node_badge() -> bytes:
    """A 1x1 PNG badge (a binary resource)."""
    return BADGE_PNG


@mcp.prompt
def show_node() -> list[Message]:
    """Show this node: its info as an embedded resource, and its badge as an image."""
    return [
        Message(
            mcp_types.EmbeddedResource(
                type="resource",
                resource=mcp_types.TextResourceContents(uri="node://info", mimeType="text/plain", text=f"node {NODE_NAME}"),
            )
        ),
        Message(mcp_types.ImageContent(type="image", data=base64.b64encode(BADGE_PNG).decode(), mimeType="image/png")),
    ]


@mcp.resource("node://logs/{name}")
def node_log(name: str) -> str:
    """The (simulated) log of a service."""
    return f"{NODE_NAME} log of {name}"


@mcp.completion
def complete(ref, argument, context):
    from mcp_types import PromptReference, ResourceTemplateReference

    options = ["kubelet", "containerd", f"{NODE_NAME}-agent"]
    if isinstance(ref, PromptReference) and ref.name == "diagnose" and argument.name == "service":
        return [o for o in options if o.startswith(argument.value)]
    if isinstance(ref, ResourceTemplateReference) and ref.uri == "node://logs/{name}" and argument.name == "name":
        return [o for o in options if o.startswith(argument.value)]
    return None


def main() -> None:
    global NODE_NAME
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/mcp")
    ap.add_argument("--node-name", default=None)
    ap.add_argument("--stateful", action="store_true", help="mint Mcp-Session-Id (default: stateless)")
    ap.add_argument("--json-response", action="store_true")
    ap.add_argument("--host-origin-protection", action="store_true")
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
