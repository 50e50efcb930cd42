"""Fetch umqtt.simple for the host MicroPython runtime.

DESIGN.md: on a board umqtt.simple comes from `mpremote mip install`; for the
unix port we take the `micropython-umqtt.simple` release from the package
index pip is configured with (PIP_INDEX_URL, else pip's default index),
check it against a pinned sha256, and unpack `umqtt/` into a build folder
that goes on MICROPYPATH. We depend on it; we never copy it into the tree.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import tarfile
import urllib.parse
import urllib.request
from pathlib import Path

PROJECT = "micropython-umqtt.simple"
VERSION = "1.3.4"
SHA256 = "b6a2520239e3992c63a7de9370ee9b3d9d27819a90359c521f1c0f7ccab8d12f"


def index_url() -> str:
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        from pip._internal.models.index import PyPI  # pip's own default index

        url = PyPI.simple_url
    return url.rstrip("/")


def fetch(dest: Path) -> Path:
    target = dest / "umqtt" / "simple.py"
    if target.exists():
        return target
    page_url = f"{index_url()}/{PROJECT}/"
    page = urllib.request.urlopen(page_url, timeout=60).read().decode()
    wanted = f"{PROJECT}-{VERSION}.tar.gz"
    links = [h for h in re.findall(r'href="([^"]+)"', page) if wanted in h]
    if not links:
        raise SystemExit(f"fetch_umqtt: {wanted} not listed at {page_url}")
    link = urllib.parse.urljoin(page_url, links[0].split("#")[0])
    blob = urllib.request.urlopen(link, timeout=60).read()
    got = hashlib.sha256(blob).hexdigest()
    if got != SHA256:
        raise SystemExit(f"fetch_umqtt: sha256 mismatch for {wanted}: got {got}, pinned {SHA256}")
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if "umqtt" in parts and member.isfile() and member.name.endswith(".py"):
                rel = Path(*parts[parts.index("umqtt"):])
                out = dest / rel
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
    if not target.exists():
        raise SystemExit(f"fetch_umqtt: {wanted} holds no umqtt/simple.py")
    return target


if __name__ == "__main__":
    path = fetch(Path(sys.argv[1] if len(sys.argv) > 1 else "build/mpy-lib"))
    print(f"umqtt.simple {VERSION} (sha256 verified) at {path}")
