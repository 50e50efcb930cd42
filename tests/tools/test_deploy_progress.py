"""The deploy command's pure parts: the request it builds and the progress it shows."""

from __future__ import annotations

import io

import pytest

from tools import cli

from tools.cli import deploy_progress
from tools.cli.cmd_deploy import deployment_body


def _args(argv):
    return cli.build_parser().parse_args(["deploy", "create", *argv])


@pytest.mark.parametrize("argv, expected", [
    (["f1", "--all"], {"flow_id": "f1", "strategy": "rolling", "all": True,
                       "config": {"auto_rollback": True, "health_check": True}}),
    (["f1", "--devices", "a, b,", "--strategy", "canary", "--canary-percentage", "10", "--canary-delay", "20s"],
     {"flow_id": "f1", "strategy": "canary", "target_devices": ["a", "b"],
      "config": {"auto_rollback": True, "health_check": True, "canary_percentage": 10.0, "canary_delay": "20s"}}),
    (["f2", "--tag", "lab", "--version", "3", "--batch-size", "5", "--no-auto-rollback",
      "--health", '{"runs": 2, "seconds": 1}'],
     {"flow_id": "f2", "strategy": "rolling", "version": 3, "target_tags": ["lab"],
      "config": {"auto_rollback": False, "health_check": True, "batch_size": 5, "health": {"runs": 2, "seconds": 1}}}),
    (["f4", "--all", "--strategy", "all_at_once", "--base-per-minute", "50", "--max-per-minute", "1000",
      "--increment-factor", "1.5", "--increment-after-successes", "20", "--failure-threshold", "5",
      "--min-executed", "100"],
     {"flow_id": "f4", "strategy": "all_at_once", "all": True,
      "config": {"auto_rollback": True, "health_check": True, "failure_threshold": 5.0, "max_per_minute": 1000,
                 "base_per_minute": 50, "increment_factor": 1.5, "increment_after_successes": 20,
                 "min_executed": 100}}),
    (["f5", "--all", "--offline", "skip", "--version", "2", "--force", "--no-rehearse"],
     {"flow_id": "f5", "strategy": "rolling", "all": True, "offline": "skip", "version": 2, "force": True,
      "rehearse": False,
      "config": {"auto_rollback": True, "health_check": True}}),
    (["f3", "--environment", "prod", "--strategy", "blue_green"],
     {"flow_id": "f3", "strategy": "blue_green", "environment": "prod",
      "config": {"auto_rollback": True, "health_check": True}}),
])
def test_deployment_body_from_the_command_line(argv, expected):
    assert deployment_body(_args(argv)) == expected


def test_a_deployment_needs_targets():
    with pytest.raises(SystemExit):
        _args(["f1"])


DEP = {"id": "dep_1", "strategy": "canary", "status": "running", "phase": "canary", "batch": 0,
       "total_targets": 5, "targets": [{"device_id": f"d{i}", "status": s, "batch": min(i, 1)} for i, s in
                                       enumerate(["success", "deploying", "failed", "pending", "pending"])]}


def test_summary_counts_targets_by_status():
    s = deploy_progress.summarize(DEP)
    assert s["counts"] == {"pending": 2, "deploying": 1, "success": 1, "failed": 1, "rolled_back": 0, "skipped": 0}
    assert (s["phase"], s["batch"], s["batches"], s["total"], s["done"]) == ("canary", 0, 2, 5, 2)


def test_render_shows_phase_batch_bar_and_counts():
    head, line = deploy_progress.render(deploy_progress.summarize(DEP), 3.25)
    assert head == "deployment dep_1  canary  running  phase: canary  batch 1/2"
    assert line.startswith("[####xxxx>>>>........] 2/5  pending 2  deploying 1  success 1  failed 1")
    assert line.endswith("3.2s")
    head, _ = deploy_progress.render(deploy_progress.summarize(dict(DEP, rate_per_minute=120.0)), 1)
    assert head.endswith("batch 1/2  120 a minute")  # rate control's current rate


class _Scripted:
    """A deployment that advances one state per poll (the display under test is the real one)."""

    def __init__(self, states):
        self.states = list(states)

    def deployment(self, dep_id):
        return self.states.pop(0) if len(self.states) > 1 else self.states[0]


def test_watch_prints_each_change_once_and_stops_when_finished():
    states = [dict(DEP), dict(DEP), {**DEP, "status": "rolled_back", "phase": "rollback",
                                     "targets": [{"device_id": "d0", "status": "rolled_back", "batch": 0}] * 5}]
    out = io.StringIO()
    dep = deploy_progress.watch(_Scripted(states), "dep_1", interval_s=0, out=out, live=False)
    assert dep["status"] == "rolled_back"
    text = out.getvalue()
    assert text.count("deployment dep_1") == 2  # the repeated state is not printed twice
    assert "rolled_back 5" in text


def test_summary_of_a_list_document_uses_its_counts():
    doc = {"id": "dep_2", "strategy": "rolling", "status": "completed", "phase": "done", "batch": 3,
           "total_targets": 20, "counts": {"success": 18, "failed": 2}}
    s = deploy_progress.summarize(doc)
    assert (s["counts"]["success"], s["counts"]["failed"], s["done"], s["total"], s["batches"]) == (18, 2, 20, 20, None)


def test_demo_event_lines_sum_up_skipped_devices():
    from tools.sim.demo import event_lines

    events = [
        {"at": "2026-01-01T00:00:00.000Z", "kind": "created", "device_id": None, "detail": {}},
        {"at": "2026-01-01T00:00:01.000Z", "kind": "start", "device_id": None, "detail": {}},
        {"at": "2026-01-01T00:00:01.000Z", "kind": "target", "device_id": "d1", "detail": {"status": "deploying"}},
        {"at": "2026-01-01T00:00:01.000Z", "kind": "send", "device_id": "d1", "detail": {"step": "deploy"}},
        {"at": "2026-01-01T00:00:03.500Z", "kind": "target", "device_id": "d1",
         "detail": {"status": "failed", "reason": "error_rate 1.00 > 0.25"}},
        {"at": "2026-01-01T00:00:03.500Z", "kind": "target", "device_id": "d2", "detail": {"status": "skipped"}},
        {"at": "2026-01-01T00:00:03.500Z", "kind": "target", "device_id": "d3", "detail": {"status": "skipped"}},
        {"at": "2026-01-01T00:00:03.500Z", "kind": "status", "device_id": None,
         "detail": {"status": "failed", "reason": "canary device d1 failed"}},
    ]
    assert event_lines(events) == [
        "+ 0.00s  d1       sent deploy",
        "+ 2.50s  d1       failed: error_rate 1.00 > 0.25",
        "+ 2.50s  cloud    deployment failed: canary device d1 failed",
        "        2 devices skipped: they never received this version",
    ]


def test_sse_lines_parse_into_events():
    from tools.cli.client import parse_sse

    lines = [b": keepalive\n", b"\n", b"id: 3\n", b"event: update\n", b'data: {"id": "d",\n', b'data: "x": 1}\n',
             b"\n", b"event: complete\n", b'data: {"status": "completed"}\n', b"\n"]
    assert list(parse_sse(lines)) == [("3", "update", {"id": "d", "x": 1}), ("3", "complete", {"status": "completed"})]


@pytest.mark.parametrize("event, data, expected", [
    ("metadata", {"id": "d", "status": "pending", "targets": []}, {"id": "d", "status": "pending", "targets": []}),
    ("update", {"deployment": {"status": "running", "phase": "batch"},
                "targets": [{"device_id": "a", "status": "deploying"}]},
     {"id": "d", "status": "running", "phase": "batch",
      "targets": [{"device_id": "a", "status": "deploying", "batch": 0}, {"device_id": "b", "status": "pending", "batch": 1}]}),
    ("keepalive", {}, None),
])
def test_stream_events_update_the_deployment_document(event, data, expected):
    doc = {"id": "d", "status": "pending", "targets": [{"device_id": "a", "status": "pending", "batch": 0},
                                                       {"device_id": "b", "status": "pending", "batch": 1}]}
    got = deploy_progress.apply(doc, event, data)
    assert got == (doc if expected is None else expected)
    assert doc["targets"][0]["status"] == "pending"  # the input is left as it was


@pytest.mark.parametrize("rehearsal, expected", [
    (None, None),
    ({"status": "pending", "runs": 20}, "rehearsal: on simulated twins when it starts"),
    ({"status": "running"}, "rehearsing on simulated twins: this version and the one the targets run, fed with "
                            "their recorded readings"),
    ({"status": "passed", "boards": [{"board": "unix-sim", "runs": {"candidate": 20}, "readings_replayed": 6,
                                      "findings": [{"kind": "output_diff"}]}]},
     "rehearsal passed: 20 runs on twins of unix-sim, 6 recorded readings replayed, no new errors, "
     "1 node(s) with different outputs"),
    ({"status": "failed", "reason": "rehearsal: new error: n2: KeyError: temperatur"},
     "rehearsal failed: rehearsal: new error: n2: KeyError: temperatur"),
])
def test_the_rehearsal_in_words(rehearsal, expected):
    assert deploy_progress.rehearsal_text(rehearsal) == expected
