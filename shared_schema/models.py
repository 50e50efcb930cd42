"""Flow definitions as people author them, and as the API stores them (drafts).

Two shapes are accepted verbatim (DESIGN.md, "Flow definition"):

- graph form: `definition.nodes[]` (`id`, `type`, `name`, `config`, `x`, `y`),
  `definition.connections[]` (`source`, `target`, optional output `port`),
  `definition.variables[]` (`name`, `type`, `value`);
- step form: `steps[]` of `{node, params}`, run in order.

These models check *shape* only, so a draft may be incomplete: nodes without
a type or config, an empty node list. Whether a flow can run on a board is
`shared_schema.validate.validate_flow`, which reports every problem at once.

Variable values are coerced to their declared type (`"30"` -> 30 for a
number); type ids take `-` for `_` (`set-log-level` -> `set_log_level`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel, ConfigDict, Field, StrictFloat, StrictInt, ValidationError, ValidationInfo, field_validator, model_validator,
)

from shared_schema.params import coerce_var, infer_var_type
from shared_schema.problems import Problem, pointer

VarType = Literal["number", "integer", "string", "boolean"]
OnFailure = Literal["stop", "continue"]


def normalize_type(type_id: str) -> str:
    """Type ids are snake_case; `-` is accepted for `_`."""
    return type_id.strip().replace("-", "_")


class _Open(BaseModel):
    # Editors keep their own fields (colours, comments...): keep them, untouched.
    model_config = ConfigDict(extra="allow")


class _Retry(_Open):
    on_failure: OnFailure | None = None
    retries: StrictInt | None = Field(default=None, ge=0, le=5)
    backoff_ms: StrictInt | str | None = None  # milliseconds, or "20ms", "1s"


class GraphNode(_Retry):
    id: str = ""
    type: str = ""
    name: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    x: StrictFloat | StrictInt | None = None
    y: StrictFloat | StrictInt | None = None

    @field_validator("type")
    @classmethod
    def _snake(cls, v: str) -> str:
        return normalize_type(v)


class Connection(_Open):
    source: str = ""
    target: str = ""
    port: StrictInt = Field(default=0, ge=0)


class Variable(_Open):
    name: str = ""  # a draft may add the row before naming it
    type: VarType | None = None  # inferred from the value when absent
    value: Any = None

    @field_validator("value")
    @classmethod
    def _coerce_declared(cls, value: Any, info: ValidationInfo) -> Any:
        # A field validator, so a value that does not fit points at `/value`.
        # `type` is validated before `value`; when it is absent (or itself
        # wrong) there is nothing declared to coerce to here.
        var_type = info.data.get("type")
        return coerce_var(var_type, value) if var_type is not None and value is not None else value

    @model_validator(mode="after")
    def _infer_type(self) -> Variable:
        if self.type is None:
            self.type = infer_var_type(self.value)
            if self.value is not None:
                self.value = coerce_var(self.type, self.value)
        return self


class Definition(_Open):
    nodes: list[GraphNode] = Field(default_factory=list)
    connections: list[Connection] = Field(default_factory=list)
    variables: list[Variable] = Field(default_factory=list)


class Step(_Retry):
    node: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    id: str | None = None

    @field_validator("node")
    @classmethod
    def _snake(cls, v: str) -> str:
        return normalize_type(v)


class FlowBody(_Open):
    """A flow as submitted: either `definition` (graph form) or `steps` (step form)."""

    name: str | None = None
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    definition: Definition | None = None
    steps: list[Step] | None = None
    variables: list[Variable] | None = None  # step form may declare variables at the top

    @property
    def form(self) -> Literal["graph", "steps", "empty"]:
        if self.definition is not None:
            return "graph"
        return "steps" if self.steps is not None else "empty"


def step_id(index: int) -> str:
    """The node id a step gets in the compiled program: `s1`, `s2`, ..."""
    return f"s{index + 1}"


def parse_draft(body: Any) -> FlowBody:
    """Parse a draft; raises pydantic.ValidationError on a wrong shape."""
    return FlowBody.model_validate(body)


def draft_problems(body: Any) -> list[Problem]:
    """The shape problems of a draft as pointers and messages ([] when it parses)."""
    try:
        parse_draft(body)
    except ValidationError as exc:
        return validation_problems(exc)
    return []


def validation_problems(exc: ValidationError, base: tuple = ()) -> list[Problem]:
    """A pydantic error as problems: pointers, and our own ValueError messages
    without pydantic's "Value error, " prefix."""
    problems = []
    for err in exc.errors():
        error = (err.get("ctx") or {}).get("error")
        message = str(error) if err["type"] == "value_error" and error is not None else err["msg"]
        problems.append(Problem(pointer(*base, *err["loc"]), message))
    return problems
