"""The console over plain HTTP: bad input is a 4xx naming the field, unknown things are a 404 page, and
every page carries the headers that keep scripts and framing out."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests import isolation
from tests.integration.api_server import TOKEN, ApiServer


@contextmanager
def _signed_in(api: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.url, timeout=30) as client:
        assert client.post("/ui/login", data={"token": TOKEN}).status_code == 303
        yield client


#: Forms an operator may get wrong, and the field each error names.
BAD_FORMS = [
    ("/ui/backfills", {"bucket": "not-ours"}, "bucket"),
    ("/ui/backfills", {"bucket": isolation.SUITE_BUCKET, "since": "soon"}, "since"),
    ("/ui/backfills", {"bucket": isolation.SUITE_BUCKET, "pipeline": "nope"}, "pipeline"),
    ("/ui/limits", {"scope": "key", "name": "k", "weight": "x"}, "weight"),
    ("/ui/limits", {"scope": "key", "name": "k", "burst": "3"}, "burst"),
    ("/ui/limits", {"scope": "tenant", "name": "k", "max_running": "1"}, "scope"),
]


def test_bad_input_names_the_field_and_nothing_breaks(api: ApiServer) -> None:
    with _signed_in(api) as http:
        for path, field in (("/ui/jobs?status=DONE", "status"), ("/ui/jobs?key=a%00b", "key"),
                            ("/ui/jobs?since=yesterday", "since"), ("/ui/jobs?after=42", "after"),
                            ("/ui/objects?bucket=b&prefix=%00", "prefix"), ("/ui/objects/b/%00", "key"),
                            ("/ui/dead-letters?before=x", "before")):  # fmt: skip
            response = http.get(path)
            assert response.status_code == 422, path
            assert field in {str(part) for error in response.json()["detail"] for part in error["loc"]}, path
        missing = http.get(f"/ui/jobs/{uuid.uuid4()}")
        assert missing.status_code == 404 and "No job" in missing.text
        assert http.get("/ui/objects/b/never%20uploaded.csv").status_code == 200, "an unknown object has a page"
        refused = http.post("/ui/dead-letters/replay", data={"csrf": "x"})
        assert refused.status_code == 403
        form = http.get("/ui/dead-letters").text.split('name="csrf" value="')[1].split('"')[0]
        nothing = http.post("/ui/dead-letters/replay", data={"csrf": form})
        assert nothing.status_code == 422 and "Select at least one" in nothing.text
        as_json = http.post("/ui/dead-letters/replay", json={"csrf": form, "id": 1})
        assert as_json.status_code == 415
        for path, data, field in BAD_FORMS:
            response = http.post(path, data={"csrf": form, **data})
            assert response.status_code == 422 and f"{field}" in response.text, (path, data)


def test_pages_keep_scripts_and_framing_out(api: ApiServer) -> None:
    with _signed_in(api) as http:
        for path in (
            "/ui/overview",
            "/ui/jobs",
            "/ui/workers",
            "/ui/dead-letters",
            "/ui/objects",
            "/ui/backfills",
            "/ui/limits",
        ):
            response = http.get(path)
            assert response.status_code == 200, path
            assert "script-src 'self'" in response.headers["content-security-policy"]
            assert response.headers["x-frame-options"] == "DENY" and response.headers["cache-control"] == "no-store"
            assert "<script>" not in response.text and " style=" not in response.text, "no inline code"
        assert http.get("/ui/static/console.js").status_code == 200
    login = httpx.post(f"{api.url}/ui/login", data={"token": TOKEN, "next": "https://evil.example/"})
    assert login.headers["location"] == "/ui", "never sent to another site after signing in"
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
