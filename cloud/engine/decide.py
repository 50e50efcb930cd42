"""The rollout engine's decision core: `decide(deployment, targets, events, now)
-> actions`. No I/O, no clock of its own: the same inputs give the same
actions, which is what lets a restarted cloud pick up where it stopped.

Rules
- Deployment: pending -> running <-> paused -> completed | failed |
  rolled_back | cancelled. User commands are checked against ALLOWED;
  an illegal one raises `IllegalTransition` and nothing changes.
- Target: pending -> deploying -> success | failed | rolled_back | skipped.
- Batch strategies (all_at_once, rolling, canary) deploy batch after batch:
  a batch is `deploy`ed, watched until every target settles, then the
  engine waits the strategy's delay (batch_delay, canary_delay) before the
  next one. While it waits it keeps watching the batch just done.
- A batch fails when its failures exceed `failure_threshold` percent of it
  (exactly at the threshold passes); a canary batch fails on any failure.
  Failure is decided as soon as it is certain, not when the batch ends.
- Rate control (batch strategies, when `max_per_minute` or `base_per_minute`
  is set): a batch's deploys go out at most at the current rate, a token
  bucket that starts with one deploy and holds at most RATE_BURST_S of
  them; with a ramp the rate starts at base_per_minute and is multiplied
  by increment_factor after every increment_after_successes successes, up
  to max_per_minute. Targets not sent yet stay pending (their timeout has
  not started); pause holds them too.
- With `min_executed`, failure_threshold is judged over every target of
  the deployment that finished (success or failed), once at least
  min_executed have, instead of batch by batch (a canary failure still
  fails at once).
- blue_green: `stage` everywhere, wait until all staged, wait switch_delay,
  `activate` everywhere; any failure switches every applied target back.
- A failed deployment with auto_rollback sends `rollback` to every target
  whose new flow may be live (`applied`), and becomes rolled_back; without
  it, or when nothing was applied, it becomes failed. Either way pending
  targets are skipped and in-flight ones cancelled.
- Pause stops new batches, delays and the blue-green switch from
  advancing; acks, failures and timeouts are still handled.
- No target stays deploying past `timeout` (from when its current command
  was sent); a staged blue-green target waiting for the switch is not
  waiting on the device, so its clock is not running.
- Acks: a repeated or older ack of a step changes nothing; an ack of a
  step other than the target's current one is stale, except a late
  `applied`/`healthy` after the target was cancelled or timed out (the
  device took the new flow after all): then the target is rolled back if
  the deployment was, or counted a late success if it is still wanted.
"""

from __future__ import annotations

import copy
import math

from cloud.errors import Conflict
from cloud.engine.state import (
    FINISHED, Ack, Cancel, Deployment, Pause, Resume, Rollback, Send, Start, Target,
    UpdateDeployment, UpdateTarget,
)


class IllegalTransition(Conflict):
    """A user command that the deployment's status does not allow."""


ALLOWED = {
    Start: {"pending"},
    Pause: {"running"},
    Resume: {"paused"},
    Cancel: {"pending", "running", "paused"},
    Rollback: {"running", "paused", "completed", "failed"},
}
_VERB = {Start: "start", Pause: "pause", Resume: "resume", Cancel: "cancel", Rollback: "roll back"}

# How far a step's acks have got; a lower or equal rank is a repeat.
_RANK = {"received": 1, "staged": 2, "applied": 3, "healthy": 4}
_FAILURES = {"failed", "rejected", "rolled_back"}
_OPEN = {"pending", "deploying"}
_TIMEOUT = "timeout"
RATE_BURST_S = 5.0  # the most deploys the rate lets out at once: this many seconds of them (at least one)


def plan_batches(strategy: str, settings: dict, count: int) -> list[int]:
    """The batch index of each of `count` targets, in target order."""
    if strategy == "rolling":
        size = settings["batch_size"]
        return [i // size for i in range(count)]
    if strategy == "canary":
        canaries = min(count, max(1, math.ceil(count * settings["canary_percentage"] / 100)))
        return [0 if i < canaries else 1 for i in range(count)]
    return [0] * count


def decide(deployment: Deployment, targets: list[Target], events, now: float, in_place: bool = False,
           by_id: dict[str, Target] | None = None) -> list:
    """The actions that follow from `events` at time `now`. The inputs are
    not modified; `state.apply` applies the returned actions.

    `in_place=True` is for a caller that would apply the actions to its own
    `targets` anyway (the storage shell's kept copy): they are changed as
    the actions say, instead of copying 100,000 of them every step. If
    this raises, those targets are half-changed: the caller drops them.
    With it, `by_id` may give the caller's own index of those targets by
    device id (kept beside them), instead of one built every step."""
    core = _Core(deployment, targets, now, in_place, by_id)
    for event in events:
        core.handle(event)
    core.advance()
    return core.actions


def _clone(state):
    """A shallow copy of a state dataclass; copy.copy's generic path costs
    several times more, and a big rollout copies 100,000 targets a step."""
    twin = object.__new__(type(state))
    twin.__dict__.update(state.__dict__)
    return twin


class _Core:
    def __init__(self, deployment: Deployment, targets: list[Target], now: float, in_place: bool = False,
                 by_id: dict[str, Target] | None = None):
        self.dep = _clone(deployment)
        self.targets = list(targets) if in_place else [_clone(t) for t in targets]
        self.by_id = by_id if in_place and by_id is not None else {t.device_id: t for t in self.targets}
        self.s = deployment.settings
        self.now = now
        self.actions: list = []

    # -- recording ---------------------------------------------------------

    def _set_dep(self, **fields):
        changed = {k: v for k, v in fields.items() if getattr(self.dep, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(self.dep, key, value)
            self.actions.append(UpdateDeployment(changed))
        return bool(changed)

    def _set(self, target: Target, **fields):
        changed = {k: v for k, v in fields.items() if getattr(target, k) != v}
        if changed:
            for key, value in changed.items():
                setattr(target, key, value)
            self.actions.append(UpdateTarget(target.device_id, changed))
        return bool(changed)

    def _send(self, target: Target, step: str, **fields):
        self._set(target, step=step, ack="", sent_at=self.now, **fields)
        self.actions.append(Send(target.device_id, step))

    # -- events ------------------------------------------------------------

    def handle(self, event):
        kind = type(event)
        if kind is Ack:
            self._on_ack(event)
            return
        allowed = ALLOWED[kind]
        if self.dep.status not in allowed:
            raise IllegalTransition(
                f"cannot {_VERB[kind]} a deployment that is {self.dep.status}",
                current_status=self.dep.status, allowed=sorted(allowed))
        if kind is Start:
            self._set_dep(status="running", started_at=self.now)
            self._begin()
        elif kind is Pause:
            self._set_dep(status="paused")
        elif kind is Resume:
            self._set_dep(status="running")
        elif kind is Cancel:
            self._stop("cancelled", event.reason)
        elif kind is Rollback:
            self._rollback(event.reason)

    def _on_ack(self, ack: Ack):
        target = self.by_id.get(ack.device_id)
        if target is None or ack.step == "cancel":
            return
        if ack.step == "rollback":
            if target.step == "rollback" and ack.state in ("rolled_back", "rejected") and target.ack != ack.state:
                self._set(target, ack=ack.state, applied=False)
            return
        if ack.step != target.step:
            late = target.step == "cancel" and ack.step in ("deploy", "activate")
            if late and ack.state in ("applied", "healthy"):
                self._set(target, applied=True)
                self._after_late_apply(target, ack)
            return
        if ack.state in _RANK:
            if _RANK[ack.state] <= _RANK.get(target.ack, 0):
                return  # a repeat, or an older ack overtaken by a newer one
            fields = {"ack": ack.state}
            if ack.state in ("applied", "healthy"):
                fields["applied"] = True
            self._set(target, **fields)
            confirmed = ack.state == "healthy" or (ack.state == "applied" and not self.s["health_check"])
            if confirmed and ack.step in ("deploy", "activate"):
                if target.status == "deploying":
                    self._set(target, status="success", reason="")
                elif target.status == "failed" and target.reason.startswith(_TIMEOUT):
                    self._after_late_apply(target, ack)
            elif target.applied and target.status != "deploying":
                self._after_late_apply(target, ack)
        elif ack.state in _FAILURES:
            if target.status in ("deploying", "success") or (
                    target.status == "failed" and target.reason.startswith(_TIMEOUT)):
                what = {"rolled_back": "rolled back on the device", "rejected": "rejected by the device",
                        "failed": "failed on the device"}[ack.state]
                fields = {"status": "failed", "ack": ack.state, "reason": f"{what}: {ack.reason}".rstrip(": ")}
                if ack.state == "rolled_back":
                    fields["applied"] = False
                self._set(target, **fields)

    def _after_late_apply(self, target: Target, ack: Ack):
        """The device took the new flow after it was given up on."""
        if self.dep.status == "rolled_back" or (self.dep.status == "failed" and self.s["auto_rollback"]):
            self._send(target, "rollback", status="rolled_back", reason="applied after the deployment failed")
            self._set_dep(status="rolled_back")
            return
        confirmed = ack.state == "healthy" or (ack.state == "applied" and not self.s["health_check"])
        if confirmed and self.dep.status != "cancelled":
            self._set(target, status="success", reason="confirmed after its timeout")

    # -- the strategy --------------------------------------------------------

    def advance(self):
        self._timeouts()
        paced = self.s.get("max_per_minute") or self.s.get("base_per_minute")
        if paced and self.dep.status == "running" and self.dep.phase == "batch":
            self._release()
        for _ in range(len(self.targets) + 8):  # each pass moves at least one phase, or stops
            if self.dep.status not in ("running", "paused") or not self._step():
                break

    def _timeouts(self):
        limit = self.s["timeout"]
        for t in self.targets:
            if t.status != "deploying" or t.step not in ("deploy", "stage", "activate"):
                continue
            if t.step == "stage" and t.ack == "staged":
                continue
            if t.sent_at is not None and self.now - t.sent_at >= limit:
                self._set(t, status="failed", reason=f"{_TIMEOUT}: no {'staged' if t.step == 'stage' else 'healthy'} "
                                                     f"ack within {limit:g}s")

    def _step(self) -> bool:
        if self.dep.strategy == "blue_green":
            return self._step_blue_green()
        phase = self.dep.phase
        batch = [t for t in self.targets if t.batch == self.dep.batch]
        failure = self._batch_failure(batch)
        if failure:
            self._fail(failure)
            return True
        if phase == "batch":
            if any(t.status in _OPEN for t in batch):
                return False
            if self.dep.batch >= self._last_batch():
                return self._complete()
            return self._set_dep(phase="delay", phase_since=self.now)
        if phase == "delay" and self.dep.status == "running":
            delay = self.s["batch_delay"] if self.dep.strategy == "rolling" else self.s.get("canary_delay", 0)
            if self.now - self.dep.phase_since >= delay:
                self._set_dep(phase="batch", batch=self.dep.batch + 1, phase_since=self.now)
                self._deploy_batch()
                return True
        return False

    def _batch_failure(self, batch: list[Target]) -> str:
        failed = [t for t in batch if t.status == "failed"]
        if failed and self.dep.strategy == "canary" and self.dep.batch == 0:
            return f"canary device {failed[0].device_id} failed: {failed[0].reason}"
        if self.s.get("min_executed"):
            return self._sample_failure()
        if not failed:
            return ""
        first = failed[0]
        threshold = self.s["failure_threshold"]
        if len(failed) * 100 > threshold * len(batch):
            return (f"{len(failed)} of {len(batch)} targets in batch {self.dep.batch + 1} failed "
                    f"(over the {threshold:g}% threshold); first: {first.device_id}: {first.reason}")
        return ""

    def _sample_failure(self) -> str:
        executed, failed, first = 0, 0, None
        for t in self.targets:
            if t.status == "success":
                executed += 1
            elif t.status == "failed":
                executed += 1
                failed += 1
                first = first or t
        threshold, sample = self.s["failure_threshold"], self.s["min_executed"]
        if executed >= sample and failed * 100 > threshold * executed:
            return (f"{failed} of the {executed} targets executed failed (over the {threshold:g}% threshold, "
                    f"judged once at least {sample} executed); first: {first.device_id}: {first.reason}")
        return ""

    def _step_blue_green(self) -> bool:
        failed = [t for t in self.targets if t.status == "failed"]
        if failed:
            self._fail(f"{len(failed)} of {len(self.targets)} targets failed during {self.dep.phase}; "
                       f"first: {failed[0].device_id}: {failed[0].reason}")
            return True
        phase = self.dep.phase
        if phase == "stage" and all(t.ack == "staged" for t in self.targets):
            return self._set_dep(phase="switch_wait", phase_since=self.now)
        if phase == "switch_wait" and self.dep.status == "running":
            if self.now - self.dep.phase_since >= self.s["switch_delay"]:
                self._set_dep(phase="activate", phase_since=self.now)
                for t in self.targets:
                    self._send(t, "activate")
                return True
        if phase == "activate" and all(t.status == "success" for t in self.targets):
            return self._complete()
        return False

    def _begin(self):
        if self.dep.strategy == "blue_green":
            self._set_dep(phase="stage", phase_since=self.now)
            for t in self.targets:
                self._send(t, "stage", status="deploying")
        else:
            self._set_dep(phase="batch", batch=0, phase_since=self.now)
            self._deploy_batch()

    def _deploy_batch(self):
        self._release()

    def _release(self):
        """Send `deploy` to the batch's pending targets, as many as the rate allows."""
        paced = self.s.get("max_per_minute") or self.s.get("base_per_minute")
        pending = [t for t in self.targets if t.batch == self.dep.batch and t.status == "pending"]
        if not pending:
            return
        for t in pending[:self._allowance(len(pending))] if paced else pending:
            self._send(t, "deploy", status="deploying")

    def _allowance(self, wanted: int) -> int:
        s = self.s
        top = s.get("max_per_minute") or math.inf
        pace = dict(self.dep.pace or {})
        if "rate" not in pace:  # the first deploy of the deployment goes at once
            pace = {"rate": float(min(s.get("base_per_minute") or top, top)), "credit": 1.0, "at": self.now,
                    "raised_at": 0}
        if s.get("base_per_minute"):
            successes = sum(1 for t in self.targets if t.status == "success")
            step = s["increment_after_successes"]
            while pace["rate"] < top and successes - pace["raised_at"] >= step:
                pace["rate"] = min(top, pace["rate"] * s["increment_factor"])
                pace["raised_at"] += step
        rate = pace["rate"]
        credit = min(pace["credit"] + rate * max(0.0, self.now - pace["at"]) / 60,
                     max(1.0, rate * RATE_BURST_S / 60))
        n = min(wanted, int(credit + 1e-9))
        pace.update(credit=credit - n, at=self.now)
        self._set_dep(pace=pace)
        return n

    def _last_batch(self) -> int:
        return max((t.batch for t in self.targets), default=0)

    def _complete(self) -> bool:
        return self._set_dep(status="completed", phase="done", finished_at=self.now)

    # -- ending ----------------------------------------------------------------

    def _fail(self, reason: str):
        if self.s["auto_rollback"] and any(t.applied for t in self.targets):
            self._rollback(reason)
        else:
            self._stop("failed", reason)

    def _stop(self, status: str, reason: str):
        """End without reverting: nothing new is sent except cancels."""
        for t in self.targets:
            if t.status == "pending":
                self._set(t, status="skipped", reason=f"deployment {status}")
            elif t.status == "deploying" and not t.applied:
                self._send(t, "cancel", status="skipped", reason=f"cancelled in flight: deployment {status}")
        self._set_dep(status=status, phase="done", finished_at=self.now, reason=reason)

    def _rollback(self, reason: str):
        for t in self.targets:
            if t.applied and t.step != "rollback":
                self._send(t, "rollback", status="rolled_back", reason=f"rolled back: {reason}")
            elif t.status == "pending":
                self._set(t, status="skipped", reason="deployment rolled back")
            elif t.status == "deploying":
                self._send(t, "cancel", status="skipped", reason="cancelled in flight: deployment rolled back")
        self._set_dep(status="rolled_back", phase="done", finished_at=self.now, reason=reason)
