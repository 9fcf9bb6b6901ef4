"""Analytic counts: parameters, FLOPs, KV-cache and memory bytes, operator shapes, pipeline schedules,
the expert-routing model and communication volumes and alpha-beta times. Pure functions of specs.

May import: inputs.
"""
