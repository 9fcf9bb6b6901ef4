"""Plotly figure builders, pure functions of result numbers: the CLI's HTML report (planner/render.py)
and the dashboard draw the same charts from here.

May import: costmodel (never planner/ or dashboard/, which both import this).
"""
