"""The flow examples of the product documents (shared/seeds/000_*, 001_*), verbatim.

The repository keeps them as fixtures (tests/schema/fixtures/seed_*.json, the
exact text of each example) so a clean clone can run the tests; when the seed
documents are next to the repository, `test_seeds` also checks that the
fixtures are still their examples, character for character.
"""

from __future__ import annotations

import json
from pathlib import Path

FIXTURES = Path(__file__).with_name("fixtures")
SEEDS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
FIXTURE_OF = {"000": "seed_000_steps.json", "001": "seed_001_graph.json"}


def fixture_text(prefix: str) -> str:
    return (FIXTURES / FIXTURE_OF[prefix]).read_text().rstrip("\n")


def seed(prefix: str) -> dict:
    return json.loads(fixture_text(prefix))


def embedded_json_texts(text: str) -> list[str]:
    """The exact text of every top-level JSON object embedded in prose, in order."""
    decoder, out, pos = json.JSONDecoder(), [], 0
    while (start := text.find("{", pos)) != -1:
        try:
            _obj, end = decoder.raw_decode(text, start)
        except ValueError:
            pos = start + 1
            continue
        out.append(text[start:end])
        pos = end
    return out
