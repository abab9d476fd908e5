"""Data in: loaders, schema, validation, the scenario library and the cascade simulator.

pandas/numpy only; may use :mod:`risk`; never backtrader.
"""
