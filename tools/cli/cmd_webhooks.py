"""`fleetflow webhooks`: send the cloud's events to a URL (admin key).

    fleetflow webhooks create URL [--event deployment.] [--event execution.failed] [--secret whsec_...]
    fleetflow webhooks list
    fleetflow webhooks deliveries WEBHOOK [--status dead]
    fleetflow webhooks redeliver WEBHOOK DELIVERY
    fleetflow webhooks delete WEBHOOK

Deliveries are signed as Standard Webhooks (`webhook-id`, `webhook-timestamp`,
`webhook-signature`); `create` prints the signing secret once. An event is a
name (`deployment.completed`), a prefix ending in `.` (`deployment.`) or `*`.
"""

from __future__ import annotations

import argparse

from tools.cli import client as client_mod
from tools.cli import ui


def register(sub) -> None:
    p = sub.add_parser("webhooks", help="subscribe URLs to events; see deliveries and dead letters",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_subparsers(dest="webhooks_cmd", metavar="ACTION")
    create = what.add_parser("create", help="subscribe a URL; prints the signing secret once")
    create.add_argument("url")
    create.add_argument("--event", action="append", dest="events", help="repeatable (default: every event)")
    create.add_argument("--secret", help="your own signing secret (whsec_ + base64); default: the cloud makes one")
    ls = what.add_parser("list", help="webhooks")
    deliveries = what.add_parser("deliveries", help="a webhook's deliveries, newest first, dead letters included")
    deliveries.add_argument("webhook", type=int)
    deliveries.add_argument("--status", choices=("pending", "delivered", "dead"))
    redeliver = what.add_parser("redeliver", help="give a dead letter another round of attempts")
    redeliver.add_argument("webhook", type=int)
    redeliver.add_argument("delivery", type=int)
    delete = what.add_parser("delete", help="remove a webhook")
    delete.add_argument("webhook", type=int)
    for q, func in ((create, _create), (ls, _list), (deliveries, _deliveries), (redeliver, _redeliver),
                    (delete, _delete)):
        client_mod.add_cloud_args(q)
        q.add_argument("--json", action="store_true", help="print the API's answer as JSON")
        q.set_defaults(func=func)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


def _create(args) -> int:
    body = {"url": args.url}
    if args.events:
        body["events"] = args.events
    if args.secret:
        body["secret"] = args.secret
    hook = client_mod.call(args, "webhooks", lambda api: api.post("/webhooks", body))
    if hook is None:
        return 1
    if args.json:
        ui.print_json(hook)
        return 0
    print(f"webhook {hook['id']}: {hook['url']} for {', '.join(hook['events'])}")
    print(f"  signing secret {hook['secret']}")
    print("  (shown only this once: verify deliveries with it, e.g. with the standardwebhooks package)")
    return 0


def _list(args) -> int:
    got = client_mod.call(args, "webhooks", lambda api: {"webhooks": api.get_all("/webhooks", "webhooks")})
    if got is None:
        return 1
    if args.json:
        ui.print_json(got["webhooks"])
        return 0
    ui.print_table(("id", "url", "events", "active", "created"),
                   [[w["id"], w["url"], w["events"], w["active"], w["created_at"]] for w in got["webhooks"]],
                   empty="no webhooks")
    return 0


def _deliveries(args) -> int:
    got = client_mod.call(args, "webhooks",
                          lambda api: {"deliveries": api.get_all(f"/webhooks/{args.webhook}/deliveries", "deliveries",
                                                                 status=args.status)})
    if got is None:
        return 1
    if args.json:
        ui.print_json(got["deliveries"])
        return 0
    ui.print_table(("id", "event", "status", "attempts", "created", "delivered", "next try", "last error"),
                   [[d["id"], d["event"], d["status"], d["attempts"], d["created_at"], d.get("delivered_at"),
                     d.get("next_at"), d.get("last_error")] for d in got["deliveries"]],
                   empty=f"webhook {args.webhook} has no deliveries" + (f" {args.status}" if args.status else ""))
    return 0


def _redeliver(args) -> int:
    d = client_mod.call(args, "webhooks",
                        lambda api: api.post(f"/webhooks/{args.webhook}/deliveries/{args.delivery}/redeliver"))
    if d is None:
        return 1
    if args.json:
        ui.print_json(d)
    else:
        print(f"delivery {args.delivery}: {d.get('status')} (attempts so far {d.get('attempts')})")
    return 0


def _delete(args) -> int:
    if client_mod.call(args, "webhooks", lambda api: api.request("DELETE", f"/webhooks/{args.webhook}")) is None:
        return 1
    print(f"deleted webhook {args.webhook}")
    return 0
