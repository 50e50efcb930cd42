"""Domain errors of the cloud. Storage and the engine raise these; one
middleware (`cloud.middleware`) turns each into an application/problem+json
response, so views never build error responses themselves."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a request: a JSON pointer into the body (or a
    query parameter written as `?name`) and what is wrong there."""

    pointer: str
    message: str
    boards: tuple[str, ...] = ()  # the boards it applies to, when it depends on the board

    def as_dict(self) -> dict:
        doc = {"pointer": self.pointer, "message": self.message}
        if self.boards:
            doc["boards"] = list(self.boards)
        return doc


class FleetflowError(Exception):
    """Base of every error the API reports; `status` is the HTTP status."""

    status = 500
    title = "Internal error"

    def __init__(self, detail: str, problems: list[Problem] | None = None, **extra):
        super().__init__(detail)
        self.detail = detail
        self.problems = list(problems or [])
        self.extra = extra


class Unauthorized(FleetflowError):
    status = 401
    title = "Unauthorized"


class Forbidden(FleetflowError):
    status = 403
    title = "Forbidden"


class NotFound(FleetflowError):
    status = 404
    title = "Not found"


class Conflict(FleetflowError):
    """The request is valid but the current state forbids it (editing a
    published flow, pausing a finished deployment, deleting a flow in use)."""

    status = 409
    title = "Conflict"


class Invalid(FleetflowError):
    """The request body or query is well-formed JSON but wrong; `problems`
    point at every field at fault."""

    status = 422
    title = "Unprocessable request"


class BadRequest(FleetflowError):
    status = 400
    title = "Bad request"


class BadGateway(FleetflowError):
    """Something the cloud relies on (the broker's account plugin) refused."""

    status = 502
    title = "Bad gateway"
