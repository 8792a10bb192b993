"""A real MCP client (PyPI mcp 2.3.0) driving `remediator mcp` for the tests.

    python mcp_client.py stdio -- CMD ARG...      < calls.json
    MCP_BEARER=TOKEN python mcp_client.py http URL < calls.json

calls.json is a list of calls; each answer is printed, one JSON list:
  {"list_tools": true}            -> {"tools": [names]}
  {"tool": NAME, "args": {...}}   -> {"is_error": bool, "text": str}
                                     or {"protocol_error": code, "message": str}
  {"list_resources": true}        -> {"resources": [uris]}
  {"read_resource": URI}          -> {"text": str} or {"protocol_error": ...}
"""

import asyncio
import json
import os
import sys

import httpx2
import mcp.types as types
from mcp import ClientSession, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client


async def run_calls(session, calls):
    await session.initialize()
    answers = []
    for call in calls:
        try:
            if call.get("list_tools"):
                tools = (await session.list_tools()).tools
                answers.append({"tools": sorted(t.name for t in tools)})
            elif "tool" in call:
                result = await session.call_tool(call["tool"], call.get("args", {}))
                text = "".join(
                    c.text for c in result.content if isinstance(c, types.TextContent)
                )
                answers.append({"is_error": bool(result.is_error), "text": text})
            elif call.get("list_resources"):
                resources = (await session.list_resources()).resources
                answers.append({"resources": sorted(str(r.uri) for r in resources)})
            elif "read_resource" in call:
                read = await session.read_resource(call["read_resource"])
                answers.append({"text": "".join(getattr(c, "text", "") for c in read.contents)})
            else:
                answers.append({"unknown_call": call})
        except MCPError as e:
            answers.append({"protocol_error": e.code, "message": e.message})
    return answers


async def over_stdio(command, calls):
    params = StdioServerParameters(command=command[0], args=command[1:], env=dict(os.environ))
    async with stdio_client(params) as (read, write):
        async with ClientSession(read, write) as session:
            return await run_calls(session, calls)


async def over_http(url, token, calls):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0, read=120.0)) as http:
        async with streamable_http_client(url, http_client=http) as (read, write):
            async with ClientSession(read, write) as session:
                return await run_calls(session, calls)


def main():
    calls = json.load(sys.stdin)
    mode = sys.argv[1]
    if mode == "stdio":
        command = sys.argv[sys.argv.index("--") + 1 :]
        answers = asyncio.run(over_stdio(command, calls))
    elif mode == "http":
        url = sys.argv[2]
        token = os.environ.get("MCP_BEARER")
        answers = asyncio.run(over_http(url, token, calls))
    else:
        raise SystemExit(f"unknown mode {mode}")
    print(json.dumps(answers))


if __name__ == "__main__":
    main()
