# set_log_level: maintenance -- sets the device's log level (lines below it
# are dropped from run records and the console).
TYPE = "set_log_level"
KIND = "maint"
TRIGGER = None
PORTS = 1
DOC = "maintenance: sets the device log level"
PARAMS = (
    ("level", "enum", "info", None, None, ("debug", "info", "warning", "error")),
)


def run(cfg, mem, msg, ctx):
    ctx.dev.log_level = cfg["level"]
    return msg
