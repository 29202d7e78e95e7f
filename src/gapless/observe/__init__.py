"""Observability: traces of every run, metrics, export.

`recorder.py` is what the generation job tells (a run began, an observation
began or ended, the run ended); the recorder decides where that goes (the
database, OpenTelemetry). The job never formats a trace or a dashboard.
"""
