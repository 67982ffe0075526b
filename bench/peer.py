"""A peer for PW-001: the overdue decisions of a generated log, computed in batch by one DuckDB SQL
query written from LEGAL-RULES.md §1 (not from the engine), and compared with the cases the
engine's replay leaves with an active PW-001 alert.

    python -m bench.peer [--events N]

The working-day calendar comes straight from the `chinese-calendar` package (weekends only for
years it does not cover), not from permitwatch's legal clock. What the query models: the
acceptance anchor (acceptance day; the day complete corrected materials came in; deemed acceptance
on the receipt day when no answer came within 5 working days, XKF art. 32(4)), the item's
statutory limit in working or calendar days, one regular extension (approved, notified, at most
10 working days; 15 for joint handling, XKF art. 42), and closure by decision, refusal or
withdrawal. Statutory pauses (XKF art. 45) are not modelled: cases with one are counted and left
out of the comparison.
"""

from __future__ import annotations

import argparse
import io
import time
from datetime import date, timedelta
from pathlib import Path

QUERY = r"""
WITH RECURSIVE
ev AS (
    SELECT subject AS case_id, id, time AS t, replace(type, 'cn.gov.licensing.', '') AS kind, data
    FROM events
),
first_of AS (
    SELECT case_id,
        min(t) FILTER (kind = 'application.submitted') AS submitted,
        min(t) FILTER (kind = 'application.accepted') AS accepted,
        min(t) FILTER (kind = 'application.rejected') AS rejected,
        min(t) FILTER (kind = 'application.withdrawn') AS withdrawn,
        min(t) FILTER (kind = 'decision.made') AS decided,
        arg_min(data->>'$.item_code', t) FILTER (kind = 'application.submitted') AS item_code
    FROM ev GROUP BY case_id
),
responses AS (  -- what answers materials received: a notice, acceptance, refusal, withdrawal, a decision
    SELECT case_id, t, kind FROM ev WHERE kind = 'correction.requested'
    UNION ALL SELECT case_id, accepted, 'accepted' FROM first_of WHERE accepted IS NOT NULL
    UNION ALL SELECT case_id, rejected, 'rejected' FROM first_of WHERE rejected IS NOT NULL
    UNION ALL SELECT case_id, withdrawn, 'withdrawn' FROM first_of WHERE withdrawn IS NOT NULL
    UNION ALL SELECT case_id, decided, 'decided' FROM first_of WHERE decided IS NOT NULL
),
supplies AS (SELECT case_id, t FROM ev WHERE kind = 'correction.supplied'),
rounds(case_id, n, receipt, answer, answer_kind) AS (  -- materials in, answer out, per round
    SELECT f.case_id, 0, f.submitted,
           (SELECT min(r.t) FROM responses r WHERE r.case_id = f.case_id AND r.t >= f.submitted),
           (SELECT arg_min(r.kind, r.t) FROM responses r WHERE r.case_id = f.case_id AND r.t >= f.submitted)
    FROM first_of f WHERE f.submitted IS NOT NULL
    UNION ALL
    SELECT nxt.case_id, nxt.n, nxt.receipt,
           (SELECT min(r.t) FROM responses r WHERE r.case_id = nxt.case_id AND r.t >= nxt.receipt),
           (SELECT arg_min(r.kind, r.t) FROM responses r WHERE r.case_id = nxt.case_id AND r.t >= nxt.receipt)
    FROM (
        SELECT p.case_id, p.n + 1 AS n,
               (SELECT min(s.t) FROM supplies s WHERE s.case_id = p.case_id AND s.t >= p.answer) AS receipt
        FROM rounds p WHERE p.answer_kind = 'correction.requested'
    ) nxt
    JOIN first_of f USING (case_id)
    WHERE nxt.receipt IS NOT NULL AND (f.accepted IS NULL OR nxt.receipt <= f.accepted)
),
windows AS (  -- the answer is due by the end of the 5th working day after the day of receipt
    SELECT r.*, cast(end_day.day + 1 AS TIMESTAMP) AT TIME ZONE 'Asia/Shanghai' AS due
    FROM rounds r
    JOIN calendar c ON c.day = cast(r.receipt AT TIME ZONE 'Asia/Shanghai' AS DATE)
    JOIN calendar end_day ON end_day.working AND end_day.worked = c.worked + 5
),
deemed AS (
    SELECT case_id, arg_min(cast(receipt AT TIME ZONE 'Asia/Shanghai' AS DATE), n) AS day
    FROM windows WHERE (answer IS NULL AND due <= (SELECT clock FROM now)) OR answer >= due
    GROUP BY case_id
),
completed AS (  -- accepted after corrections: the day the last corrected materials came in
    SELECT f.case_id, max(s.t) AS t
    FROM first_of f
    JOIN (SELECT case_id, max(t) AS last_notice FROM ev WHERE kind = 'correction.requested' GROUP BY case_id,
          ) n ON n.case_id = f.case_id
    JOIN supplies s ON s.case_id = f.case_id
    WHERE f.accepted IS NOT NULL
      AND n.last_notice <= f.accepted AND s.t BETWEEN n.last_notice AND f.accepted
    GROUP BY f.case_id
),
last_notice_before_acceptance AS (
    SELECT f.case_id, max(e.t) AS t FROM first_of f JOIN ev e ON e.case_id = f.case_id
    WHERE e.kind = 'correction.requested' AND e.t <= f.accepted GROUP BY f.case_id
),
anchored AS (
    SELECT f.*,
        coalesce(d.day,
                 CASE WHEN f.accepted IS NULL THEN NULL
                      WHEN ln.t IS NOT NULL AND cp.t IS NOT NULL AND cp.t >= ln.t
                          THEN cast(cp.t AT TIME ZONE 'Asia/Shanghai' AS DATE)
                      ELSE cast(f.accepted AT TIME ZONE 'Asia/Shanghai' AS DATE) END) AS anchor_day,
        coalesce(i.limit_value, CASE WHEN i.joint THEN 45 ELSE 20 END) AS limit_value,  -- XKF art. 42
        coalesce(i.limit_unit, 'working_days') AS limit_unit,
        coalesce(i.joint, false) AS joint
    FROM first_of f
    LEFT JOIN deemed d USING (case_id)
    LEFT JOIN last_notice_before_acceptance ln USING (case_id)
    LEFT JOIN completed cp USING (case_id)
    LEFT JOIN items i USING (item_code)
),
limit_end AS (
    SELECT a.*,
        CASE WHEN a.limit_unit = 'working_days' THEN
            (SELECT e.day FROM calendar c JOIN calendar e ON e.working AND e.worked = c.worked + a.limit_value
             WHERE c.day = a.anchor_day)
        ELSE
            (SELECT min(e.day) FROM calendar e WHERE e.working AND e.day >= a.anchor_day + a.limit_value::INTEGER)
        END AS last_day
    FROM anchored a WHERE a.anchor_day IS NOT NULL
),
extension AS (  -- the first extension only; it counts if approved and notified, up to the maximum
    SELECT case_id, arg_min(data, t) AS data, min(t) AS t FROM ev WHERE kind = 'procedure.started'
        AND data->>'$.kind' = 'extension' GROUP BY case_id
),
extended AS (
    SELECT l.*,
        CASE WHEN x.t IS NOT NULL AND x.t < cast(l.last_day + 1 AS TIMESTAMP) AT TIME ZONE 'Asia/Shanghai'
                  AND x.data->>'$.approved_by' IS NOT NULL AND coalesce((x.data->>'$.notified')::BOOLEAN, false)
             THEN least(coalesce((x.data->>'$.working_days')::INTEGER, 0), CASE WHEN l.joint THEN 15 ELSE 10 END)
             ELSE 0 END AS extra
    FROM limit_end l LEFT JOIN extension x USING (case_id)
),
deadlines AS (
    SELECT x.case_id, x.submitted, x.accepted, least(x.decided, x.rejected, x.withdrawn) AS closed,
        cast(e.day + 1 AS TIMESTAMP) AT TIME ZONE 'Asia/Shanghai' AS due
    FROM extended x
    JOIN calendar c ON c.day = x.last_day
    JOIN calendar e ON e.day = CASE WHEN x.extra = 0 THEN x.last_day ELSE
        (SELECT w.day FROM calendar w WHERE w.working AND w.worked = c.worked + x.extra) END
)
SELECT case_id FROM deadlines
WHERE (closed IS NULL AND due <= (SELECT clock FROM now)) OR closed >= due
ORDER BY case_id
"""


def load(connection, log: Path) -> None:
    """The events (only the CloudEvent attributes the query reads), the catalog and the calendar."""
    import chinese_calendar

    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

    connection.execute("SET TimeZone = 'Asia/Shanghai'")
    connection.execute(f"""CREATE TABLE events AS SELECT * FROM read_ndjson('{log}', columns = {{
        'id': 'VARCHAR', 'type': 'VARCHAR', 'time': 'TIMESTAMPTZ', 'subject': 'VARCHAR', 'data': 'JSON'}})""")
    connection.execute("CREATE TABLE now AS SELECT max(time) AS clock FROM events")
    connection.execute("CREATE TABLE items (item_code VARCHAR, limit_value INTEGER, limit_unit VARCHAR, joint BOOLEAN)")
    connection.executemany("INSERT INTO items VALUES (?, ?, ?, ?)", [
        (i.item_code, i.statutory_limit.value if i.statutory_limit else None,
         i.statutory_limit.unit if i.statutory_limit else None, bool(i.joint_handling)) for i in SAMPLE_CATALOG.items])
    rows, worked, day = [], 0, date(2024, 1, 1)
    while day < date(2029, 1, 1):
        try:
            working = chinese_calendar.is_workday(day)
        except NotImplementedError:  # a year the State Council has not published: weekends only
            working = day.weekday() < 5
        worked += working
        rows.append((day, working, worked))
        day += timedelta(days=1)
    connection.execute("CREATE TABLE calendar (day DATE, working BOOLEAN, worked INTEGER)")
    connection.executemany("INSERT INTO calendar VALUES (?, ?, ?)", rows)


def paused_cases(connection) -> set[str]:
    kinds = "'hearing','tendering','auction','inspection','testing','quarantine','appraisal','expert_review'"
    return {row[0] for row in connection.execute(
        f"SELECT DISTINCT subject FROM events WHERE type = 'cn.gov.licensing.procedure.started' "
        f"AND data->>'$.kind' IN ({kinds})").fetchall()}


def engine_overdue(log: Path) -> set[str]:
    """The cases a replay of the log leaves with an active PW-001 alert."""
    import orjson

    from permitwatch.alerts.clock import WorkingCalendar
    from permitwatch.alerts.engine import Engine
    from permitwatch.models.settings import RuleSettings
    from permitwatch.streams.inputs.readers import read_jsonl
    from permitwatch.streams.replay import replay
    from permitwatch.streams.simulation.sample_catalog import SAMPLE_CATALOG

    engine = Engine(SAMPLE_CATALOG.by_code(), WorkingCalendar(), RuleSettings())
    out = io.BytesIO()
    replay(read_jsonl([log]), engine, out, io.BytesIO())
    last: dict[str, tuple[str, str]] = {}
    for line in out.getvalue().splitlines():
        alert = orjson.loads(line)
        if alert["rule"] == "PW-001":
            last[alert["alert_id"]] = (alert["case_id"], alert["status"])
    return {case for case, status in last.values() if status == "active"}


def compare(log: Path) -> dict:
    import duckdb

    with duckdb.connect() as connection:
        load(connection, log)
        started = time.perf_counter()
        peer = {row[0] for row in connection.execute(QUERY).fetchall()}
        peer_seconds = time.perf_counter() - started
        excluded = paused_cases(connection)
        events = connection.execute("SELECT count(*) FROM events").fetchone()[0]
    started = time.perf_counter()
    ours = engine_overdue(log)
    engine_seconds = time.perf_counter() - started
    peer -= excluded
    ours -= excluded
    return {"events": events,
            "overdue_engine": len(ours), "overdue_peer": len(peer), "agree": peer == ours,
            "only_engine": sorted(ours - peer), "only_peer": sorted(peer - ours), "excluded": len(excluded),
            "peer_seconds": peer_seconds, "engine_seconds": engine_seconds}


def main(argv: list[str] | None = None) -> dict:
    from bench.common import generated_log

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args(argv)
    result = compare(generated_log(args.events))
    print(f"PW-001 overdue, {result['events']:,} events: engine {result['overdue_engine']:,} cases "
          f"(replay {result['engine_seconds']:.1f} s), DuckDB {result['overdue_peer']:,} cases "
          f"(query {result['peer_seconds']:.1f} s); {'agree' if result['agree'] else 'DISAGREE'}"
          f"; {result['excluded']} cases with statutory pauses left out")
    for side in ("only_engine", "only_peer"):
        if result[side]:
            print(f"  {side}: {len(result[side])}, e.g. {', '.join(result[side][:5])}")
    return result


if __name__ == "__main__":
    main()
