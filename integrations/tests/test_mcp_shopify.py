"""Shopify MCP server through the real MCP client against a fake Admin API."""
from __future__ import annotations

import asyncio

import pytest

from integrations.mcp_client import ServerSpec, call_tool
from integrations.mcp_servers.shopify import ShopifyConfig, build_server
from integrations.testing.fake_shopify import FakeShopify
from integrations.testing.mcp import serve_mcp

CALLER = "shop-caller"
# Checked against every log record of every test here (conftest).
LOG_SECRETS = (CALLER, "shpat_test")


@pytest.fixture()
def shopify():
    with FakeShopify() as fake:
        config = ShopifyConfig(caller_tokens=frozenset({CALLER}), shop_url_template=fake.shop_url_template)
        with serve_mcp(build_server(config), config) as url:
            yield fake, url


def run(url: str, tool: str, args: dict, *, shop: str = "acme.myshopify.com", token: str = "shpat_test"):
    spec = ServerSpec(url=f"{url}/mcp", headers={"Authorization": f"Bearer {CALLER}", "X-Shopify-Shop": shop,
                                                 "X-Shopify-Access-Token": token})
    return asyncio.run(call_tool(spec, tool, args))


def test_order_by_number_with_tracking(shopify):
    fake, url = shopify
    result = run(url, "get_order", {"order_number": "1001"})
    assert not result.is_error, result.text
    order = result.structured
    assert order["name"] == "#1001" and order["total"] == "59.90 EUR"
    assert order["tracking"][0]["numbers"] == ["00340434"]
    assert fake.requests[-1]["params"] == {"name": "#1001", "status": "any", "limit": "1"}
    assert fake.requests[-1]["path"] == "/shops/acme/admin/api/2025-07/orders.json"


def test_order_by_id_and_missing_order(shopify):
    _fake, url = shopify
    assert run(url, "get_order", {"order_id": 450789469}).structured["name"] == "#1001"
    missing = run(url, "get_order", {"order_id": 1})
    assert missing.is_error and "Shopify API refused to return the order: HTTP 404: Not Found" in missing.text
    none = run(url, "get_order", {"order_number": "#9999"})
    assert none.is_error and "no order named #9999" in none.text


def test_customer_and_product(shopify):
    _fake, url = shopify
    customer = run(url, "find_customer", {"email": "bob@example.com"}).structured["customers"][0]
    assert customer["name"] == "Bob Norman" and customer["orders_count"] == 3
    product = run(url, "get_product", {"title": "Espresso beans"}).structured["products"][0]
    assert [v["inventory_quantity"] for v in product["variants"]] == [12, 0]


def test_bad_token_and_throttle_are_worded(shopify):
    fake, url = shopify
    denied = run(url, "get_product", {"product_id": 632910392}, token="wrong")
    assert denied.is_error and "HTTP 401: [API] Invalid API key or access token" in denied.text
    fake.throttle_next = 1
    throttled = run(url, "get_product", {"product_id": 632910392})
    assert throttled.is_error and "HTTP 429" in throttled.text and "retry after 2.0s" in throttled.text


def test_shop_header_cannot_redirect_requests(shopify):
    fake, url = shopify
    result = run(url, "get_order", {"order_id": 1}, shop="evil.com/x?")
    assert result.is_error and "x-shopify-shop must be a shop name" in result.text
    assert fake.requests == []


def test_argument_rules(shopify):
    fake, url = shopify
    assert "exactly one of order_number" in run(url, "get_order", {}).text
    assert "exactly one of email, phone or customer_id" in run(
        url, "find_customer", {"email": "a@b.co", "customer_id": 3}).text
    assert "pattern" in run(url, "find_customer", {"phone": "12"}).text
    assert fake.requests == []
