"""The web layer: HTTP API, SSE and WebSocket adapters, authentication, the static app."""
