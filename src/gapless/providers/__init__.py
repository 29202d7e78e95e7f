"""Model providers: each yields typed chunks; `generation` does everything else.

`base` holds the interface and chunk types; one module per provider.
"""
