"""Agents: instructions, a model and tools, run in steps by the generation job.

`tools.py` is the one small interface every kind of tool implements (Python
functions, the built-ins, MCP servers); `toolbox.py` gathers what is enabled;
`calls.py` runs one step's calls (validation, approval, time-outs, output cap).
"""
