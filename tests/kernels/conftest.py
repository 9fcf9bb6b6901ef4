import pytest
import torch
import yaml

from tests.conftest import SCENARIOS


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def lite_cfg() -> dict:
    """DeepSeek-V2-Lite's config (real widths: 16 heads, d_c 512, no query compression, YaRN)."""
    return yaml.safe_load((SCENARIOS / "models" / "deepseek-v2-lite.yaml").read_text())


@pytest.fixture(scope="session")
def v2_cfg() -> dict:
    return yaml.safe_load((SCENARIOS / "models" / "deepseek-v2.yaml").read_text())
