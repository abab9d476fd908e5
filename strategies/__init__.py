"""Backtrader strategies on a small base class. May use risk/, feeds.schema and ta."""
