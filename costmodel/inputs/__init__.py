"""Inputs: every file the tool reads, as validated specs, with errors that name the file, line and field.

Scenarios, models, GPUs, clusters and workloads (YAML, HF config.json), sweep and plan files, profile
CSVs, request traces, and the work budget a command may start. Imports nothing else of costmodel/.
"""
