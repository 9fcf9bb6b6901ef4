"""The cost model, in five layers; data flows up them and never down.

Each folder is one layer. A module imports from its own layer or a lower one, never a higher one
(tests/test_layering.py reads a module's layer from its folder and enforces this):

    inputs  → counts → timing → sim → app

No layer imports torch, kernels/, charts/, planner/ or dashboard/.
"""

LAYERS = ("inputs", "counts", "timing", "sim", "app")  # lowest first: the order the folders may import in
