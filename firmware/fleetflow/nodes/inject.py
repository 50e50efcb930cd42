# inject: emits a constant (or the time) once at boot, or every `every` ms.
TYPE = "inject"
KIND = "source"
TRIGGER = "boot"    # with every > 0 it polls instead
PORTS = 1
DOC = "emits payload (or, when payload is null, the time in ms) at boot, or every `every` ms when set"
EMITS = ("value", "ts")
PARAMS = (
    ("payload", "any", None, None, None, None),
    ("every", "ms", 0, 0, 86400000, None),
)


def run(cfg, mem, msg, ctx):
    v = cfg["payload"]
    return {"value": ctx.now_ms if v is None else v, "ts": ctx.now_ms}
