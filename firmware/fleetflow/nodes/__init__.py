# One module per node type. Each declares:
#   TYPE, KIND (source|logic|sink|maint), TRIGGER (poll|edge|boot|None),
#   PORTS, DOC, PARAMS (specs, see fleetflow/params.py), EMITS (sources)
# and the functions the interpreter calls:
#   prep(p) -> cfg          optional; digests the checked params once at load
#                           (and per run when an override touches them)
#   setup(cfg, hal, idx) -> mem   optional; claims hardware, makes run state
#   run(cfg, mem, msg, ctx) -> msg | None   (None: nothing goes on)
#       a node with PORTS > 1 returns the output port instead (the message
#       goes on unchanged); a source may return a str: a failure reported as
#       data (it lands in the run record, nothing goes on)
#   edge(cfg, mem, now_ms) -> bool   edge sources: did the input fire
#   teardown(cfg, mem)      optional; releases hardware at stop()
#   LOGS = True             the node calls ctx.log (its log lines get its id)
#   TIMERS = True or TIMERS(cfg) -> bool   the node calls ctx.later/resume
# Messages are flat dicts and are never changed in place: a node that
# changes one returns a copy (a message may go to several branches).

# The default of a required param (see fleetflow/params.py): a string, so
# specs stay plain data; no real default is this.
REQ = "\x00required"
