"""Renderers of state machines and executions: SVG/HTML graphs, Mermaid text, release reports."""
