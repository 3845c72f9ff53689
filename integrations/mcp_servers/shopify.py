"""Shopify MCP server: look up an order, a customer or a product (Admin REST API), read-only.

Per-tenant credential headers: ``X-Shopify-Shop`` (``acme`` or ``acme.myshopify.com``) and
``X-Shopify-Access-Token`` (an Admin API token of a custom app with read_orders,
read_customers, read_products). The shop URL is built from a template so that callers can
only reach ``*.myshopify.com`` (tests point the template at a fake).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from integrations.mcp_servers.base import BaseServerConfig, Upstream, required_header

SHOP_HEADER = "x-shopify-shop"
ACCESS_TOKEN_HEADER = "x-shopify-access-token"
DEFAULT_SHOP_URL_TEMPLATE = "https://{shop}.myshopify.com"
DEFAULT_API_VERSION = "2025-07"
_SHOP_RE = re.compile(r"^([a-z0-9][a-z0-9-]{0,62})(\.myshopify\.com)?$")


@dataclass(frozen=True)
class ShopifyConfig(BaseServerConfig):
    shop_url_template: str = DEFAULT_SHOP_URL_TEMPLATE
    api_version: str = DEFAULT_API_VERSION


def _describe(response: httpx.Response) -> str:
    try:
        errors = response.json().get("errors")
    except (ValueError, AttributeError):
        return ""
    if isinstance(errors, dict):
        return "; ".join(f"{field}: {', '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
                         for field, msgs in errors.items())
    if response.status_code == 429:
        return f"{errors or 'rate limited'} (retry after {response.headers.get('retry-after', '?')}s)"
    return str(errors) if errors else ""


def _money(amount: Any, currency: Any) -> str:
    return f"{amount} {currency}".strip()


def _order_view(order: dict[str, Any]) -> dict[str, Any]:
    customer = order.get("customer") or {}
    tracking = [
        {"company": f.get("tracking_company"), "numbers": f.get("tracking_numbers", []),
         "urls": f.get("tracking_urls", []), "status": f.get("shipment_status") or f.get("status")}
        for f in order.get("fulfillments", []) or []
    ]
    return {
        "id": order.get("id"),
        "name": order.get("name"),
        "created_at": order.get("created_at"),
        "financial_status": order.get("financial_status"),
        "fulfillment_status": order.get("fulfillment_status") or "unfulfilled",
        "cancelled_at": order.get("cancelled_at"),
        "total": _money(order.get("total_price"), order.get("currency")),
        "customer": " ".join(filter(None, [customer.get("first_name"), customer.get("last_name")])) or None,
        "email": order.get("email"),
        "items": [{"title": li.get("title"), "variant": li.get("variant_title"), "quantity": li.get("quantity")}
                  for li in order.get("line_items", []) or []],
        "tracking": tracking,
    }


def _customer_view(customer: dict[str, Any]) -> dict[str, Any]:
    address = customer.get("default_address") or {}
    return {
        "id": customer.get("id"),
        "name": " ".join(filter(None, [customer.get("first_name"), customer.get("last_name")])) or None,
        "email": customer.get("email"),
        "phone": customer.get("phone"),
        "orders_count": customer.get("orders_count"),
        "total_spent": _money(customer.get("total_spent"), customer.get("currency")),
        "tags": customer.get("tags", ""),
        "city": address.get("city"),
        "country": address.get("country"),
        "created_at": customer.get("created_at"),
    }


def _product_view(product: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": product.get("id"),
        "title": product.get("title"),
        "status": product.get("status"),
        "vendor": product.get("vendor"),
        "product_type": product.get("product_type"),
        "variants": [{"title": v.get("title"), "sku": v.get("sku"), "price": v.get("price"),
                      "inventory_quantity": v.get("inventory_quantity")}
                     for v in product.get("variants", []) or []],
    }


def build_server(config: ShopifyConfig) -> MCPServer:
    upstream = Upstream("Shopify", timeout_s=config.upstream_timeout_s, describe_error=_describe)
    server = MCPServer("shopify", instructions="Look up the shop's orders, customers and products (read-only).")

    async def admin(ctx: Context, path: str, action: str, params: dict[str, Any] | None = None) -> Any:
        shop_raw = required_header(ctx, SHOP_HEADER, "shop name, e.g. acme or acme.myshopify.com").strip().lower()
        token = required_header(ctx, ACCESS_TOKEN_HEADER, "Shopify Admin API access token")
        match = _SHOP_RE.match(shop_raw)
        if match is None:
            raise ToolError(f"header {SHOP_HEADER} must be a shop name like 'acme' or 'acme.myshopify.com'")
        base = config.shop_url_template.format(shop=match.group(1)).rstrip("/")
        url = f"{base}/admin/api/{config.api_version}/{path}"
        return await upstream.json("GET", url, action, params=params, headers={"X-Shopify-Access-Token": token})

    @server.tool()
    async def get_order(
        ctx: Context,
        order_number: Annotated[str | None, Field(pattern=r"^#?[A-Za-z0-9-]{1,32}$",
                                                   description="Order name as the customer sees it, e.g. #1001")] = None,
        order_id: Annotated[int | None, Field(ge=1, description="Shopify's numeric order id")] = None,
    ) -> dict[str, Any]:
        """Look up one order: status, payment, items, total and shipment tracking."""
        if (order_number is None) == (order_id is None):
            raise ToolError("give exactly one of order_number (e.g. #1001) or order_id")
        if order_id is not None:
            body = await admin(ctx, f"orders/{order_id}.json", "return the order")
            return _order_view(body["order"])
        name = order_number if order_number.startswith("#") else f"#{order_number}"  # type: ignore[union-attr]
        body = await admin(ctx, "orders.json", "search orders", {"name": name, "status": "any", "limit": 1})
        orders = body.get("orders", [])
        if not orders:
            raise ToolError(f"no order named {name} in this shop")
        return _order_view(orders[0])

    @server.tool()
    async def find_customer(
        ctx: Context,
        email: Annotated[str | None, Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")] = None,
        phone: Annotated[str | None, Field(pattern=r"^\+?[1-9]\d{6,14}$", description="E.164 phone")] = None,
        customer_id: Annotated[int | None, Field(ge=1)] = None,
    ) -> dict[str, Any]:
        """Find a customer by email, phone or id: name, contact, order count, total spent."""
        given = [v for v in (email, phone, customer_id) if v is not None]
        if len(given) != 1:
            raise ToolError("give exactly one of email, phone or customer_id")
        if customer_id is not None:
            body = await admin(ctx, f"customers/{customer_id}.json", "return the customer")
            return {"customers": [_customer_view(body["customer"])]}
        query = f"email:{email}" if email else f"phone:{phone}"
        body = await admin(ctx, "customers/search.json", "search customers", {"query": query, "limit": 5})
        return {"customers": [_customer_view(c) for c in body.get("customers", [])]}

    @server.tool()
    async def get_product(
        ctx: Context,
        product_id: Annotated[int | None, Field(ge=1)] = None,
        title: Annotated[str | None, Field(min_length=2, max_length=255, description="Exact product title")] = None,
    ) -> dict[str, Any]:
        """Look up a product by id or title: status, variants, prices and stock."""
        if (product_id is None) == (title is None):
            raise ToolError("give exactly one of product_id or title")
        if product_id is not None:
            body = await admin(ctx, f"products/{product_id}.json", "return the product")
            return {"products": [_product_view(body["product"])]}
        body = await admin(ctx, "products.json", "search products", {"title": title, "limit": 5})
        return {"products": [_product_view(p) for p in body.get("products", [])]}

    return server
