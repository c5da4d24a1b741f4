"""Trace format, loader and capture tools."""
