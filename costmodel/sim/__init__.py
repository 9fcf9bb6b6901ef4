"""Simulators (simpy): one expert-parallel training step, one serving instance. Each takes what it
needs (pass costs, iteration models, KV capacity, requests) as arguments and assumes a feasible input.

May import: inputs, counts, timing. Never app (feasibility, saturation counts and notes live there).
"""
