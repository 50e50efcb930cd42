# Per-run overrides ({"vars": {...}, "params": {node id: {...}}}) checked
# and applied to a copy of a program's cfgs. Imported only while an
# execution with overrides starts (fleetflow.program.Program.cfgs_for).
from fleetflow.errors import FFError
from fleetflow.loader import resolve_params, param_spec


def cfgs_for(self, overrides):
    """The cfgs of one run with {"vars": {...}, "params": {id: {...}}} applied.

    Returns a new list (the program's own is untouched); FFError when an
    override names an unknown variable, node or param, or has a bad value
    (a variable's override must have its declared type: number, string, bool).
    """
    if type(overrides) is not dict:
        raise FFError("overrides: want an object")
    ov_vars = overrides.get("vars") or {}
    ov_params = overrides.get("params") or {}
    if type(ov_vars) is not dict or type(ov_params) is not dict:
        raise FFError("overrides: vars and params must be objects")
    vars_ = self.vars
    if ov_vars:
        vars_ = dict(self.vars)
        for k in ov_vars:
            if k not in vars_:
                raise FFError("overrides.vars.%s: unknown variable" % k)
            # the declared value's type, or the run would fail later, in a
            # node (int and float are both numbers; a bool is not one). Few
            # new names: this module is primed at import (program.prime).
            t = type(vars_[k])
            v = type(ov_vars[k])
            if v is not t and (v not in (int, float) or t not in (int, float)):
                raise FFError("overrides.vars.%s: want a %s" % (
                    k, "number" if t in (int, float) else t.__name__))
            vars_[k] = ov_vars[k]
    ids = self.ids
    for nid in ov_params:
        if nid not in ids:
            raise FFError("overrides.params.%s: no such node" % nid)
        if type(ov_params[nid]) is not dict:
            raise FFError("overrides.params.%s: want an object" % nid)
    cfgs = list(self.cfgs)
    for i in range(self.n):
        nid = ids[i]
        po = ov_params.get(nid)
        raw = self.raw(i)
        uses_var = False
        if ov_vars:
            for v in raw:
                if type(v) is str and v[:1] == "$" and v[1:2] != "$" and v[1:] in ov_vars:
                    uses_var = True
                    break
        if not po and not uses_var:
            continue
        specs = self.mods[i].PARAMS
        raw = {specs[k][0]: raw[k] for k in range(len(specs))}
        if po:
            for k in po:
                spec = param_spec(self.mods[i], k)
                if spec is None:
                    raise FFError("%s.%s: unknown param of %s" % (nid, k, self.mods[i].TYPE))
                if spec[1] == "pin":
                    raise FFError("%s.%s: a pin can't be overridden per run" % (nid, k))
                raw[k] = po[k]
        cfgs[i] = resolve_params(nid, self.mods[i], raw, vars_, None)[2]
    return cfgs
