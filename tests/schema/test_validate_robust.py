"""validate_flow on arbitrary input: never raises, and every pointer lands in the body.

A pointer names the value at fault, or (for something missing) the place where
it belongs: so at least the pointer's parent always exists in the submitted body.
"""

from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_schema.models import draft_problems
from shared_schema.validate import validate_flow

from .test_validate_table import BASE, ESP32, STEPS

scalars = st.one_of(st.none(), st.booleans(), st.integers(-50, 50), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["", "n1", "n2", "$threshold", "$nope", "$$x", "dht", "switch", "gpio-out", "a/+", "2s", "4"]))
json_values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                            st.dictionaries(st.sampled_from(
                                                                ["id", "type", "config", "pin", "source", "target", "port",
                                                                 "nodes", "connections", "variables", "name", "value", "node",
                                                                 "params", "steps", "definition", "x", "on_failure"]), inner, max_size=5)),
                           max_leaves=20)


def _resolve(body, pointer: str):
    """The parent of the pointed value must exist; returns True when it does."""
    if pointer == "":
        return True
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.split("/")[1:]]
    doc = body
    for part in parts[:-1]:
        if isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        elif isinstance(doc, dict) and part in doc:
            if doc[part] is None and part in ("config", "params"):
                return True  # a null config counts as {}: its missing params are pointed at inside it
            doc = doc[part]
        else:
            # a missing intermediate object is allowed only when it is a
            # node's config/params (a missing config's required param)
            return part in ("config", "params") and parts[-1] is not None
    return isinstance(doc, (dict, list))


def _paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _paths(v, prefix + (i,))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(json_values, st.fixed_dictionaries({"definition": json_values}), st.fixed_dictionaries({"steps": json_values})))
def test_arbitrary_bodies_never_raise_and_pointers_land(body):
    for problem in validate_flow(body, ESP32):
        assert _resolve(body, problem.pointer), problem
        assert problem.message
    draft_problems(body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([BASE, STEPS]), st.data())
def test_one_value_replaced_anywhere(base, data):
    body = copy.deepcopy(base)
    paths = [p for p in _paths(body) if p]
    path = data.draw(st.sampled_from(paths))
    doc = body
    for part in path[:-1]:
        doc = doc[part]
    doc[path[-1]] = data.draw(json_values)
    for problem in validate_flow(body, ESP32):
        assert _resolve(body, problem.pointer), problem
