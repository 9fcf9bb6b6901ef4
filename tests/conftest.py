from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def models():
    from costmodel.loader import load_spec

    return {p.stem: load_spec("model", p) for p in (SCENARIOS / "models").glob("*.yaml")}
