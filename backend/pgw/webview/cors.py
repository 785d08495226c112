"""Which pgw paths a web page of any origin may call, and with what (docs/payment-tokens.md)."""

from __future__ import annotations

from backend.core.cors import CorsPolicy

# What a payment token may call. Everything else (issuing tokens, settlements, the directory,
# webhooks) stays closed to cross-origin pages: those callers are terminals and services.
PAYMENT_TOKEN_API = CorsPolicy(
    path_prefixes=("/v1/payments", "/v1/payment-tokens/current"),
    allow_methods=("GET", "POST", "DELETE"),
    allow_headers=(
        "authorization",
        "content-type",
        "idempotency-key",
        "x-request-id",
        "last-event-id",
        # A page may continue its own trace into pgw (docs/observability.md).
        "traceparent",
        "tracestate",
    ),
    expose_headers=(
        "x-request-id",
        "idempotent-replayed",
        "location",
        "retry-after",
        "www-authenticate",
        "traceresponse",
    ),
)
# A merchant's page on its own origin loads the SDK as a module script, which browsers fetch in
# CORS mode: without this header `import … from "https://pgw…/sdk/v1/mpac-pay.mjs"` fails.
SDK_FILES = CorsPolicy(path_prefixes=("/sdk/v1",), allow_methods=("GET", "HEAD"), allow_headers=())

PGW_CORS_POLICIES = (PAYMENT_TOKEN_API, SDK_FILES)
