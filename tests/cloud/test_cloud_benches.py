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
def test_api_bench_measures_both_servers():
    result = api.run(argparse.Namespace(seconds=0.3, concurrency=4))
    assert result["bare_rps"] > 0 and result["fleetflow_rps"] > 0 and result["errors"] == 0


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="needs Mosquitto")
def test_rollout_bench_completes_a_small_fleet():
    result = rollout.run(argparse.Namespace(devices=30, strategy="rolling", batch_size=10, trace=False))
    assert result["status"] == "completed" and result["completed_targets"] == 30
    assert result["rss_bytes"] > 10_000_000 and result["cloud_cpu_s"] > 0 and result["database"] == "sqlite"


@pytest.mark.slow
@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="needs Mosquitto")
def test_rollout_bench_runs_on_a_throwaway_postgresql():
    from tools.pgcluster import server_bin

    pytest.importorskip("psycopg2")
    if server_bin() is None:
        pytest.skip("needs PostgreSQL's initdb and pg_ctl")
    result = rollout.run(argparse.Namespace(devices=20, strategy="all_at_once", postgres=True))
    assert (result["status"], result["completed_targets"], result["database"]) == ("completed", 20, "postgresql")
