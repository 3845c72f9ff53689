"""Test fakes for integrations: real HTTP servers on 127.0.0.1 speaking the vendors' wire protocols.

Other apps' tests and ``bench/`` import these (e.g. to run a Telegram MCP server against a
fake Bot API during a call test).
"""
