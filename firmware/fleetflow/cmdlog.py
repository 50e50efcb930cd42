# Incoming commands, the part that stays loaded (mixed into Agent): parse a
# command and hand it to the cold handling code (fleetflow/commands.py,
# imported now and unloaded by the agent after), and remember the last acks
# by command id, so a repeated command is answered, not applied again. The
# ids of commands that changed the slots survive a reboot in ff_cmds.json.
import gc
import json
from micropython import const

_MAX_DONE = const(16)
_PERSIST = ("stage", "deploy", "activate", "rollback")


class CommandLog:
    def __init__(self):
        # (the agent has made self.slots by now)
        # command id -> (op, its last ack as JSON text): repeats are answered
        # from here. Text, not the ack's dict: a third of the heap, and the
        # very string that was queued to be sent.
        self.done = {}
        self._done_order = []
        try:
            with open(self.slots.path("cmds.json")) as f:
                for a in json.load(f):
                    self._keep(a.get("id"), a.get("op"), json.dumps(a))
        except (OSError, ValueError, AttributeError):
            pass

    def command(self, raw):
        # Parsed here and the raw bytes let go before the command code is
        # loaded, so a big envelope and that code are not in the heap twice.
        if type(raw) is tuple:
            # (reason, first bytes, last bytes): a message the link dropped
            # unread (fleetflow.link._TimeoutSock), too big for this device
            reason, head, tail = raw
            self.ack({"id": _peek(head, tail, b'"id"'), "op": _peek(head, tail, b'"op"')}, "rejected", reason)
            return
        try:
            cmd = json.loads(raw)
            if type(cmd) is not dict:
                raise ValueError
        except ValueError:
            self.ack({"id": None, "op": None}, "rejected", "bad command: not a JSON object")
            return
        except MemoryError:
            # Too big to parse here: refuse it by the id we can still find.
            n = len(raw)
            cid = _peek(raw, None, b'"id"')
            raw = None
            gc.collect()
            self.ack({"id": cid, "op": None}, "rejected", "oversized: no memory to parse a %d-byte command" % n)
            return
        raw = None
        self._warm = True
        from fleetflow.commands import handle
        handle(self, cmd)

    def _keep(self, cid, op, text):
        if cid not in self.done:
            self._done_order.append(cid)
            if len(self._done_order) > _MAX_DONE:
                self.done.pop(self._done_order.pop(0), None)
        self.done[cid] = (op, text)

    def remember(self, cmd, a, text):
        # a: the ack, text: its JSON
        # Only what a signed command reached claims its id: a refusal (maybe
        # of a forgery sent under the id of a command still on its way) and a
        # ping are not remembered, so a repeat of them is simply checked again.
        if cmd.get("op") in ("chunk", "ping") or cmd.get("id") is None or a["state"] == "rejected":
            return
        if a["state"] == "received" and cmd.get("op") in ("stage", "deploy", "exec"):
            return  # not final: a repeat must reach the handler (transfer resume)
        self._keep(a["id"], a["op"], text)
        if cmd.get("op") in _PERSIST and a["state"] != "received":
            try:
                # written ack by ack: the whole list as one text (up to 16
                # acks, ~2.5 KB) wanted a block that size
                self.slots.write_atomic("cmds.json", self._persisted())
            except OSError as e:
                print("agent: can't persist command ids:", e)


    def _persisted(self):
        # the JSON list of the remembered acks that changed the slots, in pieces
        sep = "["
        for i in self._done_order:
            op, text = self.done[i]
            if op in _PERSIST:
                yield sep
                yield text
                sep = ","
        yield "[]" if sep == "[" else "]"


def _peek(raw, tail, key):
    # The string value of `key` ("id", "op") in a command we could not
    # parse, found without parsing it: in its first bytes, else its last.
    v = _find(raw, key)
    return v if v is not None or tail is None else _find(tail, key)


def _find(raw, key):
    i = raw.find(key)
    if i < 0:
        return None
    i = raw.find(b'"', raw.find(b":", i) + 1)
    j = raw.find(b'"', i + 1)
    if i < 0 or j < 0 or j - i > 80:
        return None
    return raw[i + 1:j].decode()
