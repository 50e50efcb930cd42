# debounce: suppresses bursts -- a message passes only when the previous
# one (passed or not) came at least window_ms earlier.
TYPE = "debounce"
KIND = "logic"
TRIGGER = None
PORTS = 1
DOC = "passes a message only after window_ms of quiet since the previous one"
PARAMS = (
    ("window_ms", "ms", 200, 1, 3600000, None),
)


def setup(cfg, hal, idx):
    return [None]       # when the previous message came


def run(cfg, mem, msg, ctx):
    import time
    last = mem[0]
    mem[0] = ctx.now_ms
    if last is None or time.ticks_diff(ctx.now_ms, last) >= cfg["window_ms"]:
        return msg
    return None
