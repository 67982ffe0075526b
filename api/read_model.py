"""Queries over the store for the API: the latest state of alerts and referrals, with the
operators' actions merged in (actions are kept apart; an alert record is never edited)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from permitwatch.alerts.case import hash_applicant
from permitwatch.models.alerts import Alert
from permitwatch.models.referrals import Referral
from permitwatch.models.views import ActionRecord, AlertPage, AlertView, OperatorState, ReferralPage
from permitwatch.streams.store import Store

LATEST = "a.seq = (SELECT MAX(seq) FROM alerts WHERE alert_id = a.alert_id)"


@dataclass
class AlertFilter:
    rule: str | None = None
    signal: str | None = None
    status: str | None = None
    department: str | None = None
    item_code: str | None = None
    officer: str | None = None
    case_id: str | None = None
    detected_from: datetime | None = None
    detected_to: datetime | None = None
    acknowledged: bool | None = None
    dismissed: bool | None = None

    def sql(self) -> tuple[str, list]:
        clauses, params = [], []
        for column, value in (("rule", self.rule), ("signal", self.signal), ("status", self.status),
                              ("department", self.department), ("item_code", self.item_code),
                              ("case_id", self.case_id)):
            if value is not None:
                clauses.append(f"a.{column} = ?")
                params.append(value)
        if self.officer is not None:
            clauses.append("(a.handler = ? OR a.reviewer = ? OR a.approver = ?)")
            params += [self.officer] * 3
        if self.detected_from is not None:
            clauses.append("a.detected_at >= ?")
            params.append(self.detected_from.isoformat())
        if self.detected_to is not None:
            clauses.append("a.detected_at < ?")
            params.append(self.detected_to.isoformat())
        for action, wanted in (("acknowledge", self.acknowledged), ("dismiss", self.dismissed)):
            if wanted is not None:
                exists = ("EXISTS (SELECT 1 FROM actions x WHERE x.target_kind = 'alert' AND x.target_id = a.alert_id"
                          f" AND x.action = '{action}')")
                clauses.append(exists if wanted else f"NOT {exists}")
        return " AND ".join(clauses), params


class ReadModel:
    def __init__(self, store: Store):
        self.store = store

    @property
    def db(self):
        return self.store.reader

    # ----- alerts -----

    def alerts(self, where: AlertFilter, cursor: int | None, limit: int) -> AlertPage:
        clause, params = where.sql()
        sql = f"SELECT a.seq, a.emitted_at, a.record FROM alerts a WHERE {LATEST}"
        if clause:
            sql += f" AND {clause}"
        if cursor is not None:
            sql += " AND a.seq < ?"
            params.append(cursor)
        sql += " ORDER BY a.seq DESC LIMIT ?"
        rows = self.db.execute(sql, [*params, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        items = self._views(rows)
        return AlertPage(items=items, next_cursor=rows[-1][0] if more else None)

    def alert_history(self, alert_id: str) -> list[AlertView]:
        rows = self.db.execute("SELECT seq, emitted_at, record FROM alerts WHERE alert_id = ? ORDER BY seq",
                               (alert_id,)).fetchall()
        return self._views(rows)

    def alerts_after(self, seq: int, limit: int = 500) -> list[AlertView]:
        rows = self.db.execute("SELECT seq, emitted_at, record FROM alerts WHERE seq > ? ORDER BY seq LIMIT ?",
                               (seq, limit)).fetchall()
        return self._views(rows)

    def case_alerts(self, case_id: str) -> list[AlertView]:
        rows = self.db.execute(f"SELECT a.seq, a.emitted_at, a.record FROM alerts a WHERE a.case_id = ? AND {LATEST}"
                               " ORDER BY a.seq", (case_id,)).fetchall()
        return self._views(rows)

    def last_alert_seq(self) -> int:
        return self.db.execute("SELECT COALESCE(MAX(seq), 0) FROM alerts").fetchone()[0]

    def all_alerts(self) -> Iterable[Alert]:
        for (record,) in self.db.execute("SELECT record FROM alerts ORDER BY seq"):
            yield Alert.model_validate_json(record)

    def _views(self, rows: list) -> list[AlertView]:
        alerts = [(seq, emitted, Alert.model_validate_json(record)) for seq, emitted, record in rows]
        states = self.operator_states({a.alert_id for _, _, a in alerts})
        return [AlertView(seq=seq, emitted_at=datetime.fromisoformat(emitted), alert=alert,
                          operator=states.get(alert.alert_id, OperatorState()))
                for seq, emitted, alert in alerts]

    def operator_states(self, alert_ids: set[str]) -> dict[str, OperatorState]:
        states: dict[str, dict] = {}
        ids = sorted(alert_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.db.execute(
                "SELECT target_id, action, actor, at, reason, assignee FROM actions"
                f" WHERE target_kind = 'alert' AND target_id IN ({marks}) ORDER BY seq", chunk)
            for target, action, actor, at, reason, assignee in rows:
                state = states.setdefault(target, {})
                if action == "acknowledge":
                    state.update(acknowledged_by=actor, acknowledged_at=at)
                elif action == "assign":
                    state.update(assigned_to=assignee, assigned_by=actor, assigned_at=at)
                elif action == "dismiss":
                    state.update(dismissed_by=actor, dismissed_at=at, dismissed_reason=reason)
        return {target: OperatorState.model_validate(state) for target, state in states.items()}

    def actions(self, target_kind: str, target_id: str) -> list[ActionRecord]:
        return self.store.actions((target_kind, target_id))

    def alert_exists(self, alert_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM alerts WHERE alert_id = ? LIMIT 1", (alert_id,)).fetchone() is not None

    # ----- cases -----

    def case_journal(self, case_id: str) -> list[tuple[bytes, datetime]]:
        rows = self.db.execute("SELECT raw, received_at FROM journal WHERE case_id = ? AND kind = 'event' ORDER BY seq",
                               (case_id,)).fetchall()
        return [(raw, datetime.fromisoformat(received)) for raw, received in rows]

    def journal_events(self) -> Iterable[bytes]:
        for (raw,) in self.db.execute("SELECT raw FROM journal WHERE kind = 'event' ORDER BY seq"):
            yield raw

    # ----- referrals -----

    def referrals(self, status: str | None, department: str | None, cursor: int | None, limit: int) -> ReferralPage:
        sql = ("SELECT r.seq, r.record FROM referrals r WHERE r.version ="
               " (SELECT MAX(version) FROM referrals WHERE referral_id = r.referral_id)")
        params: list = []
        if status is not None:
            sql += " AND r.status = ?"
            params.append(status)
        if department is not None:
            sql += " AND r.department = ?"
            params.append(department)
        if cursor is not None:
            sql += " AND r.seq < ?"
            params.append(cursor)
        sql += " ORDER BY r.seq DESC LIMIT ?"
        rows = self.db.execute(sql, [*params, limit + 1]).fetchall()
        more = len(rows) > limit
        rows = rows[:limit]
        return ReferralPage(items=[Referral.model_validate_json(r) for _, r in rows],
                            next_cursor=rows[-1][0] if more else None)

    def referral_versions(self, referral_or_case_id: str) -> list[Referral]:
        rows = self.db.execute("SELECT record FROM referrals WHERE referral_id = ? OR case_id = ? ORDER BY version",
                               (referral_or_case_id, referral_or_case_id)).fetchall()
        return [Referral.model_validate_json(r) for (r,) in rows]


def redact(data: dict) -> dict:
    """Applicant identities never leave the monitor: only their hash is shown."""
    if "applicant_id" in data:
        data = {**data, "applicant_id": f"hash:{hash_applicant(str(data['applicant_id']))}"}
    return data
