"""A throwaway PostgreSQL cluster (initdb, pg_ctl) for tests and benchmarks:
`with throwaway_postgres() as url: ...` gives `postgresql://ff@127.0.0.1:<port>/postgres`
and removes the cluster afterwards.

The server programs come from PATH or Debian's /usr/lib/postgresql/<n>/bin
(`apt-get install postgresql`); initdb refuses to run as root, so as root the
cluster runs as `nobody`.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile


class PostgresMissing(RuntimeError):
    """PostgreSQL's server programs are not installed."""


def server_bin() -> str | None:
    """The folder holding initdb and pg_ctl, or None."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return os.path.dirname(found)
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):  # the newest first
        if os.path.exists(os.path.join(folder, "initdb")) and os.path.exists(os.path.join(folder, "pg_ctl")):
            return folder
    return None


def _as_postgres_user(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *cmd] if os.geteuid() == 0 else cmd


@contextlib.contextmanager
def throwaway_postgres(*settings: str):
    """A fresh cluster on a free port; `settings` are extra `-c name=value` server options."""
    folder = server_bin()
    if folder is None:
        raise PostgresMissing("PostgreSQL's initdb and pg_ctl are not installed (Debian: apt-get install postgresql)")
    root = tempfile.mkdtemp(prefix="ff-pg-", dir="/tmp")
    if os.geteuid() == 0:
        shutil.chown(root, "nobody")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = os.path.join(root, "data")
    options = " ".join([f"-p {port} -k {root} -c listen_addresses=127.0.0.1", *(f"-c {s}" for s in settings)])
    try:
        subprocess.run(_as_postgres_user([os.path.join(folder, "initdb"), "-D", data, "-U", "ff", "--auth=trust"]),
                       check=True, capture_output=True)
        subprocess.run(_as_postgres_user([os.path.join(folder, "pg_ctl"), "-D", data, "-l", os.path.join(root, "log"),
                                          "-w", "-o", options, "start"]), check=True, capture_output=True)
        yield f"postgresql://ff@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(_as_postgres_user([os.path.join(folder, "pg_ctl"), "-D", data, "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)
