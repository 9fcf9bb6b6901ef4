from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


@pytest.fixture(scope="session")
def models():
    from costmodel.inputs.loader import load_spec

    return {p.stem: load_spec("model", p) for p in (SCENARIOS / "models").glob("*.yaml")}


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="run the kernel tests on this torch device (cpu|cuda)")


@pytest.fixture(autouse=True)
def _torch_device(request):
    """With --device cuda, tensors and modules the kernel tests create land on the GPU."""
    device = request.config.getoption("--device")
    if device == "cpu" or not request.node.nodeid.startswith("tests/kernels"):
        yield
        return
    import torch

    torch.set_default_device(device)
    yield
    torch.set_default_device("cpu")
