"""The operator's console in a real browser (Debian's chromium): following an upload to its finished
pipelines, retrying a failed job from its page, replaying a dead letter, and a read-only sign-in that sees
no action controls and whose forged actions are refused. Every page is screenshotted at a laptop's and a
phone's width, light and dark (``.artifacts/console/``), and any console error fails the test.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.async_api import Page, expect

from conveyor.db.settings import PostgresSettings
from conveyor.settings import Settings
from tests.browser.conftest import Scheme, Tab, Tabs
from tests.e2e.system import TOKEN as SYSTEM_TOKEN
from tests.e2e.system import System, running_system
from tests.integration.api_server import READ_ONLY, TOKEN, ApiServer
from tests.integration.conftest import Workers
from tests.integration.test_api import _seed_object_and_letter

pytestmark = pytest.mark.timeout(600)
SEEDED_OBJECT = "/ui/objects/uploads/in%20box/a%2Bb%20100%25.csv"


async def _csrf(page: Page) -> str:
    value = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert value
    return value


async def _wait_for_status(http: httpx.Client, job_id: str, status: str, within: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await asyncio.to_thread(http.get, f"/api/jobs/{job_id}")).json()
        if job["status"] == status:
            return job
        await asyncio.sleep(0.2)
    raise AssertionError(f"job {job_id} did not become {status} within {within}s: {job['status']}")


async def test_a_failed_job_is_retried_from_its_page_and_completes(
    api: ApiServer, workers: Workers, tabs: Tabs
) -> None:
    with api.client() as http:
        body = {"jobType": "test.flaky", "payload": {"params": {"succeed_on": 2}}, "maxRetries": 0}
        job_id = http.post("/api/jobs", json=body).json()["jobId"]
        workers.start()
        await _wait_for_status(http, job_id, "FAILED")
        tab = await tabs.open(api.url)
        await tab.sign_in(TOKEN)
        page = await tab.open(f"/ui/jobs/{job_id}")
        await expect(page.locator(".headline .status")).to_have_text("FAILED")
        await expect(page.locator(".timeline")).to_contain_text("flaky failure on attempt 1")
        await page.get_by_role("button", name="Retry").click()
        await page.wait_for_url(f"**/ui/jobs/{job_id}?done=retry")
        # The page refreshes itself while the job is not final: the worker's second attempt shows up.
        await expect(page.locator(".headline .status")).to_have_text("COMPLETED", timeout=60_000)
        await expect(page.get_by_role("button", name="Retry")).to_have_count(0)
        job = await _wait_for_status(http, job_id, "COMPLETED")
        assert job["attempts"] == 2 and len(job["errors"]) == 1


async def test_a_dead_letter_is_replayed_from_the_page(api: ApiServer, database: PostgresSettings, tabs: Tabs) -> None:
    await _seed_object_and_letter(database)
    tab = await tabs.open(api.url)
    await tab.sign_in(TOKEN)
    page = await tab.open("/ui/dead-letters")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await page.locator("tbody input[name=id]").check()
    await page.get_by_role("button", name="Replay selected").click()
    outcome = page.locator("#replays tr[data-letter]")
    await expect(outcome).to_have_attribute("data-outcome", "replayed")
    await expect(outcome.locator("td.num").last).to_have_text("2")
    await expect(page.locator("p.muted", has_text="No open dead letter")).to_be_visible()
    with api.client() as http:
        assert http.get("/api/dlq").json() == []
        (letter,) = http.get("/api/dlq", params={"includeReplayed": "true"}).json()
        assert letter["replayedAt"] is not None


async def test_flow_limits_are_set_and_cleared_from_the_page(api: ApiServer, tabs: Tabs) -> None:
    tab = await tabs.open(api.url)
    await tab.sign_in(TOKEN)
    page = await tab.open("/ui/limits")
    await expect(page.locator("p.muted", has_text="No key or job type is limited")).to_be_visible()
    form = page.locator("form[action='/ui/limits']")
    await form.locator("select[name=scope]").select_option("key")
    await form.locator("input[name=name]").fill("uploads/tenant-a")
    await form.locator("input[name=max_running]").fill("0")
    tab.provoked.add(422)
    await form.get_by_role("button", name="Set").click()
    await expect(page.locator("p.problem")).to_contain_text("max_running")
    tab.provoked.clear()
    await form.locator("input[name=max_running]").fill("2")
    await form.locator("input[name=rate_per_second]").fill("5")
    await form.get_by_role("button", name="Set").click()
    row = page.locator("tr[data-limit='key:uploads/tenant-a']")
    await expect(row).to_contain_text("5/s (5)")
    with api.client() as http:
        (limit,) = http.get("/api/limits").json()
        assert (limit["maxRunning"], limit["ratePerSecond"], limit["setBy"]) == (2, 5.0, "operator")
        await row.get_by_role("button", name="Clear").click()
        await expect(page.locator("tr[data-limit]")).to_have_count(0)
        assert http.get("/api/limits").json() == []


async def test_a_read_only_sign_in_sees_no_actions_and_forged_ones_are_refused(
    api: ApiServer, database: PostgresSettings, tabs: Tabs
) -> None:
    await _seed_object_and_letter(database)
    with api.client() as http:
        job_id = http.post("/api/jobs", json={"jobType": "console.read_only"}).json()["jobId"]
        assert http.post(f"/api/jobs/{job_id}/cancel").json()["status"] == "CANCELLED"
    viewer = await tabs.open(api.url)
    await viewer.sign_in(READ_ONLY)
    page = await viewer.open(f"/ui/jobs/{job_id}")
    await expect(page.locator(".headline .status")).to_have_text("CANCELLED")
    await expect(page.locator("form[action$='/retry'], form[action$='/cancel']")).to_have_count(0)
    page = await viewer.open("/ui/dead-letters")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await expect(page.locator("input[type=checkbox], button[name=only]")).to_have_count(0)
    for path in ("/ui/limits", "/ui/backfills"):
        page = await viewer.open(path)
        await expect(page.locator("form[method=post]:not(.signout)")).to_have_count(0)
    page = await viewer.open("/ui/dead-letters")
    # A viewer who forges the form (with its own session's CSRF token) is refused, and nothing changes.
    csrf = await _csrf(page)
    forged = await viewer.context.request.post(f"{api.url}/ui/jobs/{job_id}/retry", form={"csrf": csrf})
    assert forged.status == 403 and "may only read" in await forged.text()
    letter_id = await page.locator("tbody td.num").first.inner_text()
    replay = f"{api.url}/ui/dead-letters/replay"
    assert (await viewer.context.request.post(replay, form={"csrf": csrf, "id": letter_id})).status == 403
    await _operator_forgeries(tabs, api, job_id)
    with api.client() as http:
        assert http.get(f"/api/jobs/{job_id}").json()["status"] == "CANCELLED"
        assert len(http.get("/api/dlq").json()) == 1


async def _operator_forgeries(tabs: Tabs, api: ApiServer, job_id: str) -> None:
    """An operator's session is refused without its CSRF token, with a wrong one, and from another site."""
    operator = await tabs.open(api.url)
    await operator.sign_in(TOKEN)
    csrf = await _csrf(await operator.open(f"/ui/jobs/{job_id}"))
    retry, request = f"{api.url}/ui/jobs/{job_id}/retry", operator.context.request
    assert (await request.post(retry, form={"other": "field"})).status == 403
    assert (await request.post(retry, form={"csrf": csrf[:-2] + "xx"})).status == 403
    cross_site = await request.post(retry, form={"csrf": csrf}, headers={"Origin": "http://evil.example"})
    assert cross_site.status == 403
    # Without a session: sent to sign in, and a made-up cookie is no session.
    async with httpx.AsyncClient(cookies={"conveyor_session": "operator.1.x.y"}) as stranger:
        refused = await stranger.post(retry, data={"csrf": csrf})
        assert refused.status_code == 303 and refused.headers["location"].startswith("/ui/login")
        assert (await stranger.post(f"{api.url}/ui/login", data={"token": "wrong"})).status_code == 401


async def test_the_pages_work_from_the_keyboard(api: ApiServer, database: PostgresSettings, tabs: Tabs) -> None:
    await _seed_object_and_letter(database)
    tab = await tabs.open(api.url)
    await tab.sign_in(TOKEN)
    page = await tab.open("/ui/overview")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    reached = []
    for _ in range(8):
        await page.keyboard.press("Tab")
        reached.append(await page.evaluate("document.activeElement.textContent.trim()"))
    assert {"Objects", "Jobs", "Workers", "Dead letters"} <= set(reached)
    page = await tab.open(SEEDED_OBJECT)
    await expect(page.locator("a.node")).to_have_count(3)
    await page.locator("a.node").first.focus()
    await page.keyboard.press("Enter")
    await page.wait_for_url(re.compile(r".*/ui/jobs/[0-9a-f-]{36}$"))


# -- an upload through the whole system -----------------------------------------------------------------


@pytest.fixture(scope="module")
def system(settings: Settings, tmp_path_factory: pytest.TempPathFactory, template_db: str) -> Iterator[System]:
    with running_system(settings, tmp_path_factory.mktemp("console")) as running:
        yield running


async def test_an_upload_is_followed_to_its_finished_pipelines(system: System, tabs: Tabs) -> None:
    key = "console/orders 2026 #1.csv"
    tab = await tabs.open(system.api)
    await tab.sign_in(SYSTEM_TOKEN)
    system.upload(key, b"id,amount\n1,9.50\n2,12.00\n")
    page = await tab.open(f"/ui/objects/{system.bucket}/{quote(key)}")
    # checksum -> inspect (fingerprint) and profile (csv): the drawing turns complete as the page refreshes.
    await expect(page.locator("a.node")).to_have_count(3, timeout=90_000)
    await expect(page.locator("a.node[data-status=COMPLETED]")).to_have_count(3, timeout=90_000)
    await expect(page.locator("path.edge")).to_have_count(1)
    await expect(page.locator(".origin", has_text="notification").first).to_be_visible()
    page = await tab.open(f"/ui/objects?bucket={system.bucket}&prefix=console/")
    await expect(page.locator("tbody tr")).to_have_count(1)
    await page.get_by_role("link", name=key).click()
    await expect(page.locator("a.node[data-status=COMPLETED]")).to_have_count(3)
    await _backfill_from_the_page(tab, system)
    await _screenshot_every_page(tabs, system, key)


async def _backfill_from_the_page(tab: Tab, system: System) -> None:
    """A backfill started on its page is run by the system's ingest leader; the page follows it to the end."""
    page = await tab.open("/ui/backfills")
    await page.locator("summary", has_text="Start a backfill").click()
    await page.locator("input[name=prefix]").fill("console/")
    await page.get_by_role("button", name="Start").click()
    await page.wait_for_url("**/ui/backfills?started=*")
    row = page.locator("tr[data-backfill]").first
    await expect(row).to_have_attribute("data-status", "COMPLETED", timeout=90_000)
    await expect(row).to_contain_text("1 of 1 listed")


async def _screenshot_every_page(tabs: Tabs, system: System, key: str) -> None:
    """Each page at both widths, light and dark, with the system's real data."""
    with system.http() as http:
        job = http.get("/api/jobs", params={"bucket": system.bucket, "key": key, "limit": 1}).json()["jobs"][0]
    pages = {
        "overview": "/ui/overview", "objects": f"/ui/objects?bucket={system.bucket}&prefix=console/",
        "object": f"/ui/objects/{system.bucket}/{quote(key)}", "jobs": "/ui/jobs", "job": f"/ui/jobs/{job['jobId']}",
        "workers": "/ui/workers", "dead-letters": "/ui/dead-letters", "backfills": "/ui/backfills",
        "limits": "/ui/limits",
    }  # fmt: skip
    shots: list[Path] = []
    schemes: list[tuple[str, Scheme]] = [("wide", "light"), ("narrow", "light"), ("wide", "dark"), ("narrow", "dark")]
    for width, scheme in schemes:
        tab = await tabs.open(system.api, width, scheme)
        shots.append(await _login_shot(tab))
        await tab.sign_in(SYSTEM_TOKEN)
        for name, path in pages.items():
            await tab.open(path)
            await _no_horizontal_page_scroll(tab)
            shots.append(await tab.shoot(name))
    assert all(shot.stat().st_size > 5_000 for shot in shots)


async def _login_shot(tab: Tab) -> Path:
    await tab.open("/ui/login")
    return await tab.shoot("login")


async def _no_horizontal_page_scroll(tab: Tab) -> None:
    """Wide tables scroll inside their box; the page itself never scrolls sideways (390 px included)."""
    root = "document.documentElement"
    overflow = await tab.page.evaluate(f"{root}.scrollWidth - {root}.clientWidth")
    assert overflow <= 1, f"{tab.page.url} is {overflow}px wider than the {tab.name} window"
