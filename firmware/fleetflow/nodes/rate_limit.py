# rate_limit: at most per_s messages in any one-second window (fixed
# windows; the rest are dropped, not queued: a device has no RAM to queue).
TYPE = "rate_limit"
KIND = "logic"
TRIGGER = None
PORTS = 1
DOC = "passes at most per_s messages per second, drops the rest"
PARAMS = (
    ("per_s", "int", 1, 1, 1000, None),
)


def setup(cfg, hal, idx):
    return [None, 0]    # window start, passed in this window


def run(cfg, mem, msg, ctx):
    import time
    now = ctx.now_ms
    if mem[0] is None or time.ticks_diff(now, mem[0]) >= 1000:
        mem[0] = now
        mem[1] = 0
    if mem[1] >= cfg["per_s"]:
        return None
    mem[1] += 1
    return msg
