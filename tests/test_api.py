"""The HTTP API: every endpoint, every role boundary, pagination, the live stream."""

from __future__ import annotations

import json
import re
import threading
import time

import httpx
import orjson
import pytest

from tests.factory import CaseEvents
from tests.live import free_port, serving

CATALOG = b'[{"item_code": "ITEM-STD", "name": "\\u98df\\u54c1\\u7ecf\\u8425\\u8bb8\\u53ef", "department": "D-MARKET"}]'
CALENDAR = b'{"version": "cn-2027-test", "holidays": ["2027-01-01"], "workdays": []}'


@pytest.fixture
def runtime(tmp_path, runtimes):
    return started(runtimes(tmp_path))


def started(runtime):
    c = CaseEvents("SZ-API-1")
    runtime.clock.set(runtime.clock.now().replace(day=3, hour=12))
    # No receipt number: a red PW-007, hence a referral.
    assert runtime.post([c.submitted("2026-03-02 09:00"), c.accepted("2026-03-03 10:00", receipt_no="")]).status_code == 202
    return runtime


def first_alert(runtime) -> dict:
    return runtime.client.get("/alerts", headers=runtime.auth("operator")).json()["items"][0]["alert"]


def endpoints(runtime) -> list[tuple[str, str, dict, str]]:
    """(method, path, request kwargs, role needed)."""
    alert = first_alert(runtime)["alert_id"]
    referral = runtime.client.get("/referrals", headers=runtime.auth("operator")).json()["items"][0]["referral_id"]
    event = CaseEvents("SZ-API-2").submitted("2026-03-03 11:00")
    return [
        ("POST", "/events", {"content": orjson.dumps(event.model_dump(mode="json")),
                             "headers": {"Content-Type": "application/cloudevents+json"}}, "ingest"),
        ("GET", "/alerts", {}, "operator"),
        ("GET", f"/alerts/{alert}", {}, "operator"),
        ("GET", f"/alerts/{alert}/actions", {}, "operator"),
        ("POST", f"/alerts/{alert}/ack", {}, "operator"),
        ("POST", f"/alerts/{alert}/assign", {"json": {"assignee": "zhang.san"}}, "operator"),
        ("POST", f"/alerts/{alert}/dismiss", {"json": {"reason": "duplicate of a paper record"}}, "operator"),
        ("GET", "/cases/SZ-API-1", {}, "operator"),
        ("GET", "/referrals", {}, "operator"),
        ("GET", f"/referrals/{referral}", {}, "operator"),
        ("POST", f"/referrals/{referral}/exemption", {"json": {"ground": "force_majeure", "reason": "台风"}},
         "operator"),
        ("GET", "/scorecards?from=2026-03-01T00:00:00%2B08:00&to=2026-04-01T00:00:00%2B08:00", {}, "operator"),
        ("GET", "/catalog", {}, "operator"),
        ("GET", "/calendar?year=2026", {}, "operator"),
        ("PUT", "/catalog", {"content": CATALOG}, "admin"),
        ("PUT", "/calendar", {"content": CALENDAR}, "admin"),
    ]


def call(runtime, method, path, kwargs, token=None):
    headers = dict(kwargs.get("headers", {}))
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    rest = {k: v for k, v in kwargs.items() if k != "headers"}
    return runtime.client.request(method, path, headers=headers, **rest)


def test_every_endpoint_checks_its_role(tmp_path, runtimes):
    # The clock stands still here, so an exemption's new version never comes: the API answers 202
    # once its wait is over (15 s by default, twice, was most of this test's time).
    runtime = started(runtimes(tmp_path, exemption_wait_seconds=0.1))
    for method, path, kwargs, needed in endpoints(runtime):
        missing = call(runtime, method, path, kwargs)
        assert missing.status_code == 401 and "missing bearer token" in missing.json()["detail"], path
        assert call(runtime, method, path, kwargs, "pw_not-a-real-token").status_code == 401, path
        for role, token in runtime.tokens.items():
            allowed = role == needed or role == "admin"
            answer = call(runtime, method, path, kwargs, token)
            if allowed:
                assert answer.status_code < 400, (path, role, answer.status_code, answer.text[:300])
            else:
                assert answer.status_code == 403, (path, role, answer.status_code)
                assert f"lacks the '{needed}' role" in answer.json()["detail"]


def test_open_endpoints(runtime):
    assert runtime.client.get("/healthz").json() == {"status": "alive"}
    ready = runtime.client.get("/readyz").json()
    assert ready["ready"] and ready["checks"]["database"]["ok"]
    metrics = runtime.client.get("/metrics").text
    assert 'permitwatch_alerts_total{rule="PW-007",signal="red",status="active"} 1.0' in metrics
    assert "permitwatch_open_cases 1.0" in metrics
    runtime.post([CaseEvents("SZ-API-9", item="ITEM-NOT-IN-CATALOG").submitted("2026-03-03 11:00")])
    assert "permitwatch_unknown_item_events_total 1.0" in runtime.client.get("/metrics").text
    assert runtime.client.get("/", follow_redirects=False).headers["location"] == "/console/"
    assert "permitwatch" in runtime.client.get("/console/").text
    assert "/alerts/stream" in runtime.client.get("/openapi.json").json()["paths"]


DOCS_ASSET = re.compile(r"""(?:src|href|spec-url)="([^"]*)"|url: '([^']*)'""")
JS_TYPES = ("text/javascript", "application/javascript")


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_api_docs_load_nothing_from_outside_the_server(runtime, page):
    """Supervision centres run air-gapped: the docs pages name only the server's own paths (the
    browser test checks that nothing else is asked for once they run)."""
    answer = runtime.client.get(page)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    html = answer.text
    assert not re.search(r"https?:|//", html), html
    policy = answer.headers["content-security-policy"]
    assert "default-src 'self'" in policy and not re.search(r"https?:|\*", policy), policy
    assets = {a or b for a, b in DOCS_ASSET.findall(html)}
    assert "/openapi.json" in assets and len(assets) >= 3, assets
    for path in assets:
        assert path.startswith("/"), path
        fetched = runtime.client.get(path)
        assert fetched.status_code == 200, path
        kind = fetched.headers["content-type"].split(";")[0]
        expected = {"js": JS_TYPES, "css": ("text/css",), "png": ("image/png",), "json": ("application/json",)}
        assert kind in expected[path.rsplit(".", 1)[-1]], (path, kind)
        assert len(fetched.content) > 500, path


def test_operator_actions_are_audited_and_never_edit_the_alert(runtime):
    alert = first_alert(runtime)
    headers = runtime.auth("operator")
    assert runtime.client.post(f"/alerts/{alert['alert_id']}/dismiss", json={"reason": ""}, headers=headers).status_code == 422
    runtime.client.post(f"/alerts/{alert['alert_id']}/ack", headers=headers)
    runtime.client.post(f"/alerts/{alert['alert_id']}/dismiss", json={"reason": "paper receipt was issued"},
                        headers=headers)
    history = runtime.client.get(f"/alerts/{alert['alert_id']}", headers=headers).json()
    assert [h["alert"] for h in history] == [alert]  # the record is as it was emitted
    view = runtime.client.get("/alerts", params={"dismissed": True}, headers=headers).json()["items"][0]
    assert view["operator"]["dismissed_reason"] == "paper receipt was issued"
    assert view["operator"]["acknowledged_by"] == "operator"
    trail = runtime.client.get(f"/alerts/{alert['alert_id']}/actions", headers=headers).json()
    assert [(a["action"], a["actor"]) for a in trail] == [("acknowledge", "operator"), ("dismiss", "operator")]
    assert runtime.client.get("/alerts", params={"dismissed": False}, headers=headers).json()["items"] == []
    assert runtime.client.post("/alerts/PW-001-nope/ack", headers=headers).status_code == 404


def test_case_timeline_shows_deadlines_and_hides_the_applicant(runtime):
    case = runtime.client.get("/cases/SZ-API-1", headers=runtime.auth()).json()
    assert case["item_name"] == "食品经营许可" and case["status"] == "open"
    assert [d["name"] for d in case["deadlines"]][:2] == ["correction_notice_deadline", "decision_deadline"]
    decision = next(d for d in case["deadlines"] if d["name"] == "decision_deadline")
    assert decision["last_day"] == "2026-03-31" and decision["calendar_version"].startswith("cn-builtin")
    submitted = case["events"][0]["data"]
    assert submitted["applicant_id"].startswith("hash:") and "91440300MA5ABCDE1X" not in json.dumps(case)
    assert case["referral"]["status"] == "open"
    assert runtime.client.get("/cases/SZ-NOPE", headers=runtime.auth()).status_code == 404


def test_exemption_makes_a_new_referral_version(runtime):
    headers = runtime.auth()
    referral = runtime.client.get("/referrals", headers=headers).json()["items"][0]
    # The exemption is dated at the monitor's clock, and its version is made once the clock has
    # passed that instant (as for every referral input): here, a moment after the request.
    moving = threading.Timer(0.5, runtime.advance, ["2026-03-03 12:00:01"])
    moving.start()
    made = runtime.client.post(f"/referrals/{referral['referral_id']}/exemption",
                               json={"ground": "conflicting_rules", "reason": "两部规章冲突"}, headers=headers)
    moving.join()
    assert made.status_code == 201
    assert made.json()["status"] == "exempt" and made.json()["version"] == referral["version"] + 1
    assert made.json()["exemption"]["recorded_by"] == "operator"
    versions = runtime.client.get(f"/referrals/{referral['referral_id']}", headers=headers).json()
    assert [v["status"] for v in versions] == ["open", "exempt"]
    forged = runtime.client.post(f"/referrals/{referral['referral_id']}/exemption",
                                 json={"ground": "other", "reason": "x", "recorded_by": "someone-else"}, headers=headers)
    assert forged.status_code == 403
    assert runtime.client.post("/referrals/REF-nope/exemption", json={"ground": "other", "reason": "x"},
                               headers=headers).status_code == 404


def test_an_exemption_is_dated_by_the_monitor_and_a_repeat_makes_no_version(runtime):
    """The monitor stamps when an exemption is recorded (a client cannot back-date a version);
    when it was decided may be stated, between the referral's first red alert and now."""
    headers = runtime.auth()
    referral = runtime.client.get("/referrals", headers=headers).json()["items"][0]
    path = f"/referrals/{referral['referral_id']}/exemption"
    back_dated = runtime.client.post(path, json={"ground": "other", "reason": "x", "recorded_at": "2020-01-01T00:00:00Z"},
                                     headers=headers)
    assert back_dated.status_code == 422 and "recorded_at" in back_dated.json()["detail"]
    too_early = runtime.client.post(path, json={"ground": "other", "reason": "x", "decided_at": "2026-03-01T00:00:00+08:00"},
                                    headers=headers)
    assert too_early.status_code == 422 and "first red alert" in too_early.json()["detail"]
    control = runtime.client.post(path, json={"ground": "other", "reason": "ok\x1b[31m"}, headers=headers)
    assert control.status_code == 422
    body = {"ground": "force_majeure", "reason": "台风停工\n三日", "decided_at": "2026-03-03T11:00:00+08:00"}
    moving = threading.Timer(0.5, runtime.advance, ["2026-03-03 12:00:01"])
    moving.start()
    made = runtime.client.post(path, json=body, headers=headers)
    moving.join()
    assert made.status_code == 201
    exemption = made.json()["exemption"]
    assert exemption["recorded_at"] == "2026-03-03T12:00:00+08:00" and exemption["decided_at"] == body["decided_at"]
    again = runtime.client.post(path, json=body, headers=headers)
    assert again.status_code == 200 and again.json()["version"] == made.json()["version"]
    assert len(runtime.client.get(f"/referrals/{referral['referral_id']}", headers=headers).json()) == 2


def test_admin_replaces_the_calendar_and_open_deadlines_are_recomputed(runtime):
    answer = runtime.client.put("/calendar", content=CALENDAR, headers=runtime.auth("admin"))
    assert answer.status_code == 200 and answer.json()["applied"] == "calendar"
    calendar = runtime.client.get("/calendar", params={"year": 2027}, headers=runtime.auth()).json()
    assert calendar["version"].endswith("+cn-2027-test") and 2027 in calendar["published_years"]
    assert next(d for d in calendar["days"] if d["date"] == "2027-01-01")["kind"] == "holiday"
    bad = runtime.client.put("/calendar", content=b'{"holidays": ["not a date"]}', headers=runtime.auth("admin"))
    assert bad.status_code == 422 and "version" in bad.json()["detail"]


def test_alert_pages_follow_the_cursor_without_gaps_or_repeats(runtime):
    events = []
    for n in range(23):
        c = CaseEvents(f"SZ-PAGE-{n:02d}")
        events += [c.submitted("2026-03-02 09:00"), c.accepted("2026-03-02 09:30", receipt_no="")]
    runtime.post(events)
    seen, cursor = [], None
    while True:
        page = runtime.client.get("/alerts", params={"limit": 5, **({"cursor": cursor} if cursor else {})},
                                  headers=runtime.auth()).json()
        seen += [item["alert"]["alert_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = runtime.client.get("/alerts", params={"limit": 500}, headers=runtime.auth()).json()["items"]
    assert seen == [item["alert"]["alert_id"] for item in everything] and len(seen) == len(set(seen)) == 24
    filtered = runtime.client.get("/alerts", params={"rule": "PW-007", "officer": "o-handler"},
                                  headers=runtime.auth()).json()["items"]
    assert len(filtered) == 24
    assert runtime.client.get("/alerts", params={"rule": "PW-999"}, headers=runtime.auth()).status_code == 422


def read_events(response, wanted: int, timeout: float) -> list[dict]:
    """Parse SSE frames until `wanted` alert events arrived."""
    found, buffer, deadline = [], "", time.monotonic() + timeout
    for chunk in response.iter_text():
        buffer += chunk
        while "\n\n" in buffer:
            frame, buffer = buffer.split("\n\n", 1)
            lines = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line and not line.startswith(":"))
            if lines.get("event") == "alert":
                found.append({"id": int(lines["id"]), **json.loads(lines["data"])})
        if len(found) >= wanted or time.monotonic() > deadline:
            break
    return found


def test_stream_delivers_a_new_alert_within_a_second_and_resumes(runtime):
    port = free_port()
    with serving(runtime.embedded.app, port) as url:
        headers = runtime.auth()
        delivered: list[dict] = []

        def listen():
            with httpx.stream("GET", f"{url}/alerts/stream", headers=headers, timeout=10) as response:
                delivered.extend(read_events(response, 1, timeout=8))

        listener = threading.Thread(target=listen)
        listener.start()
        time.sleep(0.5)  # the stream is open and waiting
        c = CaseEvents("SZ-SSE-1")
        sent = time.monotonic()
        runtime.post([c.submitted("2026-03-03 09:00"), c.accepted("2026-03-03 10:00", receipt_no="")])
        listener.join(timeout=10)
        assert delivered and delivered[0]["alert"]["case_id"] == "SZ-SSE-1"
        assert time.monotonic() - sent < 1.0
        # Resuming from before the last record replays what was missed, then continues.
        last = delivered[0]["id"]
        with httpx.stream("GET", f"{url}/alerts/stream", headers={**headers, "Last-Event-ID": str(last - 1)},
                          timeout=10) as response:
            again = read_events(response, 1, timeout=5)
        assert [e["id"] for e in again] == [last]


def test_a_cursor_beyond_sqlite_integers_is_refused_not_a_500(runtime):
    headers = runtime.auth()
    for path in ("/alerts", "/referrals"):
        answer = runtime.client.get(path, params={"cursor": 2**63}, headers=headers)
        assert answer.status_code == 422 and "cursor" in answer.json()["detail"]
    assert runtime.client.get("/alerts/stream", params={"after": 2**63}, headers=headers).status_code == 422


def test_options_and_405_name_every_method_of_a_path(runtime):
    options = runtime.client.options("/catalog")
    assert options.status_code == 204 and options.headers["allow"] == "GET, OPTIONS, PUT"
    refused = runtime.client.delete("/catalog", headers=runtime.auth("admin"))
    assert refused.status_code == 405 and refused.headers["allow"] == "GET, OPTIONS, PUT"


def test_an_unknown_or_repeated_query_parameter_is_refused_not_ignored(runtime):
    typo = runtime.client.get("/referrals", params={"stauts": "open"}, headers=runtime.auth())
    assert typo.status_code == 422 and "unknown query parameter 'stauts'" in typo.json()["detail"]
    twice = runtime.client.get("/scorecards?department=A&department=B", headers=runtime.auth())
    assert twice.status_code == 422 and "'department' given 2 times" in twice.json()["detail"]


def test_a_scorecards_period_may_be_given_in_days_as_the_command_line_takes_it(runtime):
    def rows(query: str) -> list:
        answer = runtime.client.get(f"/scorecards?{query}", headers=runtime.auth())
        assert answer.status_code == 200, answer.text
        return answer.json()

    march = rows("from=2026-03-01T00:00:00%2B08:00&to=2026-04-01T00:00:00%2B08:00")
    assert march and rows("from=2026-03-01&to=2026-03-31") == march
    assert rows("from=2026-03-04&to=2026-03-31") != march  # the case was submitted and accepted before
    bad = runtime.client.get("/scorecards?from=2026-02-30&to=2026-03-31", headers=runtime.auth())
    assert bad.status_code == 422 and "query.from" in bad.json()["detail"] and "not a day" in bad.json()["detail"]
    last = runtime.client.get("/scorecards?from=2026-01-01&to=9999-12-31", headers=runtime.auth())
    assert last.status_code == 422 and "query.to" in last.json()["detail"], last.text
    parameters = runtime.client.get("/openapi.json").json()["paths"]["/scorecards"]["get"]["parameters"]
    assert {p["name"]: [f["format"] for f in p["schema"]["anyOf"]] for p in parameters if p["name"] in ("from", "to")} \
        == {"from": ["date-time", "date"], "to": ["date-time", "date"]}


def test_the_openapi_description_declares_bodies_errors_and_the_bearer_scheme(runtime):
    spec = runtime.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    events = spec["paths"]["/events"]["post"]
    assert set(events["requestBody"]["content"]) == {"application/cloudevents+json",
                                                      "application/cloudevents-batch+json", "application/x-ndjson"}
    assert {"400", "401", "403", "413", "415", "422", "503"} <= set(events["responses"])
    assert set(spec["paths"]["/catalog"]["put"]["requestBody"]["content"]) == {"application/json", "application/yaml"}
    assert "404" in spec["paths"]["/alerts/{alert_id}/actions"]["get"]["responses"]


def test_a_bug_is_a_500_with_no_trace_for_the_client_and_one_in_the_log(runtime, caplog, monkeypatch):
    def broken(*_):
        raise RuntimeError("a bug")

    monkeypatch.setattr(runtime.embedded.app.state.services.read, "alerts", broken)
    with caplog.at_level("ERROR"):
        answer = runtime.client.get("/alerts", headers=runtime.auth())
    assert answer.status_code == 500 and answer.json() == {"detail": "internal error; the monitor logged it"}
    traces = [r for r in caplog.records if r.exc_info]
    assert len(traces) == 1 and "GET /alerts" in traces[0].getMessage()


def test_every_reference_in_the_openapi_description_resolves(runtime):
    """ReDoc stopped drawing anything at a dangling `$ref` (CalendarOverride, used by no response)."""
    spec = runtime.client.get("/openapi.json").json()
    text = orjson.dumps(spec).decode()
    referenced = set(re.findall(r'"#/components/schemas/([^"]+)"', text))
    assert referenced and referenced <= set(spec["components"]["schemas"])


def test_acknowledging_twice_records_one_acknowledgement(runtime):
    headers = runtime.auth()
    alert = first_alert(runtime)["alert_id"]
    first = runtime.client.post(f"/alerts/{alert}/ack", headers=headers).json()
    assert runtime.client.post(f"/alerts/{alert}/ack", headers=headers).json() == first
    assert [a["action"] for a in runtime.client.get(f"/alerts/{alert}/actions", headers=headers).json()] == [
        "acknowledge"]


def test_a_body_starting_with_a_utf8_bom_is_read(runtime):
    event = CaseEvents("SZ-BOM").submitted("2026-03-03 11:00")
    body = b"\xef\xbb\xbf" + orjson.dumps(event.model_dump(mode="json"))
    answer = runtime.client.post("/events", content=body, headers={**runtime.auth("ingest"),
                                                                  "Content-Type": "application/cloudevents+json"})
    assert answer.status_code == 202 and answer.json()["accepted"] == 1


def test_a_missing_alert_has_no_audit_trail_but_a_404(runtime):
    assert runtime.client.get("/alerts/PW-001-nope/actions", headers=runtime.auth()).status_code == 404


def test_a_token_added_or_revoked_in_the_file_counts_from_the_next_request(tmp_path, capsys, caplog):
    """Until 2026-12-02 the token file was read at the start only: a token removed from it (revoked)
    still opened the API until a restart."""
    from permitwatch.api.auth import Authenticator, TokenFile, write_token_file
    from permitwatch.api.cli import main
    from permitwatch.models.files import load_structured

    path = tmp_path / "tokens.json"

    def token(name: str) -> str:
        assert main(["token", "--name", name, "--role", "operator", "--tokens-file", str(path)]) == 0
        return capsys.readouterr().out.split("token: ", 1)[1].split()[0]

    alice = token("alice")
    auth = Authenticator.from_file(path)
    bob = token("bob")
    assert auth.identify(bob).name == "bob" and auth.identify(alice).name == "alice"
    write_token_file(path, [entry for entry in load_structured(path, TokenFile).tokens if entry.name != "alice"])
    assert auth.identify(alice) is None and auth.identify(bob).name == "bob"
    path.write_text('{"tokens": [')  # half-written by hand
    assert auth.identify(bob).name == "bob" and "could not be read again" in caplog.text
