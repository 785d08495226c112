"""One settings object for every service, read from ``MPAC_*`` environment variables."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

SERVICE_NAMES = ("portal", "smarttab", "pgw", "provider")


class Settings(BaseSettings):
    """Platform configuration.

    ``database_url`` and ``redis_url`` left empty mean "start the embedded servers" (``mpac up``);
    the services themselves always receive resolved URLs.
    """

    model_config = SettingsConfigDict(env_prefix="MPAC_", extra="ignore")

    database_url: str = ""
    redis_url: str = ""
    state_dir: Path = Path(".mpac")

    host: str = "127.0.0.1"
    portal_port: int = 8010
    smarttab_port: int = 8020
    pgw_port: int = 8030
    provider_port: int = 8040
    # Where the other services reach the portal's JWKS; derived from host/port when empty.
    portal_url: str = ""

    # Token issuer identifier (the portal's public URL); derived from portal_url when empty.
    issuer: str = ""
    token_audience: str = "mpac"
    human_access_token_ttl_s: int = 15 * 60
    refresh_token_ttl_s: int = 14 * 24 * 3600
    device_access_token_ttl_s: int = Field(default=90, ge=60, le=120)
    client_assertion_max_lifetime_s: int = 300
    clock_skew_leeway_s: int = 30
    activation_code_ttl_s: int = 24 * 3600
    jwks_cache_ttl_s: int = 300
    # How often a portal process rereads its signing keys (a rotation elsewhere shows up then).
    key_ring_refresh_s: float = 30.0
    # Verifiers refetch the JWKS for an unknown kid at most this often (a flood of forged kids
    # cannot hammer the portal) ...
    jwks_min_refetch_interval_s: float = Field(default=10.0, ge=0.0)
    # ... so a new signing key is published this long before the portal signs with it; by then
    # every verifier may refetch and finds it. Must exceed jwks_min_refetch_interval_s.
    signing_key_activation_delay_s: float = Field(default=15.0, ge=0.0)

    login_max_failures: int = 5
    # One address may front a whole store (NAT), so it gets more room than one account.
    login_max_failures_per_ip: int = 20
    login_failure_window_s: int = 15 * 60
    # Refused client assertions at POST /oauth2/token, per claimed client and per source address,
    # in a fixed window (backend/portal/devices/throttle.py). Successes never count. A terminal
    # stuck failing (suspended, clock far off, replaced key) has that many tries per window; many
    # terminals share an address (a store's NAT, a carrier's CGNAT), hence the larger figure.
    device_token_max_failures_per_client: int = Field(default=20, ge=1)
    device_token_max_failures_per_ip: int = Field(default=200, ge=1)
    device_token_failure_window_s: int = Field(default=5 * 60, ge=1)

    # Argon2id cost; the defaults follow RFC 9106's second recommended option.
    password_hash_time_cost: int = 3
    password_hash_memory_kib: int = 64 * 1024

    # "kid:base64(32 bytes)" entries separated by commas; the first one encrypts.
    field_encryption_keys: str = ""

    # Service-to-service HMAC keys (docs/s2s-auth.md): "caller:kid:secret" entries separated by
    # commas; a caller signs with its first kid, receivers accept every listed kid (rotation).
    s2s_keys: str = ""
    # How far a signed request's timestamp may be from the receiver's clock, either way.
    s2s_max_skew_s: int = Field(default=300, ge=30, le=3600)

    # The simulated acquirer (backend/provider): the API key pgw sends as a bearer token, the
    # webhook signing secrets (comma-separated; the first is the current one, every one of them
    # signs during a rotation), where its webhooks go (empty: pgw's /v1/provider/webhooks) and
    # the retry delays in seconds after a failed delivery.
    provider_api_key: str = "sim_sk_test_local"
    provider_webhook_secrets: str = "whsec_test_local"
    provider_webhook_url: str = ""
    provider_webhook_retry_schedule_s: str = "1,5,30,120,600"
    provider_webhook_timeout_s: float = 5.0
    # Keys the card fingerprint (HMAC-SHA256 of the PAN): same card, same fingerprint.
    provider_fingerprint_key: str = "sim_fp_test_local"
    provider_latency_ms: int = Field(default=0, ge=0)
    provider_failure_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    # How long the provider_timeout test card stalls its (already stored) answer.
    provider_timeout_delay_s: float = Field(default=30.0, ge=0.0)
    provider_qr_ttl_s: int = Field(default=300, gt=0)

    # pgw: how long it waits for the provider before leaving a payment "processing" for the
    # reconciler, how long Idempotency-Keys are kept, when a claim left "in progress" by a crashed
    # request may be taken over, and how often the reconciler looks for stuck payments.
    pgw_provider_timeout_s: float = 10.0
    idempotency_retention_s: int = 24 * 3600
    idempotency_stale_after_s: int = 60
    reconciler_interval_s: float = 5.0
    reconciler_min_age_s: float = 5.0
    # Lifetime of a WebView payment token (docs/payment-tokens.md).
    payment_token_ttl_s: int = Field(default=300, ge=30, le=3600)
    # pgw's payment stream (GET /v1/payments/{id}/stream, server-sent events): how often it
    # rereads the payment, how long it may stay silent before a heartbeat comment (proxies and
    # WebViews drop idle connections), and the longest it stays open (it ends earlier when the
    # caller's token expires or the payment reaches a final status).
    pgw_stream_poll_interval_s: float = Field(default=0.5, gt=0, le=10)
    pgw_stream_heartbeat_s: float = Field(default=15.0, gt=0)
    pgw_stream_max_s: float = Field(default=300.0, gt=0)
    # Where pgw finds the WebView SDK build (dist/) and the demo page (demo/) it serves; empty:
    # webview_sdk/ of the source tree pgw runs from.
    webview_sdk_dir: str = ""

    # smarttab's real-time channel (docs/smarttab.md, "Real-time channel"): the server pings every
    # ws_heartbeat_interval_s and closes a socket that sent nothing for ws_idle_timeout_s; a
    # client without an Authorization header has ws_auth_timeout_s to send its auth message; one
    # that gave no last_seq has ws_resume_wait_s to send resume before streaming starts from the
    # hello's head_seq. A reconnecting device gets at most ws_replay_limit missed events, none
    # older than store_event_retention_s (else resync_required); a socket whose unsent backlog
    # exceeds ws_send_queue_limit is closed (it reconnects with its last seq). Every
    # store_event_purge_interval_s each process deletes events older than the retention.
    ws_heartbeat_interval_s: float = Field(default=15.0, gt=0)
    ws_idle_timeout_s: float = Field(default=45.0, gt=0)
    ws_auth_timeout_s: float = Field(default=5.0, gt=0)
    ws_resume_wait_s: float = Field(default=2.0, ge=0)
    ws_replay_limit: int = Field(default=1000, ge=1)
    ws_send_queue_limit: int = Field(default=1000, ge=1)
    store_event_retention_s: int = Field(default=24 * 3600, ge=60)
    store_event_purge_interval_s: float = Field(default=300.0, gt=0)

    # How often the portal relays its outbox (directory changes) to pgw.
    outbox_relay_interval_s: float = 0.5

    # Observability (docs/observability.md): spans are exported over OTLP/HTTP to this base URL
    # (".../v1/traces" is appended) when set, else where OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT
    # says, else nowhere; the share of new traces kept (a caller's sampling decision wins);
    # a bearer token /metrics requires when set (anyone who reaches the port may scrape, else).
    otlp_endpoint: str = ""
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    metrics_token: str = ""

    db_pool_size: int = 10
    db_max_overflow: int = 10
    db_pool_timeout_s: float = 5.0

    @field_validator("state_dir")
    @classmethod
    def _expand_state_dir(cls, value: Path) -> Path:
        return value.expanduser()

    @field_validator("s2s_keys")
    @classmethod
    def _check_s2s_keys(cls, value: str) -> str:
        # A malformed key list fails at start-up, not as a 500 on every signed request.
        from backend.core.hmac_signing import parse_s2s_keys

        parse_s2s_keys(value)
        return value

    @model_validator(mode="after")
    def _new_keys_publish_before_they_sign(self) -> Settings:
        if self.signing_key_activation_delay_s <= self.jwks_min_refetch_interval_s and (
            self.jwks_min_refetch_interval_s > 0
        ):
            raise ValueError(
                "signing_key_activation_delay_s must exceed jwks_min_refetch_interval_s, or "
                "verifiers that fetched the JWKS just before a rotation refuse new tokens"
            )
        return self

    def port_of(self, service: str) -> int:
        ports = {
            "portal": self.portal_port,
            "smarttab": self.smarttab_port,
            "pgw": self.pgw_port,
            "provider": self.provider_port,
        }
        return ports[service]

    def url_of(self, service: str) -> str:
        return f"http://{self.host}:{self.port_of(service)}"

    @cached_property
    def resolved_portal_url(self) -> str:
        return (self.portal_url or self.url_of("portal")).rstrip("/")

    @cached_property
    def resolved_issuer(self) -> str:
        return (self.issuer or self.resolved_portal_url).rstrip("/")

    @property
    def token_endpoint(self) -> str:
        return f"{self.resolved_issuer}/oauth2/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.resolved_portal_url}/.well-known/jwks.json"

    @property
    def provider_url(self) -> str:
        return self.url_of("provider")

    @property
    def resolved_provider_webhook_url(self) -> str:
        return self.provider_webhook_url or self.url_of("pgw") + "/v1/provider/webhooks"
