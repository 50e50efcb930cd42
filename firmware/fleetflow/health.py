# The health gate of a flow on trial (docs/device-protocol.md, "health rule").
#
# judge() is pure: given the rule and what the trial has done so far, it says
# whether to confirm, roll back, or keep watching. Rules:
#  - nothing is decided before `runs` runs have completed;
#  - then an error rate above `max_error_rate` rolls back at once;
#  - otherwise the trial is confirmed once `seconds` have passed and MQTT is
#    connected (a device that can't report its health is not healthy yet).
DEFAULT_RULE = {"runs": 3, "seconds": 5, "max_error_rate": 0.25}

CONFIRM = "confirm"
ROLLBACK = "rollback"


def rule_of(d):
    r = dict(DEFAULT_RULE)
    if type(d) is dict:
        for k in DEFAULT_RULE:
            v = d.get(k)
            if type(v) in (int, float) and v >= 0:
                r[k] = v
    return r


def judge(rule, runs, errors, elapsed_ms, connected):
    """(verdict, reason): verdict is CONFIRM, ROLLBACK or None (keep watching)."""
    need = rule["runs"]
    if runs < need or runs == 0:
        if runs == 0 and need == 0 and elapsed_ms >= rule["seconds"] * 1000 and connected:
            return CONFIRM, None
        return None, None
    rate = errors / runs
    if rate > rule["max_error_rate"]:
        return ROLLBACK, "error_rate %.2f > %.2f" % (rate, rule["max_error_rate"])
    if elapsed_ms >= rule["seconds"] * 1000 and connected:
        return CONFIRM, None
    return None, None
