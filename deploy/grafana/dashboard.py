"""Generates deploy/grafana/dashboards/permitwatch.json (run: python deploy/grafana/dashboard.py).

One row for supervision-centre operators (what the licensing is doing), one for SREs (what the
monitor is doing). A test checks the file is current, that it loads in Grafana's dashboard model,
and that every query names a metric the code exports."""

from __future__ import annotations

import json
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "permitwatch-prometheus"}
OUT = Path(__file__).resolve().parent / "dashboards" / "permitwatch.json"


def panel(title: str, kind: str, queries: list[tuple[str, str]], x: int, y: int, w: int = 8, h: int = 7,
          unit: str = "short", description: str = "") -> dict:
    return {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"showLegend": True, "displayMode": "list", "placement": "bottom"}}
        if kind == "timeseries" else {"reduceOptions": {"calcs": ["lastNotNull"]}},
        "targets": [{"refId": chr(65 + i), "datasource": DATASOURCE, "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(queries)],
    }


def row(title: str, y: int) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"x": 0, "y": y, "w": 24, "h": 1},
            "panels": []}


def quantiles(metric: str) -> list[tuple[str, str]]:
    return [(f"histogram_quantile({q}, sum by (le) (rate({metric}_bucket[5m])))", f"p{int(q * 100)}")
            for q in (0.5, 0.99)]


def dashboard() -> dict:
    panels = [
        row("监察 Supervision", 0),
        panel("红牌 Red cards per hour, by rule", "timeseries",
              [('sum by (rule) (increase(permitwatch_alerts_total{signal="red",status="active"}[1h]))', "{{rule}}")],
              0, 1, description="Statutory violations found, by rule"),
        panel("预警 / 黄牌 / 红牌 Alerts by signal", "timeseries",
              [('sum by (signal) (rate(permitwatch_alerts_total{status="active"}[15m]) * 3600)', "{{signal}}")],
              8, 1, unit="short", description="Alerts per hour"),
        panel("Retractions per hour, by rule", "timeseries",
              [('sum by (rule) (increase(permitwatch_alerts_total{status="retracted"}[1h]))', "{{rule}}")],
              16, 1, description="Alerts withdrawn because a late event disproved them"),
        panel("在办 Open cases", "stat", [("sum(permitwatch_open_cases)", "open")], 0, 8, w=4, h=5),
        panel("预警期内 Cases in the warning window", "stat", [("sum(permitwatch_cases_in_warning_window)", "cases")],
              4, 8, w=4, h=5),
        panel("移送 Referral versions per day, by status", "timeseries",
              [("sum by (status) (increase(permitwatch_referral_versions_total[1d]))", "{{status}}")], 8, 8, h=5),
        panel("Events per minute, by department", "timeseries",
              [("sum by (department) (rate(permitwatch_department_events_total[5m]) * 60)", "{{department}}")],
              16, 8, h=5),
        row("运维 Operations", 13),
        panel("Dead letters per 5 min, by reason", "timeseries",
              [("sum by (reason) (increase(permitwatch_dead_letters_total[5m]))", "{{reason}}")], 0, 14,
              description="Input refused: bad JSON, unknown type, schema, future time…"),
        panel("Deadline firing lag", "timeseries", quantiles("permitwatch_deadline_firing_lag_seconds"), 8, 14,
              unit="s", description="Deadline instant (or, if later, when the engine learnt it) → alert stored; "
                                    "target p99 ≤ 1 s"),
        panel("Processing lag (event time → alert)", "timeseries", quantiles("permitwatch_processing_lag_seconds"),
              16, 14, unit="s"),
        panel("Engine time per event", "timeseries", quantiles("permitwatch_engine_seconds"), 0, 21, unit="s"),
        panel("Ingest batch time", "timeseries", quantiles("permitwatch_ingest_batch_seconds"), 8, 21, unit="s"),
        panel("Engine clock behind", "timeseries",
              [("permitwatch_engine_clock_behind_seconds", "{{instance}}")], 16, 21, unit="s",
              description="Real seconds behind the runtime's clock; grows when deadlines stop being fired"),
        panel("Journal and state size", "timeseries",
              [("permitwatch_store_bytes", "database"), ("permitwatch_checkpoint_bytes", "checkpoint")],
              0, 28, unit="bytes"),
        panel("Journal events", "stat", [("sum(permitwatch_journal_events)", "events")], 8, 28, w=4, h=5),
        panel("Duplicates per minute", "timeseries",
              [("sum(rate(permitwatch_duplicate_events_total[5m]) * 60)", "duplicates")], 12, 28, w=6, h=5),
        panel("Events per minute, sent and accepted", "timeseries",
              [("sum(rate(permitwatch_events_sent_total[5m]) * 60)", "sent by the Kafka API"),
               ("sum(rate(permitwatch_events_total[5m]) * 60)", "accepted")], 18, 28, w=6, h=5,
              description="Kafka: what the API produced to the events topic against what the workers accepted. "
                          "Sent also counts repeats (Duplicates), events the workers refuse (Dead letters) and "
                          "exemptions; accepted also counts `permitwatch import --kafka`. A gap that grows while "
                          "those do not is a backlog (the backlog panel, or the group's consumer lag). The other runtimes "
                          "send nothing"),
        panel("Kafka backlog: records waiting, by stage", "timeseries",
              [("sum by (stage) (permitwatch_backlog_records)", "{{stage}}")], 8, 33, w=16, h=5,
              description="Records of the events topic (cases) and the city topic (city) after the last each "
                          "worker judged, over the partitions the workers own. A partition restoring after a "
                          "rebalance, or owned by nobody (its worker dead, its session not yet timed out), is "
                          "not counted: the group's consumer lag (kafka-consumer-groups --describe) shows it"),
    ]
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "uid": "permitwatch-overview",
        "title": "permitwatch 行政审批电子监察",
        "description": "Licensing violations as they are found, and the health of the monitor finding them",
        "tags": ["permitwatch"],
        "timezone": "Asia/Shanghai",
        "editable": False,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-24h", "to": "now"},
        "panels": panels,
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [],
    }


def render() -> str:
    return json.dumps(dashboard(), ensure_ascii=False, indent=2) + "\n"


if __name__ == "__main__":
    OUT.write_text(render(), encoding="utf-8")
    print(OUT)
