"""A fake Shopify Admin REST API on 127.0.0.1, serving shops at ``/shops/<shop>/admin/api/<ver>/…``.

Point :class:`ShopifyConfig.shop_url_template` at :attr:`FakeShopify.shop_url_template`.
Real error shapes: 401 ``{"errors": "[API] Invalid API key or access token (unrecognized
login or wrong password)"}``, 404 ``{"errors": "Not Found"}``, 429 with ``Retry-After``.
"""
from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from integrations.testing.asgi_server import FakeServer


class FakeShopify(FakeServer):
    def __init__(self, *, shop: str = "acme", token: str = "shpat_test") -> None:
        super().__init__()
        self.shop = shop
        self.token = token
        self.throttle_next = 0
        self.orders: list[dict[str, Any]] = [{
            "id": 450789469, "name": "#1001", "email": "bob@example.com", "created_at": "2026-11-20T10:00:00+01:00",
            "financial_status": "paid", "fulfillment_status": "fulfilled", "cancelled_at": None,
            "total_price": "59.90", "currency": "EUR",
            "customer": {"id": 207119551, "first_name": "Bob", "last_name": "Norman"},
            "line_items": [{"title": "Espresso beans", "variant_title": "1kg", "quantity": 2}],
            "fulfillments": [{"tracking_company": "DHL", "tracking_numbers": ["00340434"],
                              "tracking_urls": ["https://dhl.example/00340434"], "shipment_status": "in_transit"}],
        }]
        self.customers: list[dict[str, Any]] = [{
            "id": 207119551, "first_name": "Bob", "last_name": "Norman", "email": "bob@example.com",
            "phone": "+4915112345678", "orders_count": 3, "total_spent": "199.65", "currency": "EUR",
            "tags": "vip", "created_at": "2025-01-02T00:00:00Z",
            "default_address": {"city": "Berlin", "country": "Germany"},
        }]
        self.products: list[dict[str, Any]] = [{
            "id": 632910392, "title": "Espresso beans", "status": "active", "vendor": "Roastery",
            "product_type": "Coffee",
            "variants": [{"title": "250g", "sku": "ESP-250", "price": "9.90", "inventory_quantity": 12},
                         {"title": "1kg", "sku": "ESP-1000", "price": "29.95", "inventory_quantity": 0}],
        }]
        prefix = "/shops/{shop}/admin/api/{version}"
        self.app = Starlette(routes=[
            Route(prefix + "/orders.json", self._orders),
            Route(prefix + "/orders/{id:int}.json", self._order),
            Route(prefix + "/customers/search.json", self._customer_search),
            Route(prefix + "/customers/{id:int}.json", self._customer),
            Route(prefix + "/products.json", self._products),
            Route(prefix + "/products/{id:int}.json", self._product),
        ])

    @property
    def shop_url_template(self) -> str:
        return self.url + "/shops/{shop}"

    def _gate(self, request: Request) -> JSONResponse | None:
        self.requests.append({"path": request.url.path, "params": dict(request.query_params)})
        if request.path_params["shop"] != self.shop:
            return JSONResponse({"errors": "Not Found"}, status_code=404)
        if request.headers.get("x-shopify-access-token") != self.token:
            return JSONResponse({"errors": "[API] Invalid API key or access token (unrecognized login or wrong "
                                           "password)"}, status_code=401)
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return JSONResponse({"errors": "Exceeded 2 calls per second for api client. Reduce request rates to "
                                           "resume uninterrupted service."}, status_code=429,
                                headers={"Retry-After": "2.0"})
        return None

    @staticmethod
    def _by_id(items: list[dict[str, Any]], key: str, request: Request) -> JSONResponse:
        for item in items:
            if item["id"] == request.path_params["id"]:
                return JSONResponse({key: item})
        return JSONResponse({"errors": "Not Found"}, status_code=404)

    async def _orders(self, request: Request) -> JSONResponse:
        if (denied := self._gate(request)) is not None:
            return denied
        name = request.query_params.get("name")
        return JSONResponse({"orders": [o for o in self.orders if name is None or o["name"] == name]})

    async def _order(self, request: Request) -> JSONResponse:
        return self._gate(request) or self._by_id(self.orders, "order", request)

    async def _customer_search(self, request: Request) -> JSONResponse:
        if (denied := self._gate(request)) is not None:
            return denied
        field, _, value = request.query_params.get("query", "").partition(":")
        return JSONResponse({"customers": [c for c in self.customers if str(c.get(field, "")) == value]})

    async def _customer(self, request: Request) -> JSONResponse:
        return self._gate(request) or self._by_id(self.customers, "customer", request)

    async def _products(self, request: Request) -> JSONResponse:
        if (denied := self._gate(request)) is not None:
            return denied
        title = request.query_params.get("title")
        return JSONResponse({"products": [p for p in self.products if title is None or p["title"] == title]})

    async def _product(self, request: Request) -> JSONResponse:
        return self._gate(request) or self._by_id(self.products, "product", request)
