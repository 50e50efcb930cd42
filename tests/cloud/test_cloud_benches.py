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
