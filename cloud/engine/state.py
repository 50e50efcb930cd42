"""What the rollout engine reasons about: a deployment, its targets, the
events that happen to them and the actions the engine asks for.

Plain dataclasses with no I/O, so `decide` stays a pure function and the
tests can build any situation by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DEPLOYMENT_STATUSES = ("pending", "running", "paused", "completed", "failed", "rolled_back", "cancelled")
FINISHED = frozenset({"completed", "failed", "rolled_back", "cancelled"})
TARGET_STATUSES = ("pending", "deploying", "success", "failed", "rolled_back", "skipped")


@dataclass
class Deployment:
    id: str
    strategy: str
    settings: dict  # resolved by cloud.engine.settings.resolve
    status: str = "pending"
    phase: str = ""  # batch | delay (batch strategies); stage | switch_wait | activate (blue_green); done
    batch: int = 0  # index of the batch being deployed or waited after
    phase_since: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    reason: str = ""
    # Rate control (settings max_per_minute, base_per_minute): the current
    # rate a minute, the deploys it allows that are not sent yet (`credit`)
    # as of `at`, and the successes counted at the last raise of the ramp.
    pace: dict | None = None


@dataclass
class Target:
    device_id: str
    batch: int = 0
    status: str = "pending"
    step: str = ""  # the last command step sent to it
    ack: str = ""  # the furthest ack state received for that step
    sent_at: float | None = None
    # The new version may be live on the device (it acked applied/healthy
    # and has not rolled back since): only such targets get a rollback,
    # because a rollback sent to a device still on the old flow would take
    # it back one flow too far.
    applied: bool = False
    reason: str = ""


# Events -------------------------------------------------------------------

@dataclass(frozen=True)
class Start:
    pass


@dataclass(frozen=True)
class Pause:
    pass


@dataclass(frozen=True)
class Resume:
    pass


@dataclass(frozen=True)
class Cancel:
    reason: str = "cancelled by user"


@dataclass(frozen=True)
class Rollback:
    reason: str = "rolled back by user"


@dataclass(frozen=True)
class Ack:
    """A device's ack of the command `step` of this deployment."""

    device_id: str
    step: str
    state: str
    reason: str = ""


# Actions ------------------------------------------------------------------

@dataclass(frozen=True)
class UpdateDeployment:
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class UpdateTarget:
    device_id: str
    fields: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Send:
    """Send command `step` to a target. Its id is derived from deployment,
    device and step (shared_schema.commands.command_id), so sending it again is harmless: the device acks a
    repeated id without applying it again."""

    device_id: str
    step: str


def apply(deployment: Deployment, targets: list[Target], actions) -> None:
    """Apply the state changes among `actions` in place (sends are the
    driver's business)."""
    by_id = {t.device_id: t for t in targets}
    for action in actions:
        if isinstance(action, UpdateDeployment):
            for key, value in action.fields.items():
                setattr(deployment, key, value)
        elif isinstance(action, UpdateTarget):
            target = by_id[action.device_id]
            for key, value in action.fields.items():
                setattr(target, key, value)
