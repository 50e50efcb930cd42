"""`fleetflow flow <sub>`: work with flow definitions.

Local subcommands (files in, no server): `validate`, `compile`, `diff`; the
cloud's (`create`, `update`, `publish`, `list`) come from tools/cli/flow_remote.py.

Each local subcommand is one row of SUBCOMMANDS: `(name, help,
add_arguments, run)`, where `add_arguments(parser)` declares its options and
`run(args)` returns the exit status; `register` builds the parsers from the
table, then adds flow_remote's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

from shared_schema.boards import BoardError, board_names, load_board
from shared_schema.jsontext import JSONTextError, loads

EXIT_OK, EXIT_INVALID, EXIT_USAGE = 0, 1, 2


class _Fail(Exception):
    """A file or option problem already worded for the user; carries the exit status."""

    def __init__(self, message: str, status: int = EXIT_INVALID, line: int | None = None, column: int | None = None):
        super().__init__(message)
        self.status, self.line, self.column = status, line, column


def read_flow(path: str) -> Any:
    """The JSON in a file (`-` is stdin); _Fail with line and column when it isn't JSON."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise _Fail(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return loads(text)
    except JSONTextError as exc:
        raise _Fail(f"{path}:{exc.line}:{exc.column}: malformed JSON: {exc.message}", line=exc.line, column=exc.column) from None


def _board(name: str):
    try:
        return load_board(name)
    except BoardError as exc:
        raise _Fail(str(exc), EXIT_USAGE) from None


def _report_failure(exc: _Fail, as_json: bool) -> int:
    if as_json and exc.status == EXIT_INVALID:
        obj = {"pointer": "", "message": str(exc)}
        if exc.line is not None:
            obj.update(line=exc.line, column=exc.column)
        print(json.dumps(obj))
    else:
        print(f"fleetflow flow: {exc}", file=sys.stderr)
    return exc.status


def _guarded(run: Callable[[Any], int]) -> Callable[[Any], int]:
    def wrapper(args) -> int:
        try:
            return run(args)
        except _Fail as exc:
            return _report_failure(exc, getattr(args, "json", False))
    return wrapper


# -- validate ----------------------------------------------------------------

def _validate_args(p) -> None:
    p.add_argument("file", help="flow JSON (a flow body: graph form or step form); - for stdin")
    p.add_argument("--board", required=True, help=f"target board ({', '.join(board_names())})")
    p.add_argument("--json", action="store_true", help="one JSON object {pointer, message} per problem per line")


def _validate(args) -> int:
    from shared_schema.validate import validate_flow

    board = _board(args.board)
    problems = validate_flow(read_flow(args.file), board)
    if args.json:
        for problem in problems:
            print(json.dumps(problem.to_dict()))
    elif problems:
        print(f"{args.file}: {len(problems)} problem{'s' if len(problems) != 1 else ''} for board {board.name}:")
        for problem in problems:
            print(f"  {problem}")
    else:
        print(f"{args.file}: valid for board {board.name}")
    return EXIT_INVALID if problems else EXIT_OK


# -- compile -----------------------------------------------------------------

def _compile_args(p) -> None:
    p.add_argument("file", help="flow JSON; - for stdin")
    p.add_argument("--board", required=True, help=f"target board ({', '.join(board_names())})")
    p.add_argument("--flow-id", default="local", help="flow id written into the program (default: local)")
    p.add_argument("--ver", type=int, default=1, help="version written into the program (default: 1)")
    p.add_argument("-o", "--output", help="write the program bytes here instead of stdout")
    p.add_argument("--device", help="also wrap it in a signed envelope for this device id (needs --key-hex)")
    p.add_argument("--key-hex", help="the device's HMAC key, hex")
    p.add_argument("--seq", type=int, default=1, help="envelope sequence number (default: 1)")


def _compile(args) -> int:
    from shared_schema.compiler import CompileError, compile_program
    from shared_schema.envelope import make_envelope

    board = _board(args.board)
    try:
        program = compile_program(read_flow(args.file), board, args.flow_id, args.ver)
    except CompileError as exc:
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_INVALID
    out: bytes = program.data
    if args.device:
        try:
            key = bytes.fromhex(args.key_hex or "")
        except ValueError:
            raise _Fail("--key-hex must be hex", EXIT_USAGE) from None
        if not key:
            raise _Fail("--device needs --key-hex", EXIT_USAGE)
        out = json.dumps(make_envelope(program, args.device, key, args.seq), sort_keys=True).encode()
    if args.output:
        Path(args.output).write_bytes(out)
    else:
        sys.stdout.write(out.decode() + "\n")
    print(f"{program.size} bytes of {board.program_max_bytes}, sha256 {program.sha256}", file=sys.stderr)
    return EXIT_OK


# -- diff --------------------------------------------------------------------

def _diff_args(p) -> None:
    p.add_argument("old", help="flow JSON, the older version (or, with V1 V2, a flow id in the cloud)")
    p.add_argument("new", help="flow JSON, the newer version (or V1, a version number)")
    p.add_argument("newer", nargs="?", metavar="V2", help="with FLOW V1 V2: compare two of the flow's versions in the cloud")
    p.add_argument("--json", action="store_true", help="print the diff as one JSON object")
    from tools.cli.client import add_cloud_args

    add_cloud_args(p)


def _cloud_diff(args) -> dict:
    """`flow diff FLOW V1 V2`: the cloud's comparison of two published versions."""
    from tools.cli.client import ApiError, from_args

    try:
        v1, v2 = int(args.new), int(args.newer)
    except ValueError:
        raise _Fail(f"flow diff FLOW V1 V2: versions are numbers, not {args.new!r} and {args.newer!r}",
                    EXIT_USAGE) from None
    try:
        return from_args(args).get(f"/flows/{args.old}/versions/compare", v1=v1, v2=v2)
    except ApiError as exc:
        raise _Fail(str(exc) + "".join(f"\n  {e}" for e in exc.field_errors())) from None


def _diff(args) -> int:
    from shared_schema.diff import diff_definitions

    if args.newer is not None:
        delta = _cloud_diff(args)
    else:
        delta = diff_definitions(read_flow(args.old), read_flow(args.new))
    if args.json:
        print(json.dumps(delta, sort_keys=True))
    else:
        for verb, sign in (("removed", "-"), ("added", "+")):
            for node in delta["nodes"][verb]:
                print(f"{sign} node {node.get('id')} ({node.get('type')})")
        for change in delta["nodes"]["changed"]:
            for f in change["fields"]:
                print(f"~ node {change['id']} {f}: {json.dumps(change['from'][f])} -> {json.dumps(change['to'][f])}")
        for verb, sign in (("removed", "-"), ("added", "+")):
            for c in delta["connections"][verb]:
                print(f"{sign} connection {c['source']} -> {c['target']} (port {c['port']})")
            for v in delta["variables"][verb]:
                print(f"{sign} variable {v.get('name')} = {json.dumps(v.get('value'))}")
        for change in delta["variables"]["changed"]:
            for f in change["fields"]:
                print(f"~ variable {change['name']} {f}: {json.dumps(change['from'][f])} -> {json.dumps(change['to'][f])}")
        if delta["same"]:
            print("no differences")
    return EXIT_OK if delta["same"] else EXIT_INVALID


SUBCOMMANDS: list[tuple[str, str, Callable, Callable[[Any], int]]] = [
    ("validate", "check a flow file against a board: exit 0 when valid, else 1 and every problem", _validate_args, _validate),
    ("compile", "compile a flow file into the device program for a board", _compile_args, _compile),
    ("diff", "compare two flow files, or two versions in the cloud (FLOW V1 V2), node by node and connection "
             "by connection (exit 1 when they differ)", _diff_args, _diff),
]


def register(sub) -> None:
    parser = sub.add_parser("flow", help="validate, compile and compare flow files; create, publish and list flows in the cloud")
    flow_sub = parser.add_subparsers(dest="flow_command", metavar="SUBCOMMAND")
    for name, help_text, add_arguments, run in SUBCOMMANDS:
        p = flow_sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(func=_guarded(run))
    from tools.cli.flow_remote import register_remote  # the cloud's subcommands: create, update, publish, list

    register_remote(flow_sub)
    parser.set_defaults(func=lambda _args: parser.print_help() or EXIT_USAGE)
