"""`fleetflow serve` serves the dashboard (cloud/ui, built by `make setup`)
at `/` and its hashed assets at /assets/; without a build, `/` says how to
make one instead of failing obscurely."""

from __future__ import annotations

import re

import pytest

from cloud import routes


async def test_root_serves_the_built_dashboard_and_its_assets(api):
    if not (routes.UI_DIST / "index.html").is_file():
        pytest.fail("cloud/ui/dist is not built: run `make setup` (npm ci && npm run build in cloud/ui)")
    resp = await api.client.get("/")
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert '<div id="root">' in page
    scripts = re.findall(r'src="(/assets/[^"]+\.js)"', page)
    assert scripts, page
    js = await api.client.get(scripts[0])
    assert js.status == 200 and "javascript" in js.content_type
    assert "immutable" in js.headers["Cache-Control"]
    # The bundle talks to the API under /api/v1, nothing else.
    assert "/api/v1" in await js.text()


@pytest.mark.parametrize("name", ["nope.js", "..%2Findex.html", ".hidden"])
async def test_unknown_or_escaping_asset_names_are_404(api, name):
    resp = await api.client.get("/assets/" + name)
    assert resp.status == 404


async def test_without_a_build_root_says_how_to_build(api, monkeypatch, tmp_path):
    monkeypatch.setattr(routes, "UI_DIST", tmp_path / "dist")
    resp = await api.client.get("/")
    page = await resp.text()
    assert resp.status == 503 and resp.content_type == "text/html"
    assert "The dashboard is not built" in page and "make setup" in page
