# log: writes a log line into the run record. `{field}` in message is
# replaced by that field of the message; an empty message logs the message.
TYPE = "log"
KIND = "sink"
TRIGGER = None
PORTS = 1
LOGS = True
DOC = "writes a log line ({field} takes a message field; empty: the whole message)"
PARAMS = (
    ("level", "enum", "info", None, None, ("debug", "info", "warning", "error")),
    ("message", "str", "", 0, 120, None),
)


def _fill(text, msg):
    out = []
    i = 0
    while True:
        a = text.find("{", i)
        b = text.find("}", a + 1) if a >= 0 else -1
        if a < 0 or b < 0:
            out.append(text[i:])
            return "".join(out)
        out.append(text[i:a])
        k = text[a + 1:b]
        out.append(str(msg[k]) if k in msg else "{" + k + "}")
        i = b + 1


def run(cfg, mem, msg, ctx):
    text = cfg["message"]
    ctx.log(cfg["level"], _fill(text, msg) if text else repr(msg))
    return msg
