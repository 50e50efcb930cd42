"""The cloud's benchmarks still run (tiny sizes; the figures are theirs to print, not ours to time)."""

from __future__ import annotations

import argparse
import shutil

import pytest

from tools.bench import api, ingest, rollout


def test_ingest_bench_stores_every_record():
    result = ingest.run(argparse.Namespace(records=400, handover=120))
    assert result["node_records"] == 400 and result["node_records_per_s"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("wrk"), reason="needs wrk (make setup installs it)")
def test_api_bench_measures_both_servers_with_wrk():
    result = api.run(argparse.Namespace(seconds=1, concurrency=4))
    assert result["bare_rps"] > 0 and result["fleetflow_rps"] > 0 and result["errors"] == 0
    assert result["load_generator"] == "wrk" and set(result["fleetflow_latency"]) == {"p50_ms", "p75_ms", "p90_ms",
                                                                                      "p99_ms"}


def test_api_bench_reads_wrks_report():
    report = """Running 5s test @ http://127.0.0.1:1/
  Latency Distribution
     50%  845.00us
     75%    1.20ms
     90%    2.01ms
     99%    1.10s
  52000 requests in 5.00s, 10.00MB read
  Non-2xx or 3xx responses: 3
Requests/sec:  10400.50
"""
    got = api.parse_wrk(report)
    assert got == {"rps": 10400.5, "errors": 3,
                   "latency": {"p50_ms": 0.845, "p75_ms": 1.2, "p90_ms": 2.01, "p99_ms": 1100.0}}


def test_api_bench_says_when_wrk_is_missing(monkeypatch):
    monkeypatch.setattr(api.shutil, "which", lambda name: None)
    result = api.run(argparse.Namespace(seconds=1, concurrency=4))
    assert result["ok"] is False and "wrk is not installed" in result["error"]


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="needs Mosquitto")
def test_rollout_bench_completes_a_small_fleet():
    result = rollout.run(argparse.Namespace(devices=30, strategy="rolling", batch_size=10, trace=False))
    assert result["status"] == "completed" and result["completed_targets"] == 30
    assert result["rss_bytes"] > 10_000_000 and result["cloud_cpu_s"] >= 0.0 and result["database"] == "sqlite"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="needs Mosquitto")
def test_rollout_bench_runs_on_a_throwaway_postgresql():
    from tools.infra.pgcluster import server_bin

    pytest.importorskip("psycopg2")
    if server_bin() is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl")
    result = rollout.run(argparse.Namespace(devices=20, strategy="all_at_once", postgres=True))
    assert (result["status"], result["completed_targets"], result["database"]) == ("completed", 20, "postgresql")
