"""cloud/inbox.py's rules, one test each: what the bridge acks, when, and
which run reports it stores once."""

from __future__ import annotations

from cloud.inbox import Inbox, Report, digest


def report(inbox: Inbox, mid: int, payload: bytes = b"", qos: int = 1) -> Report:
    return Report("d1", {"runs": []}, 0.0, inbox.hold(mid, qos), digest("ff/d1/runs", payload or b"%d" % mid), 1)


def test_rule_1_acks_go_out_once_handled_and_in_arrival_order():
    inbox = Inbox()
    first, second, third = inbox.hold(1, 1), inbox.hold(2, 1), inbox.hold(3, 1)
    assert inbox.hold(4, 0) is None  # QoS 0: nothing to ack
    assert inbox.handled(second) == []  # 1 is not handled yet: 2 waits
    assert inbox.handled(first) == [1, 2]
    assert inbox.handled(None) == []
    assert inbox.handled(third) == [3]


def test_rule_1_a_run_report_is_acked_when_stored_not_when_heard():
    inbox = Inbox()
    r = report(inbox, 7)
    status = inbox.hold(8, 1)
    assert inbox.add(r) == [] and len(inbox) == 1 and inbox.nodes == 1
    assert inbox.handled(status) == []  # the status waits behind the report
    taken = inbox.take()
    assert taken == [r] and len(inbox) == 0 and inbox.nodes == 0
    assert inbox.stored(taken) == [7, 8]


def test_rule_2_a_lost_link_voids_the_acks_but_keeps_the_reports():
    inbox = Inbox()
    r = report(inbox, 5)
    inbox.add(r)
    inbox.new_link()
    assert len(inbox) == 1  # heard, so stored: the broker may have died with it
    assert inbox.stored(inbox.take()) == []  # its message id meant nothing on the new link
    assert inbox.handled(inbox.hold(5, 1)) == [5]  # the same id on the new link is a new message


def test_rule_3_the_brokers_resend_takes_over_a_report_still_waiting():
    inbox = Inbox()
    inbox.add(report(inbox, 5, b"same"))
    inbox.new_link()
    resent = report(inbox, 9, b"same")
    assert inbox.add(resent) == [] and len(inbox) == 1  # one report, now acked on the new link
    assert inbox.stored(inbox.take()) == [9]


def test_rule_3_a_copy_on_the_same_link_or_of_a_stored_report_is_acked_at_once():
    inbox = Inbox()
    inbox.add(report(inbox, 1, b"r"))
    assert inbox.add(report(inbox, 2, b"r")) == []  # waits behind message 1 (rule 1) ...
    assert len(inbox) == 1
    assert inbox.stored(inbox.take()) == [1, 2]  # ... and goes out with it
    assert inbox.add(report(inbox, 3, b"r")) == [3]  # stored lately: not stored again
    assert len(inbox) == 0


def test_rule_3_a_copy_heard_during_the_transaction_is_not_stored_again():
    inbox = Inbox()
    inbox.add(report(inbox, 1, b"r"))
    taken = inbox.take()
    inbox.new_link()  # the link drops while the transaction runs; the broker resends
    inbox.add(report(inbox, 4, b"r"))
    assert len(inbox) == 1
    assert inbox.stored(taken) == [4] and len(inbox) == 0 and inbox.nodes == 0


def test_rule_4_reports_put_back_come_first_and_stay_unacked():
    inbox = Inbox()
    a, b = report(inbox, 1), report(inbox, 2)
    inbox.add(a)
    taken = inbox.take()
    inbox.add(b)  # heard while the database was failing
    assert inbox.put_back(taken) == []
    assert inbox.take() == [a, b] and inbox.nodes == 0


def test_only_the_last_stored_are_remembered():
    inbox = Inbox(remember=2)
    for mid in (1, 2, 3):
        inbox.add(report(inbox, mid))
        inbox.stored(inbox.take())
    assert inbox.add(report(inbox, 10, b"1")) == []  # forgotten: stored again
    assert inbox.add(report(inbox, 11, b"3")) == []  # remembered, but waits behind 10 to be acked
    assert len(inbox) == 1
