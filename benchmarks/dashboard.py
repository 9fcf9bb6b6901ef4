"""Render time of each dashboard page for the paper scenario (target: under 3 s), measured with
Streamlit's AppTest in this process: 'cold' with empty caches, 'warm' once the simulations are cached
(the state `make run` leaves, since it computes the default comparison before serving)."""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from streamlit.testing.v1 import AppTest  # noqa: E402

PAGES = ("overview", "training", "serving", "kernels", "sweeps")


def one_page(page: str) -> None:
    from dashboard import pages

    if pages.scenario_bar():
        getattr(pages, page)()


def render(page: str) -> float:
    t0 = time.perf_counter()
    at = AppTest.from_function(one_page, args=(page,), default_timeout=600).run()
    assert not at.exception, at.exception
    return time.perf_counter() - t0


def main() -> None:
    logging.getLogger("streamlit").setLevel(logging.ERROR)  # AppTest in bare mode warns on every run
    shutil.rmtree(ROOT / ".cache" / "dashboard", ignore_errors=True)
    print(f"{'page':>10} {'cold s':>8} {'warm s':>8}")
    for page in PAGES:
        cold = render(page)
        warm = min(render(page) for _ in range(3))
        print(f"{page:>10} {cold:>8.2f} {warm:>8.2f}")


if __name__ == "__main__":
    main()
