# clear_cache: maintenance -- drops the buffered run records (they count as
# dropped) and collects garbage.
TYPE = "clear_cache"
KIND = "maint"
TRIGGER = None
PORTS = 1
DOC = "maintenance: drops buffered run records and frees memory"
PARAMS = ()


def run(cfg, mem, msg, ctx):
    n = ctx.dev.clear_cache()
    m = dict(msg)
    m["cleared"] = n
    return m
