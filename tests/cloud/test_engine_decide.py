"""The rollout engine's pure core, driven with a fake clock."""

from __future__ import annotations

import pytest

from cloud.engine import settings as engine_settings
from cloud.engine.decide import IllegalTransition, decide, plan_batches
from cloud.engine.state import (
    Ack, Cancel, Deployment, Pause, Resume, Rollback, Send, Start, Target, apply,
)


class Fleet:
    """A deployment and its targets, advanced by decide() on a fake clock."""

    def __init__(self, strategy, count, **config):
        self.s = engine_settings.resolve(strategy, config)
        self.dep = Deployment(id="dep_1", strategy=strategy, settings=self.s)
        self.targets = [Target(device_id=f"d{i}", batch=b)
                        for i, b in enumerate(plan_batches(strategy, self.s, count))]
        self.now = 1000.0
        self.sent: list[tuple[str, str]] = []

    def at(self, seconds, *events):
        """Advance the clock to start+seconds and feed `events`."""
        self.now = 1000.0 + seconds
        actions = decide(self.dep, self.targets, list(events), self.now)
        apply(self.dep, self.targets, actions)
        new = [(a.device_id, a.step) for a in actions if isinstance(a, Send)]
        self.sent += new
        return actions, new

    def ok(self, seconds, *devices, step="deploy"):
        return self.at(seconds, *[Ack(d, step, s) for d in devices for s in ("received", "applied", "healthy")])

    def status(self, device):
        return next(t.status for t in self.targets if t.device_id == device)

    def statuses(self):
        return [t.status for t in self.targets]


def ids(n, start=0):
    return [f"d{i}" for i in range(start, start + n)]


# -- settings ----------------------------------------------------------------

@pytest.mark.parametrize("text, seconds", [
    ("5m", 300), ("30s", 30), ("2h", 7200), ("250ms", 0.25), ("45", 45), (45, 45), (1.5, 1.5), ("1.5m", 90),
    ("1d", 86400), ("0.3s", 0.3),
])
def test_durations_parse_to_seconds(text, seconds):
    assert engine_settings.parse_duration(text) == seconds


@pytest.mark.parametrize("bad, says", [
    ("5 minutes", "like '30s'"), ("-3", "like '30s'"), (-1, "negative"), (True, "number of seconds"),
    ("", "like '30s'"), (None, "like '30s'"), ("m", "like '30s'"),
    (float("nan"), "finite"), (float("inf"), "finite"), (1e308, "at most 30 days"), ("99999h", "at most 30 days"),
])
def test_bad_durations_are_refused(bad, says):
    with pytest.raises(ValueError, match=says):
        engine_settings.parse_duration(bad)


def test_the_longest_duration_is_accepted():
    assert engine_settings.parse_duration("30d") == engine_settings.MAX_DURATION_S


@pytest.mark.parametrize("strategy, key, value", [
    ("all_at_once", "timeout", 1800), ("all_at_once", "auto_rollback", True), ("all_at_once", "health_check", True),
    ("rolling", "batch_size", 10), ("rolling", "batch_delay", 300), ("rolling", "failure_threshold", 20),
    ("rolling", "timeout", 1800), ("canary", "canary_percentage", 10), ("canary", "canary_delay", 1800),
    ("canary", "timeout", 7200), ("blue_green", "switch_delay", 600), ("blue_green", "timeout", 3600),
    ("blue_green", "auto_rollback", True),
])
def test_strategy_defaults_are_seed_001s(strategy, key, value):
    assert engine_settings.resolve(strategy, {})[key] == value


def test_config_problems_point_at_every_bad_key():
    with pytest.raises(engine_settings.Invalid) as info:
        engine_settings.resolve("canary", {"batch_size": 5, "canary_delay": "soon", "failure_threshold": "120%"})
    pointers = sorted(p.pointer for p in info.value.problems)
    assert pointers == ["/config/batch_size", "/config/canary_delay", "/config/failure_threshold"]


def test_health_rule_problems_point_inside_the_rule():
    with pytest.raises(engine_settings.Invalid) as info:
        engine_settings.resolve("rolling", {"health": {"runs": "x", "seconds": -1, "max_error_rate": 2, "rnus": 3}})
    assert [(p.pointer, p.message) for p in info.value.problems] == [
        ("/config/health/runs", "must be a whole number of good runs, 0 or more"),
        ("/config/health/seconds", "a duration cannot be negative"),
        ("/config/health/max_error_rate", "must be a fraction from 0 to 1"),
        ("/config/health/rnus", "unknown health setting 'rnus' (runs, seconds, max_error_rate)"),
    ]
    with pytest.raises(engine_settings.Invalid) as info:
        engine_settings.resolve("rolling", {"health": 5})
    assert [p.pointer for p in info.value.problems] == ["/config/health"]


def test_a_partial_health_rule_keeps_the_other_defaults():
    rule = engine_settings.resolve("canary", {"health": {"runs": 0, "seconds": "1m"}})["health"]
    assert rule == {"runs": 0, "seconds": 60, "max_error_rate": engine_settings.HEALTH_DEFAULT["max_error_rate"]}


def test_seed_001_rolling_config_resolves():
    s = engine_settings.resolve("rolling", {"batch_size": 5, "batch_delay": "5m", "auto_rollback": True,
                                            "health_check": True})
    assert (s["batch_size"], s["batch_delay"], s["failure_threshold"]) == (5, 300, 20)


@pytest.mark.parametrize("strategy, config, count, batches", [
    ("rolling", {"batch_size": 2}, 5, [0, 0, 1, 1, 2]),
    ("canary", {}, 10, [0] + [1] * 9),
    ("canary", {}, 25, [0, 0, 0] + [1] * 22),  # 10 % of 25 rounds up to 3
    ("canary", {"canary_percentage": 50}, 1, [0]),
    ("all_at_once", {}, 3, [0, 0, 0]),
    ("blue_green", {}, 2, [0, 0]),
])
def test_batches_are_planned_per_strategy(strategy, config, count, batches):
    assert plan_batches(strategy, engine_settings.resolve(strategy, config), count) == batches


# -- all at once ---------------------------------------------------------------

def test_all_at_once_deploys_everywhere_and_completes_when_all_are_healthy():
    f = Fleet("all_at_once", 3)
    _, sent = f.at(0, Start())
    assert sent == [("d0", "deploy"), ("d1", "deploy"), ("d2", "deploy")]
    f.ok(5, "d0", "d1")
    assert f.dep.status == "running"
    f.ok(6, "d2")
    assert (f.dep.status, f.statuses()) == ("completed", ["success"] * 3)


def test_all_at_once_failure_rolls_back_the_applied_and_cancels_the_rest():
    f = Fleet("all_at_once", 3)
    f.at(0, Start())
    f.ok(1, "d0")
    f.at(2, Ack("d1", "deploy", "received"))
    _, sent = f.at(3, Ack("d2", "deploy", "rolled_back", "crash: ZeroDivisionError"))
    assert f.dep.status == "rolled_back"
    assert sorted(sent) == [("d0", "rollback"), ("d1", "cancel")]  # d2 rolled itself back already
    assert f.statuses() == ["rolled_back", "skipped", "failed"]
    assert "crash: ZeroDivisionError" in f.dep.reason


def test_without_auto_rollback_a_failure_fails_without_reverting():
    f = Fleet("all_at_once", 2, auto_rollback=False)
    f.at(0, Start())
    f.ok(1, "d0")
    _, sent = f.at(2, Ack("d1", "deploy", "rejected", "bad signature"))
    assert f.dep.status == "failed" and sent == []
    assert f.statuses() == ["success", "failed"]


def test_health_check_off_counts_applied_as_success():
    f = Fleet("all_at_once", 1, health_check=False)
    f.at(0, Start())
    f.at(1, Ack("d0", "deploy", "applied"))
    assert f.dep.status == "completed"


# -- rolling -------------------------------------------------------------------

@pytest.mark.parametrize("failures, outcome", [
    (0, "running"),
    (1, "running"),      # 1 of 5 is exactly 20 %: at the threshold passes
    (2, "rolled_back"),  # 2 of 5 is 40 %: over it
])
def test_rolling_threshold_is_exceeded_only_above_it(failures, outcome):
    f = Fleet("rolling", 10, batch_size=5, batch_delay="5m")
    f.at(0, Start())
    fail = ids(failures)
    f.at(1, *[Ack(d, "deploy", "rolled_back", "error_rate 0.60 > 0.25") for d in fail])
    f.ok(2, *ids(5 - failures, failures))
    assert f.dep.status == outcome
    if outcome == "running":
        assert f.dep.phase == "delay"


def test_rolling_fails_as_soon_as_the_threshold_is_certainly_exceeded():
    f = Fleet("rolling", 10, batch_size=5)
    f.at(0, Start())
    f.ok(1, "d0")
    _, sent = f.at(2, Ack("d1", "deploy", "failed", "write"), Ack("d2", "deploy", "rejected", "seq"))
    assert f.dep.status == "rolled_back"  # d3 and d4 still in flight: no need to wait
    assert sorted(sent) == [("d0", "rollback"), ("d3", "cancel"), ("d4", "cancel")]
    assert f.statuses()[5:] == ["skipped"] * 5


def test_rolling_waits_batch_delay_exactly_between_batches():
    f = Fleet("rolling", 4, batch_size=2, batch_delay="5m")
    f.at(0, Start())
    f.ok(10, "d0", "d1")
    assert f.at(309.9)[1] == []
    assert f.at(310)[1] == [("d2", "deploy"), ("d3", "deploy")]
    f.ok(320, "d2", "d3")
    assert f.dep.status == "completed"


def test_pause_inside_a_batch_lets_it_finish_but_holds_the_next():
    f = Fleet("rolling", 4, batch_size=2, batch_delay="30s")
    f.at(0, Start())
    f.at(1, Pause())
    f.ok(5, "d0", "d1")  # the batch in flight finishes while paused
    assert (f.dep.status, f.statuses()[:2]) == ("paused", ["success", "success"])
    assert f.at(500)[1] == []  # the delay is long over but nothing starts
    _, sent = f.at(600, Resume())
    assert sent == [("d2", "deploy"), ("d3", "deploy")]


def test_a_failure_while_paused_still_rolls_back():
    f = Fleet("rolling", 4, batch_size=2)
    f.at(0, Start())
    f.ok(1, "d0")
    f.at(2, Pause())
    f.at(3, Ack("d1", "deploy", "rolled_back", "boot_loop"))
    assert f.dep.status == "rolled_back"


# -- canary --------------------------------------------------------------------

def test_canary_failure_rolls_everything_back():
    f = Fleet("canary", 20)  # 10 %: d0, d1 are the canaries
    _, sent = f.at(0, Start())
    assert sent == [("d0", "deploy"), ("d1", "deploy")]
    f.ok(5, "d0")
    _, sent = f.at(6, Ack("d1", "deploy", "rolled_back", "error_rate 0.50 > 0.25"))
    assert f.dep.status == "rolled_back" and sent == [("d0", "rollback")]
    assert f.statuses()[:2] == ["rolled_back", "failed"] and set(f.statuses()[2:]) == {"skipped"}


def test_canary_is_watched_through_its_delay_then_the_rest_follow():
    f = Fleet("canary", 10, canary_delay="30m")
    f.at(0, Start())
    f.ok(5, "d0")
    assert f.at(5 + 1799)[1] == []
    _, sent = f.at(5 + 1800)
    assert sent == [(d, "deploy") for d in ids(9, 1)]
    f.ok(1900, *ids(9, 1))
    assert f.dep.status == "completed"


def test_a_canary_rolling_back_during_the_watch_rolls_everything_back():
    f = Fleet("canary", 20)
    f.at(0, Start())
    f.ok(5, "d0", "d1")
    _, sent = f.at(600, Ack("d1", "deploy", "rolled_back", "crash: MemoryError"))
    assert f.dep.status == "rolled_back" and sent == [("d0", "rollback")]
    assert f.statuses()[:2] == ["rolled_back", "failed"]
    assert f.at(5000)[1] == []  # the rest never gets it


def test_a_lone_canary_that_rolled_itself_back_fails_the_deployment():
    f = Fleet("canary", 10)
    f.at(0, Start())
    f.ok(5, "d0")
    _, sent = f.at(600, Ack("d0", "deploy", "rolled_back", "crash: MemoryError"))
    assert f.dep.status == "failed" and sent == []  # nothing is live anywhere: nothing to revert
    assert set(f.statuses()[1:]) == {"skipped"}


def test_manual_rollback_mid_canary():
    f = Fleet("canary", 20)
    f.at(0, Start())
    f.ok(5, "d0")
    f.at(6, Ack("d1", "deploy", "applied"))
    _, sent = f.at(7, Rollback())
    assert sorted(sent) == [("d0", "rollback"), ("d1", "rollback")]  # d1 is on trial: it runs the new flow
    assert f.dep.status == "rolled_back" and f.statuses()[:2] == ["rolled_back", "rolled_back"]
    f.at(8, Ack("d0", "rollback", "rolled_back"), Ack("d1", "rollback", "rolled_back"))
    assert [t.ack for t in f.targets[:2]] == ["rolled_back", "rolled_back"]
    assert not any(t.applied for t in f.targets)


# -- timeouts and offline targets -------------------------------------------------

def test_no_target_stays_deploying_past_its_timeout():
    f = Fleet("all_at_once", 2, timeout="10m", auto_rollback=False)
    f.at(0, Start())
    f.ok(1, "d0")
    f.at(599.9)
    assert f.status("d1") == "deploying"
    f.at(600)
    assert f.status("d1") == "failed" and f.targets[1].reason.startswith("timeout")
    assert f.dep.status == "failed"


def test_an_offline_target_times_out_and_counts_against_its_batch():
    f = Fleet("rolling", 4, batch_size=4, timeout="1m")  # d3 is offline: it never answers
    f.at(0, Start())
    f.ok(1, "d0", "d1", "d2")
    f.at(59.9)
    assert f.status("d3") == "deploying"
    f.at(60)
    assert f.status("d3") == "failed" and f.dep.status == "rolled_back"  # 1 of 4 = 25 % > 20 %


def test_offline_targets_over_the_threshold_roll_back():
    f = Fleet("rolling", 5, batch_size=5, timeout="1m")  # d3, d4 offline: 40 %
    f.at(0, Start())
    f.ok(1, "d0", "d1", "d2")
    _, sent = f.at(60)
    assert f.dep.status == "rolled_back"
    assert sorted(sent) == [("d0", "rollback"), ("d1", "rollback"), ("d2", "rollback")]


def test_a_target_that_answers_after_its_timeout_is_a_late_success():
    f = Fleet("rolling", 10, batch_size=5, timeout="1m")
    f.at(0, Start())
    f.ok(1, *ids(4))
    f.at(60)
    assert f.status("d4") == "failed"
    f.ok(70, "d4")  # the device was offline and got the command when it came back
    assert f.status("d4") == "success"


def test_a_target_that_applies_after_a_rollback_is_rolled_back_too():
    f = Fleet("all_at_once", 3)
    f.at(0, Start())
    f.at(1, Ack("d0", "deploy", "rolled_back", "boot_loop"))
    assert f.dep.status == "failed"  # nothing was live anywhere: nothing to revert
    f.at(2, Rollback())
    _, sent = f.at(3, Ack("d1", "deploy", "applied"))  # the cancel came too late
    assert sent == [("d1", "rollback")] and f.status("d1") == "rolled_back"


# -- acks twice, out of order ---------------------------------------------------------

def test_a_repeated_ack_changes_nothing():
    f = Fleet("all_at_once", 2)
    f.at(0, Start())
    f.ok(1, "d0")
    actions, _ = f.at(2, *[Ack("d0", "deploy", s) for s in ("received", "applied", "healthy", "healthy")])
    assert actions == []


def test_acks_out_of_order_do_not_move_a_target_backwards():
    f = Fleet("all_at_once", 2)
    f.at(0, Start())
    f.at(1, Ack("d0", "deploy", "healthy"), Ack("d0", "deploy", "received"), Ack("d0", "deploy", "applied"))
    t = f.targets[0]
    assert (t.status, t.ack, t.applied) == ("success", "healthy", True)


def test_an_ack_of_another_deployments_or_steps_command_is_ignored():
    f = Fleet("blue_green", 1)
    f.at(0, Start())
    actions, _ = f.at(1, Ack("d0", "activate", "healthy"), Ack("nobody", "stage", "staged"))
    assert actions == []


def test_deciding_twice_on_the_same_state_sends_nothing_new():
    f = Fleet("rolling", 4, batch_size=2)
    f.at(0, Start())
    assert f.at(1)[1] == [] and f.at(1)[1] == []


# -- blue-green ------------------------------------------------------------------------

def test_blue_green_stages_everywhere_then_switches_after_the_delay():
    f = Fleet("blue_green", 3, switch_delay="10m", timeout="1m")
    _, sent = f.at(0, Start())
    assert sent == [(d, "stage") for d in ids(3)]
    f.at(5, *[Ack(d, "stage", "staged") for d in ids(2)])
    assert f.dep.phase == "stage"
    f.at(6, Ack("d2", "stage", "staged"))
    assert f.dep.phase == "switch_wait"
    assert f.at(605.9)[1] == [] and set(f.statuses()) == {"deploying"}  # staged targets do not time out
    _, sent = f.at(606)
    assert sent == [(d, "activate") for d in ids(3)]
    f.ok(610, *ids(3), step="activate")
    assert f.dep.status == "completed"


def test_blue_green_staging_failure_fails_without_switching_anything():
    f = Fleet("blue_green", 3)
    f.at(0, Start())
    f.at(1, Ack("d0", "stage", "staged"))
    _, sent = f.at(2, Ack("d1", "stage", "rejected", "size 9000 > 8192"))
    assert f.dep.status == "failed"
    assert sorted(sent) == [("d0", "cancel"), ("d2", "cancel")]


def test_blue_green_activation_failure_switches_everyone_back():
    f = Fleet("blue_green", 3, switch_delay=0)
    f.at(0, Start())
    f.at(1, *[Ack(d, "stage", "staged") for d in ids(3)])
    f.at(1)
    f.ok(2, "d0", step="activate")
    f.at(2, Ack("d1", "activate", "applied"))
    _, sent = f.at(3, Ack("d2", "activate", "rolled_back", "crash"))
    assert f.dep.status == "rolled_back" and sorted(sent) == [("d0", "rollback"), ("d1", "rollback")]


# -- user commands ------------------------------------------------------------------------

@pytest.mark.parametrize("status, event", [
    ("pending", Pause()), ("pending", Resume()), ("pending", Rollback()), ("running", Start()),
    ("running", Resume()), ("paused", Pause()), ("completed", Cancel()), ("completed", Start()),
    ("rolled_back", Rollback()), ("cancelled", Resume()), ("failed", Cancel()),
])
def test_illegal_commands_raise_and_change_nothing(status, event):
    f = Fleet("rolling", 2)
    f.dep.status = status
    before = (repr(f.dep), repr(f.targets))
    with pytest.raises(IllegalTransition):
        f.at(1, event)
    assert (repr(f.dep), repr(f.targets)) == before


def test_cancel_skips_the_pending_and_cancels_the_in_flight():
    f = Fleet("rolling", 4, batch_size=2)
    f.at(0, Start())
    f.ok(1, "d0")
    _, sent = f.at(2, Cancel())
    assert f.dep.status == "cancelled" and sent == [("d1", "cancel")]
    assert f.statuses() == ["success", "skipped", "skipped", "skipped"]


# -- rate control and the abort rule's sample ---------------------------------------

def test_max_per_minute_lets_deploys_out_at_the_rate():
    f = Fleet("all_at_once", 6, max_per_minute=60)
    _, sent = f.at(0, Start())
    assert sent == [("d0", "deploy")]  # the first at once
    assert f.at(0.5)[1] == []
    assert f.at(1)[1] == [("d1", "deploy")]
    assert f.at(3)[1] == [("d2", "deploy"), ("d3", "deploy")]
    assert f.statuses() == ["deploying"] * 4 + ["pending"] * 2  # the rest wait, their timeout not running
    f.ok(4, "d0", "d1", "d2", "d3")
    assert f.dep.status == "running" and f.sent[-1] == ("d4", "deploy")
    f.ok(5, "d4")
    f.ok(6, "d5")
    assert f.dep.status == "completed" and f.dep.pace["rate"] == 60


def test_a_rate_saves_up_at_most_a_few_seconds_of_deploys():
    f = Fleet("all_at_once", 40, max_per_minute=120, timeout="1h")
    f.at(0, Start())
    f.at(1, Pause())
    assert f.at(100)[1] == []  # paused: nothing goes out
    f.at(100, Resume())
    assert len(f.sent) == 1 + 10  # 5 s at 2 a second, not 100 s of them


@pytest.mark.parametrize("successes, rate", [(0, 6), (1, 6), (2, 12), (3, 12), (4, 24), (9, 24)])
def test_the_ramp_multiplies_the_rate_after_every_n_successes_up_to_the_max(successes, rate):
    f = Fleet("all_at_once", 12, base_per_minute=6, increment_factor=2, increment_after_successes=2,
              max_per_minute=24)
    f.at(0, Start())
    for i in range(successes):
        f.at(10 * (i + 1))  # one more deploy every 10 s at 6 a minute
        f.ok(10 * (i + 1), f"d{i}")
    f.at(10 * successes + 5)
    assert f.dep.pace["rate"] == rate


@pytest.mark.parametrize("fails, oks, status", [
    (2, 2, "running"),  # 4 executed: under the sample of 5, not judged yet
    (2, 3, "rolled_back"),  # 2 of 5: 40 % > 20 %
    (1, 4, "running"),  # 1 of 5: exactly 20 % passes
    (0, 0, "running"),
])
def test_failure_threshold_over_a_minimum_sample(fails, oks, status):
    f = Fleet("all_at_once", 10, failure_threshold=20, min_executed=5)
    f.at(0, Start())
    f.at(1, *[Ack(f"d{i}", "deploy", "failed", "boom") for i in range(fails)])
    f.ok(2, *ids(oks, start=fails))
    assert f.dep.status == status
    if status == "rolled_back":
        assert f.dep.reason.startswith("2 of the 5 targets executed failed (over the 20% threshold")


def test_without_a_sample_one_failure_of_all_at_once_fails_it():
    f = Fleet("all_at_once", 10)
    f.at(0, Start())
    f.ok(1, "d1")
    f.at(2, Ack("d0", "deploy", "failed", "boom"))
    assert f.dep.status == "rolled_back"


def test_a_rolling_batch_over_its_threshold_goes_on_while_the_sample_is_small():
    f = Fleet("rolling", 4, batch_size=2, batch_delay=10, failure_threshold=50, min_executed=4)
    f.at(0, Start())
    f.at(1, Ack("d0", "deploy", "failed", "boom"), Ack("d1", "deploy", "failed", "boom"))
    assert f.dep.status == "running"  # 2 of 2 failed, but only 2 executed
    f.at(11)
    f.ok(12, "d2", "d3")
    assert f.dep.status == "completed"  # 2 of 4: 50 % is not over 50 %


def test_a_canary_failure_still_fails_at_once_with_a_sample():
    f = Fleet("canary", 20, min_executed=10, failure_threshold=50)
    f.at(0, Start())
    f.at(1, Ack("d0", "deploy", "failed", "boom"))
    assert f.dep.status == "failed" and f.dep.reason.startswith("canary device d0 failed")


@pytest.mark.parametrize("strategy, config, pointer, says", [
    ("rolling", {"increment_factor": 2}, "/config/increment_factor", "needs base_per_minute"),
    ("rolling", {"increment_after_successes": 3}, "/config/increment_after_successes", "needs base_per_minute"),
    ("canary", {"base_per_minute": 100, "max_per_minute": 50}, "/config/base_per_minute", "above max_per_minute (50)"),
    ("rolling", {"base_per_minute": 10, "increment_factor": 1}, "/config/increment_factor", "above 1"),
    ("rolling", {"max_per_minute": 0}, "/config/max_per_minute", "from 1 to"),
    ("rolling", {"max_per_minute": 2.5}, "/config/max_per_minute", "whole number"),
    ("all_at_once", {"min_executed": 0}, "/config/min_executed", "at least 1"),
    ("blue_green", {"max_per_minute": 10}, "/config/max_per_minute", "not a setting of blue_green"),
])
def test_bad_rate_settings_point_at_the_key(strategy, config, pointer, says):
    with pytest.raises(engine_settings.Invalid) as info:
        engine_settings.resolve(strategy, config)
    [problem] = info.value.problems
    assert problem.pointer == pointer and says in problem.message


def test_a_ramp_takes_defaults_for_what_it_is_not_told():
    s = engine_settings.resolve("rolling", {"base_per_minute": 50, "max_per_minute": 1000})
    assert (s["increment_factor"], s["increment_after_successes"]) == (2.0, 10)
    assert "max_per_minute" not in engine_settings.resolve("rolling", {})  # no rate: as fast as before
