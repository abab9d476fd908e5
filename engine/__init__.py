"""The glue: backtrader broker and feed adapters, runner, optimizer and the CLI.

The only non-strategy package that imports backtrader.
"""
