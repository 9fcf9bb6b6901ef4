"""Timing: how long each operator takes (measured profiles, roofline where nothing is measured), what a
training micro-batch and a serving iteration cost, the measured training-stack constants, and how wrong
those times may be (uncertainty bands).

May import: inputs, counts.
"""
