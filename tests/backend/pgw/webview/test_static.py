"""pgw serves the WebView SDK (/sdk/v1/) and the demo page (/demo/webview/): exact types,
caching with ETags, nosniff, a strict CSP on the page, and nothing but the listed files."""

from __future__ import annotations

import httpx
import pytest

from backend.pgw.webview.static import default_root
from tests.backend.pgw.webview.support import ORIGIN, FakeSdkTree, raw_get

JAVASCRIPT = "text/javascript; charset=utf-8"
SDK = default_root()

SDK_FILES = [
    ("mpac-pay.mjs", JAVASCRIPT),
    ("mpac-pay.js", JAVASCRIPT),
    ("mpac-pay.d.ts", "application/typescript; charset=utf-8"),
]


class TestSdkFiles:
    @pytest.mark.parametrize(("name", "content_type"), SDK_FILES)
    def test_each_file_is_served_as_built_with_its_type_and_caching(
        self, pgw: httpx.Client, name: str, content_type: str
    ) -> None:
        response = pgw.get(f"/sdk/v1/{name}")

        assert response.status_code == 200, response.text
        assert response.content == (SDK / "dist" / name).read_bytes()
        assert response.headers["content-type"] == content_type
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "public, max-age=3600"
        assert response.headers["etag"].startswith('"')
        assert int(response.headers["content-length"]) == len(response.content)

    def test_a_page_of_another_origin_may_load_the_module(self, pgw: httpx.Client) -> None:
        # <script type="module"> fetches in CORS mode: without this the import fails.
        response = pgw.get("/sdk/v1/mpac-pay.mjs", headers={"origin": ORIGIN})

        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers

    def test_head_answers_the_headers_without_the_body(self, pgw: httpx.Client) -> None:
        get = pgw.get("/sdk/v1/mpac-pay.js")
        head = pgw.head("/sdk/v1/mpac-pay.js")

        assert head.status_code == 200
        assert head.content == b""
        for header in ("content-type", "content-length", "etag", "cache-control"):
            assert head.headers[header] == get.headers[header], header

    def test_a_matching_etag_is_answered_304_without_a_body(self, pgw: httpx.Client) -> None:
        etag = pgw.get("/sdk/v1/mpac-pay.mjs").headers["etag"]

        for if_none_match in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = pgw.get("/sdk/v1/mpac-pay.mjs", headers={"if-none-match": if_none_match})
            assert again.status_code == 304, if_none_match
            assert again.content == b""
            assert again.headers["etag"] == etag
            assert again.headers["cache-control"] == "public, max-age=3600"

        stale = pgw.get("/sdk/v1/mpac-pay.mjs", headers={"if-none-match": '"stale"'})
        assert stale.status_code == 200
        assert stale.content

    def test_other_names_are_404_problems(self, pgw: httpx.Client) -> None:
        for path in ("/sdk/v1/mpac-pay.min.js", "/sdk/v1/README.md", "/sdk/v2/mpac-pay.mjs"):
            response = pgw.get(path)
            assert response.status_code == 404, path
            assert response.headers["content-type"] == "application/problem+json"
        assert pgw.get("/sdk/v1/mpac-pay.min.js").json()["code"] == "file_not_found"

    def test_no_folder_is_listed(self, pgw: httpx.Client) -> None:
        for path in ("/sdk/v1/", "/sdk/v1", "/sdk/", "/demo/"):
            response = pgw.get(path)
            assert response.status_code == 404, path


class TestDemoPage:
    def test_the_page_is_served_with_a_strict_csp(self, pgw: httpx.Client) -> None:
        response = pgw.get("/demo/webview/")

        assert response.status_code == 200, response.text
        assert response.content == (SDK / "demo" / "index.html").read_bytes()
        assert response.headers["content-type"] == "text/html; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.headers["x-content-type-options"] == "nosniff"
        csp = dict(
            [*directive.split(" ", 1), ""][:2]
            for directive in response.headers["content-security-policy"].split("; ")
        )
        assert csp["default-src"] == "'none'"
        assert csp["script-src"] == "'self'"  # its own scripts and the SDK; nothing inline
        assert csp["connect-src"] == "'self'"  # pgw, which serves it
        assert csp["frame-ancestors"] == "'none'"
        assert csp["base-uri"] == "'none'"
        assert "'unsafe-eval'" not in response.headers["content-security-policy"]

    def test_the_address_without_a_slash_redirects_to_the_page(self, pgw: httpx.Client) -> None:
        response = pgw.get("/demo/webview")

        assert response.status_code in (307, 308)
        assert response.headers["location"].endswith("/demo/webview/")

    def test_its_assets_are_served_with_their_types(self, pgw: httpx.Client) -> None:
        for name, content_type in (
            ("demo.js", JAVASCRIPT),
            ("demo.css", "text/css; charset=utf-8"),
            ("favicon.svg", "image/svg+xml"),
            ("index.html", "text/html; charset=utf-8"),
        ):
            response = pgw.get(f"/demo/webview/{name}")
            assert response.status_code == 200, name
            assert response.headers["content-type"] == content_type
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.content == (SDK / "demo" / name).read_bytes()

    def test_the_demo_is_not_open_to_other_origins(self, pgw: httpx.Client) -> None:
        response = pgw.get("/demo/webview/", headers={"origin": ORIGIN})

        assert "access-control-allow-origin" not in response.headers

    def test_static_files_are_not_in_the_api_document(self, pgw: httpx.Client) -> None:
        paths = pgw.get("/openapi.json").json()["paths"]

        assert not [path for path in paths if path.startswith(("/sdk", "/demo"))]
        assert "/v1/payments/{payment_id}/qr.svg" in paths
        assert "/v1/payments/{payment_id}/stream" in paths


class TestOnlyListedFiles:
    """Against a pgw whose SDK folder holds files that must never come out."""

    TRAVERSALS = (
        "/sdk/v1/../secret.txt",
        "/sdk/v1/..%2Fsecret.txt",
        "/sdk/v1/..%2fsecret.txt",
        "/sdk/v1/%2e%2e%2fsecret.txt",
        "/sdk/v1/%2e%2e/%2e%2e/secret.txt",
        "/sdk/v1/..%5Csecret.txt",
        "/sdk/v1/.%2E/secret.txt",
        "/sdk/v1/secret.txt",
        "/sdk/v1/secret.txt%00.mjs",
        "/sdk/v1/mpac-pay.mjs/../secret.txt",
        "/sdk/v1//etc/passwd",
        "/sdk/v1/%2Fetc%2Fpasswd",
        "/demo/webview/notes.md",
        "/demo/webview/../dist/secret.txt",
        "/demo/webview/..%2F..%2Fsecret.txt",
        "/demo/webview/%2e%2e%2fdist%2fsecret.txt",
    )

    @pytest.mark.parametrize("target", TRAVERSALS)
    def test_traversal_attempts_are_404(
        self, fast_pgw: httpx.Client, fake_sdk_tree: FakeSdkTree, target: str
    ) -> None:
        response = raw_get(str(fast_pgw.base_url), target)

        assert response.status == 404, (target, response.status)
        assert fake_sdk_tree.secret not in response.body
        assert b"root:" not in response.body

    def test_a_symlink_is_not_followed_unless_its_name_is_listed(
        self, fast_pgw: httpx.Client, fake_sdk_tree: FakeSdkTree
    ) -> None:
        response = fast_pgw.get("/sdk/v1/link.mjs")

        assert response.status_code == 404
        assert fake_sdk_tree.secret not in response.content

    def test_a_listed_file_missing_on_disk_is_a_404_problem(self, fast_pgw: httpx.Client) -> None:
        response = fast_pgw.get("/sdk/v1/mpac-pay.d.ts")

        assert response.status_code == 404
        assert response.json()["code"] == "file_not_found"

    def test_the_configured_folder_is_the_one_served(self, fast_pgw: httpx.Client) -> None:
        response = fast_pgw.get("/sdk/v1/mpac-pay.mjs")

        assert response.status_code == 200
        assert response.text == 'export const VERSION = "test";\n'
