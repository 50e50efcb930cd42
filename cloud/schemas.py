"""What the API accepts: pydantic models written for the API (not generated
from tables), and `parse` which turns their errors into `Invalid` with JSON
pointers."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from cloud.errors import Invalid, Problem
from shared_schema.models import validation_problems

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
# The largest id or version number the API takes: what a 64-bit database
# column holds (a bigger one would fail in the database, not as bad input).
MAX_NUMBER = 2**63 - 1
# Entries in a target_devices list (duplicates are dropped after the count):
# a fleet bigger than this is chosen by target_tags, environment or `all`.
MAX_TARGETS = 10_000
MAX_TARGET_TAGS = 100
Role = Literal["admin", "operator", "viewer"]
Strategy = Literal["all_at_once", "rolling", "canary", "blue_green"]


def parse(model: type[BaseModel], body: Any, base: tuple = ()):
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        problems = [Problem(p.pointer, p.message) for p in validation_problems(exc, base)]
        raise Invalid(f"invalid {model.__name__} body", problems) from None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FlowMeta(BaseModel):
    """The fields of a flow besides its content (definition or steps), which
    shared_schema.models checks."""

    model_config = ConfigDict(extra="allow")
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    tags: list[str] = Field(default_factory=list)
    boards: list[str] | None = None


class FlowPatch(FlowMeta):
    name: str | None = Field(default=None, min_length=1, max_length=200)


class Publish(_Strict):
    boards: list[str] | None = None


class Restore(_Strict):
    # true: publish a copy of the version as the next one (seed 002);
    # false: only make its content the draft, to edit before publishing.
    publish: StrictBool = True


class Provision(_Strict):
    id: str | None = Field(default=None, pattern=ID_PATTERN)
    name: str = Field(default="", max_length=200)
    board: str
    tags: list[str] = Field(default_factory=list)
    environment: str = Field(default="", max_length=32)


class DevicePatch(_Strict):
    name: str | None = Field(default=None, max_length=200)
    tags: list[str] | None = None
    environment: str | None = Field(default=None, max_length=32)


class DeploymentConfig(BaseModel):
    """A deployment's settings, per strategy (docs/api.md): what the API
    document shows. The values are checked by cloud.engine.settings.resolve,
    which knows which strategy takes which key and names the bad ones."""

    model_config = ConfigDict(extra="allow")
    timeout: Any = Field(None, description="duration: no target stays deploying longer, e.g. '30m'")
    auto_rollback: Any = Field(None, description="bool: roll back what was applied when the deployment fails")
    health_check: Any = Field(None, description="bool: a target succeeds once healthy (else once applied)")
    health: Any = Field(None, description="the device's health rule: {runs, seconds, max_error_rate}")
    failure_threshold: Any = Field(None, description="percent of failed targets over which the deployment fails "
                                                     "(all_at_once, rolling, canary)")
    batch_size: Any = Field(None, description="rolling: targets a batch")
    batch_delay: Any = Field(None, description="rolling: duration between batches")
    canary_percentage: Any = Field(None, description="canary: percent of the targets in the canary")
    canary_delay: Any = Field(None, description="canary: duration the canary is watched")
    switch_delay: Any = Field(None, description="blue_green: duration between all staged and the switch")
    max_per_minute: Any = Field(None, description="rate control: at most this many deploys a minute "
                                                  "(all_at_once, rolling, canary)")
    base_per_minute: Any = Field(None, description="ramp: the rate it starts at, deploys a minute")
    increment_factor: Any = Field(None, description="ramp: the rate is multiplied by this (above 1, at most 5; "
                                                    "default 2)")
    increment_after_successes: Any = Field(None, description="ramp: successes between raises (default 10)")
    min_executed: Any = Field(None, description="abort rule: failure_threshold is judged over every finished "
                                                "target once at least this many finished")


class DeploymentCreate(_Strict):
    flow_id: str
    version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)
    strategy: Strategy = "rolling"
    target_devices: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    target_tags: list[str] = Field(default_factory=list, max_length=MAX_TARGET_TAGS)
    environment: str | None = None
    all: StrictBool = False  # every device (a fleet past MAX_TARGETS too)
    config: DeploymentConfig = Field(default_factory=DeploymentConfig)
    force: StrictBool = False  # deploy a quarantined version named in `version`
    # what happens to targets that are offline (or never seen) when it is created:
    # wait for them (up to the target timeout), skip them, or refuse the deployment
    offline: Literal["wait", "skip", "fail"] = "wait"
    # run it on simulated twins first (cloud/rehearsal.py); None: on for canary,
    # rolling and blue-green and for all_at_once on more than one device
    rehearse: bool | None = None
    rehearsal_runs: int = Field(default=20, ge=1, le=500)


class Quarantine(_Strict):
    reason: str = Field(default="quarantined by hand", min_length=1, max_length=500)


class RollbackBody(_Strict):
    reason: str = Field(default="rolled back by user", max_length=500)


class KeyCreate(_Strict):
    role: Role
    name: str = Field(default="", max_length=128)


class Credentials(_Strict):
    """Register or log in (cloud.sessions checks the address and the password's length)."""

    email: str = Field(max_length=254)
    password: str = Field(max_length=200)


class PasswordChange(_Strict):
    """Change your own password: the current one proves it is you (cloud.sessions checks the new one's length)."""

    current_password: str = Field(max_length=200)
    new_password: str = Field(max_length=200)


class UserCreate(Credentials):
    role: Role


class UserPatch(_Strict):
    role: Role | None = None
    password: str | None = Field(default=None, max_length=200)


class Overrides(_Strict):
    vars: dict[str, Any] = Field(default_factory=dict)
    params: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ExecutionCreate(_Strict):
    flow_id: str
    version: int | None = Field(default=None, ge=1, le=MAX_NUMBER)
    target_devices: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    target_tags: list[str] = Field(default_factory=list, max_length=MAX_TARGET_TAGS)
    environment: str | None = None
    all: StrictBool = False  # every connected device (with include_offline: every device)
    include_offline: StrictBool = False
    overrides: Overrides = Field(default_factory=Overrides)
    timeout: Any = "60s"  # "30s", "2m" or seconds


class WebhookCreate(_Strict):
    url: str = Field(pattern=r"^https?://", max_length=2000)
    # event names ("deployment.completed"), prefixes ending in "." ("deployment."), or "*"
    events: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    secret: str | None = Field(default=None, min_length=16, max_length=200)


class PipelineStep(_Strict):
    flow_id: str
    on_failure: Literal["stop", "continue"] = "stop"
    # waits on a person: once its execution ends, the step stays running
    # until POST .../runs/{run}/advance says how it went
    manual: StrictBool = False


class PipelineTargets(_Strict):
    target_devices: list[str] = Field(default_factory=list, max_length=MAX_TARGETS)
    target_tags: list[str] = Field(default_factory=list, max_length=MAX_TARGET_TAGS)
    environment: str | None = None
    all: StrictBool = False


class PipelineCreate(_Strict):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    steps: list[PipelineStep] = Field(min_length=2)
    targets: PipelineTargets = Field(default_factory=lambda: PipelineTargets(all=True))


class PipelinePatch(_Strict):
    """A pipeline's new name, description, steps or targets: what is given
    replaces the field whole (steps as a list), checked as on create."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=10_000)
    steps: list[PipelineStep] | None = Field(default=None, min_length=2)
    targets: PipelineTargets | None = None


class RunAdvance(_Strict):
    """End a run's current step by hand (seed 003's "Step Done" / "Step Failed")."""

    success: StrictBool


class SeedRunAction(_Strict):
    """Seed 003's `POST /api/pipelines/run` body: `start` needs pipeline_id,
    `advance` run_id and success, `cancel` run_id."""

    action: Literal["start", "advance", "cancel"]
    pipeline_id: str | None = None
    run_id: str | None = None
    success: StrictBool | None = None

    NEEDS: ClassVar[dict] = {"start": ("pipeline_id",), "advance": ("run_id", "success"), "cancel": ("run_id",)}

    def missing(self) -> list[Problem]:
        return [Problem(f"/{name}", f"required for action {self.action!r}")
                for name in self.NEEDS[self.action] if getattr(self, name) is None]
