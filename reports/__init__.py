"""Metrics, plots and HTML from stored results. Never imports backtrader."""
