"""The operator console and the API docs in a real headless browser (Debian's chromium, driven by
Playwright), with no network beyond the server under test.

The tests install chromium with apt when it is missing and they may (root), and add Debian's
WenQuanYi Micro Hei where no installed font covers Chinese (tests/tools.py); they skip, saying why,
only where no browser can be had. Set PERMITWATCH_SCREENSHOT=path to keep the console's screenshot
(the one in docs/ was made so)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import urllib.request
from datetime import timedelta

import orjson
import pytest

from permitwatch.api import compose
from permitwatch.api.compose import Embedded
from permitwatch.streams.clocks import ManualClock
from permitwatch.streams.port import RawInput
from permitwatch.streams.settings import Settings
from permitwatch.streams.simulation.city import CitySimulator
from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG
from tests.factory import CaseEvents, moment
from tests.live import free_port, serving
from tests.tools import chinese_fonts

CHROMIUM = "/usr/bin/chromium"


def chromium() -> str:
    if shutil.which("chromium"):
        return shutil.which("chromium")
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and this user cannot install it (run: sudo apt-get install chromium)")
    for command in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
        done = subprocess.run(command, capture_output=True, text=True, timeout=600,
                              env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
        if done.returncode != 0:
            pytest.fail(f"could not install chromium: {' '.join(command)}: {done.stderr[-1500:]}")
    return shutil.which("chromium") or CHROMIUM


@pytest.fixture(scope="module")
def browser():
    """(browser, families of the fonts that cover Chinese)."""
    executable = chromium()
    playwright = pytest.importorskip("playwright.sync_api")
    fonts, families = chinese_fonts()
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True, env={**os.environ, **fonts}, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield browser, families
        browser.close()


def offline_page(browser, url: str, outside: list[str]):
    """A page whose requests may reach only `url`'s server; any other is refused and noted in
    `outside`, as on an air-gapped network."""
    context = browser.new_context(viewport={"width": 1500, "height": 950})

    def route(request_route):
        if request_route.request.url.startswith(url + "/"):
            request_route.continue_()
        else:
            outside.append(request_route.request.url)
            request_route.abort()

    context.route("**/*", route)
    return context.new_page()


def embedded_runtime(tmp_path) -> tuple[Embedded, ManualClock, int]:
    (tmp_path / "catalog.json").write_bytes(orjson.dumps(SAMPLE_CATALOG.model_dump(mode="json")))
    port = free_port()
    clock = ManualClock(moment("2026-03-02 08:00"))
    settings = Settings(data_dir=tmp_path, catalog=tmp_path / "catalog.json", port=port)
    return compose.embedded(settings, clock), clock, port


@pytest.fixture
def quiet_server(tmp_path):
    """A server with no cases yet."""
    embedded, clock, port = embedded_runtime(tmp_path)
    with serving(embedded.app, port) as url:
        yield embedded, clock, url
    embedded.close()


@pytest.fixture
def server(tmp_path):
    embedded, clock, port = embedded_runtime(tmp_path)
    # A few weeks of a simulated city, so the console has alerts of every colour to show: each
    # event sent when the clock shows its time (batched within the allowed clock skew).
    sim = CitySimulator(seed=11, violation_rate=0.5, cases_per_day=20)
    cutoff = moment("2026-03-20 00:00")
    batch: list[tuple] = []
    for when, raw in sim.events(until=cutoff):
        if when >= cutoff:
            continue
        if batch and when - batch[0][0] > timedelta(minutes=4):
            clock.set(batch[0][0])
            embedded.monitor.ingest([RawInput("seed", r) for _, r in batch])
            batch = []
        batch.append((when, raw))
    clock.set(batch[0][0])
    embedded.monitor.ingest([RawInput("seed", r) for _, r in batch])
    clock.set(cutoff)
    embedded.monitor.tick()
    with serving(embedded.app, port) as url:
        yield embedded, clock, url
    embedded.close()


def test_console_shows_a_live_alert_and_acknowledges_it(server, browser, tmp_path):
    browser, chinese = browser
    embedded, clock, url = server
    tokens = embedded.new_tokens
    outside: list[str] = []
    page = offline_page(browser, url, outside)
    page.goto(f"{url}/console/#token={tokens['operator']}")
    page.wait_for_selector("#alert-table tbody tr")
    page.wait_for_selector("#status.on")
    assert page.locator(".badge.red").count() > 0 and page.locator(".badge.warning").count() > 0
    # Chinese is drawn with a font that has it, not as boxes.
    assert fonts_drawing(page, "header h1 span") & chinese
    assert fonts_drawing(page, "#alert-table tbody tr td .badge") & chinese
    # A new violation arrives over HTTP: the console shows it without reloading.
    case = CaseEvents("SZ-LIVE-0001", item="SZ-SAMR-001", department="SZ-SAMR")
    clock.set(moment("2026-03-20 09:00"))
    events = [case.submitted("2026-03-20 08:30"), case.accepted("2026-03-20 08:40", receipt_no="")]
    posted = time.monotonic()
    embedded.monitor.ingest([RawInput("browser-test", orjson.dumps(e.model_dump(mode="json"))) for e in events])
    row = page.locator('#alert-table tr[data-alert-id^="PW-007"]', has_text="SZ-LIVE-0001")
    row.wait_for(timeout=10_000)
    assert time.monotonic() - posted < 5
    assert "受理未出具" in row.inner_text() or "written receipt" in row.inner_text()
    row.locator("button.ack").click()
    page.wait_for_selector('#alert-table tr:has-text("SZ-LIVE-0001") >> text=已确认 acknowledged')
    shot = tmp_path / "console.png"
    page.screenshot(path=str(shot), full_page=False)
    keep = os.environ.get("PERMITWATCH_SCREENSHOT")
    if keep:
        shutil.copy(shot, keep)
    # The case view draws the legal deadline on the case's timeline.
    page.locator(".case-link", has_text="SZ-LIVE-0001").first.click()
    page.wait_for_selector("svg#timeline .deadline-line.decision_deadline", state="attached")
    assert "decision_deadline" in page.locator("#deadline-table").inner_text()
    assert_labels_apart(page)
    page.context.close()
    assert outside == []
    actions = embedded.monitor.store.reader.execute("SELECT action, actor FROM actions").fetchall()
    assert actions == [("acknowledge", "operator")]
    assert shot.stat().st_size > 10_000
    assert timedelta(0) <= clock.now() - moment("2026-03-20 09:00")


def test_case_timeline_labels_stay_apart_when_events_crowd(quiet_server, browser, tmp_path):
    """Seven events within an hour and four deadlines within three weeks, on a timeline of weeks:
    each label gets a place of its own inside the drawing."""
    browser, _ = browser
    embedded, clock, url = quiet_server
    case = CaseEvents("SZ-CROWD-0001", item="SZ-SAMR-004", department="SZ-SAMR")
    events = [case.submitted("2026-03-02 08:30"), case.correction("2026-03-02 08:40", ("SITE",)),
              case.supplied("2026-03-02 09:05", ("SITE",)), case.accepted("2026-03-02 09:20", receipt_no=""),
              case.fee("2026-03-02 09:30", "100.00", fee_code="FEE-SAMR-004"),
              case.step("2026-03-02 09:45", "review", "o-reviewer"), case.step("2026-03-02 10:00", "approve", "o-approver")]
    clock.set(moment("2026-03-05 12:00"))
    embedded.monitor.ingest([RawInput("browser-test", orjson.dumps(e.model_dump(mode="json"))) for e in events])
    outside: list[str] = []
    page = offline_page(browser, url, outside)
    page.goto(f"{url}/console/#token={embedded.new_tokens['operator']}")
    page.locator(".case-link", has_text="SZ-CROWD-0001").first.click()
    page.wait_for_selector("svg#timeline .deadline-line.decision_deadline", state="attached")
    labels = assert_labels_apart(page)
    assert len(labels) == len(events) + 4 + 1  # events, deadlines, "now"
    page.locator("svg#timeline").screenshot(path=str(tmp_path / "timeline.png"))
    # On a narrow screen the deadlines, weeks apart, crowd too.
    page.set_viewport_size({"width": 640, "height": 950})
    page.eval_on_selector("svg#timeline", "svg => { svg.innerHTML = ''; }")
    page.locator("#case-alerts .case-link").first.click()
    page.wait_for_selector("svg#timeline .deadline-line.decision_deadline", state="attached")
    assert_labels_apart(page)
    page.locator("svg#timeline").screenshot(path=str(tmp_path / "timeline-narrow.png"))
    page.context.close()
    assert outside == []


@pytest.mark.parametrize(("path", "operation"), [
    ("/docs", ".opblock"),
    ("/redoc", "[id^='operation/']"),
])
def test_api_docs_render_every_operation_offline(quiet_server, browser, path, operation):
    browser, _ = browser
    _, _, url = quiet_server
    spec = orjson.loads(urllib.request.urlopen(f"{url}/openapi.json", timeout=10).read())
    operations = sum(len(methods) for methods in spec["paths"].values())
    outside: list[str] = []
    failed: list[tuple[str, str, str]] = []
    page = offline_page(browser, url, outside)
    page.on("requestfailed", lambda request: failed.append((request.resource_type, request.url, request.failure)))
    page.on("response", lambda response: response.ok or failed.append(("", response.url, str(response.status))))
    page.goto(f"{url}{path}")
    page.locator(operation).nth(operations - 1).wait_for(timeout=20_000)
    assert page.locator(operation).count() == operations
    assert "/alerts/stream" in page.locator("body").inner_text()
    page.context.close()
    assert outside == []
    # The pages' policy refuses, before any request, a decoration from outside (ReDoc's logo); it
    # must refuse nothing they run on, and nothing else may fail.
    assert [f for f in failed if not (f[0] == "image" and "csp" in f[2].lower())] == []


def fonts_drawing(page, selector: str) -> set[str]:
    """The families of the fonts the browser drew `selector`'s own text with."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument")["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    fonts = cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]
    cdp.detach()
    return {font["familyName"] for font in fonts}


def assert_labels_apart(page) -> list[dict]:
    """No two labels of the case timeline overlap, and each lies inside the drawing."""
    frame = page.locator("svg#timeline").bounding_box()
    labels = page.eval_on_selector_all("svg#timeline text", """texts => texts.map((t) => {
        const r = t.getBoundingClientRect();
        return {text: t.textContent, left: r.left, right: r.right, top: r.top, bottom: r.bottom};
    })""")
    for label in labels:
        assert frame["x"] <= label["left"] and label["right"] <= frame["x"] + frame["width"], (label, frame)
        assert frame["y"] <= label["top"] and label["bottom"] <= frame["y"] + frame["height"], (label, frame)
    for n, a in enumerate(labels):
        for b in labels[n + 1:]:
            apart = a["right"] <= b["left"] or b["right"] <= a["left"] or a["bottom"] <= b["top"] or b["bottom"] <= a["top"]
            assert apart, (a, b)
    return labels
