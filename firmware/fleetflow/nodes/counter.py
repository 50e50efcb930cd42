# counter: counts the messages through it; value and count carry the count.
TYPE = "counter"
KIND = "logic"
TRIGGER = None
PORTS = 1
DOC = "counts messages (value = count); resets every reset_every ms (0: never)"
PARAMS = (
    ("reset_every", "ms", 0, 0, 86400000, None),
)


def setup(cfg, hal, idx):
    return [0, None]    # count, when the count started


def run(cfg, mem, msg, ctx):
    import time
    now = ctx.now_ms
    every = cfg["reset_every"]
    if mem[1] is None:
        mem[1] = now
    elif every and time.ticks_diff(now, mem[1]) >= every:
        mem[0] = 0
        mem[1] = now
    mem[0] += 1
    m = dict(msg)
    m["value"] = mem[0]
    m["count"] = mem[0]
    return m
