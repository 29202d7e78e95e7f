"""Gapless: chat with AI models; streamed replies never lose, repeat or reorder a chunk."""

__version__ = "0.1.0"
