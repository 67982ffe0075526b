"""The engine and an independent SQL implementation of PW-001 (bench/peer.py, DuckDB) agree on
which cases of a simulated city are overdue."""

from __future__ import annotations

from bench.peer import compare
from permitwatch.streams.simulation.city import CitySimulator


def test_engine_and_sql_peer_agree_on_the_overdue_cases(tmp_path):
    log = tmp_path / "city.jsonl"
    with log.open("wb") as out:
        for _, raw in CitySimulator(seed=9, violation_rate=0.3, cases_per_day=200).events(cases=3000):
            out.write(raw + b"\n")
    result = compare(log)
    assert result["overdue_engine"] > 20
    assert (result["only_engine"], result["only_peer"]) == ([], [])
