"""Power cuts at block writes of every slot update (a sample of `fleetflow powercut`)."""

from __future__ import annotations

from tools.cli.cmd_powercut import run_sweep


def test_power_cut_sample_every_point_recovers(tmp_path):
    result = run_sweep(sample=3, workdir=tmp_path)
    assert result["failures"] == []
    assert result["cut_points"] >= 100
    assert result["recovered"] == result["cut_points"]
    # both fault variants and every operation were exercised
    ops = {name.split("/")[0] for name in result["ops"]}
    variants = {name.split("/")[1] for name in result["ops"]}
    assert {"stage", "deploy", "activate", "boot_on_trial", "confirm", "rollback_trial",
            "boot_loop", "rollback_cmd", "stage_over_prev"} <= ops
    assert variants == {"cut", "lossy"}


def test_sweep_catches_a_non_atomic_state_write(tmp_path):
    # The negative control: writing the state in place (no rename) must fail
    # at some cut point, or the sweep proves nothing.
    result = run_sweep(sample=5, workdir=tmp_path, unsafe=True)
    assert result["recovered"] < result["cut_points"]
    assert any(f["error"] == "no program" for f in result["failures"])
