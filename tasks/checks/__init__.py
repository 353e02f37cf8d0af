"""Synthetic WebSocket checks of green through the preview stage."""
