"""The command line: Typer commands (app), what they show (render), and `abr status`
(status). A command parses its arguments, calls the engine, renders."""

from __future__ import annotations

from .app import app, main

__all__ = ["app", "main"]
