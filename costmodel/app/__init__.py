"""Application: the one layer the CLI, the dashboard and sweeps call. It loads a scenario, applies
overrides, checks feasibility, prepares each simulator's inputs, runs it and composes the results
(saturated throughputs, bands, fleet sizing, plans, sweep points, Pareto fronts).

May import: inputs, counts, timing, sim.
"""
