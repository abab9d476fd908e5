"""pytest plugin: run backtrader's own test suite with :class:`engine.broker.PerpBroker` as
Cerebro's broker, in a spot-like setup (leverage 1, zero fees, no funding).

backtrader's tests are not copied into this repository. Get them from the public repository at the
pinned version (backtrader==1.9.78.123, commit b853d7c9 "Version 1.9.78.123") and run, from the
directory holding their ``tests/`` (and ``datas/``)::

    git clone https://github.com/mementum/backtrader /tmp/bt && git -C /tmp/bt checkout b853d7c9
    cd /tmp/bt && PYTHONPATH=/path/to/deleverage:/path/to/deleverage/benchmarks \\
        /path/to/deleverage/.venv/bin/python -m pytest -p bt_suite_plugin tests -q

Every ``bt.Cerebro()`` then starts with ``PerpBroker(venue="binance_usdm", leverage=1,
maker_fee=0, taker_fee=0, allow_no_funding=True)``; ``BT_SUITE_STOCK=1`` leaves the stock broker
in place (the reference run). docs/byo-strategy.md lists the outcome and each difference.
"""

from __future__ import annotations

import os

import backtrader as bt
import backtrader.cerebro as bt_cerebro

from engine.broker import PerpBroker


class SpotLikePerpBroker(PerpBroker):
    """PerpBroker at leverage 1 with zero fees and no funding: what a spot backtest expects."""

    params = (("leverage", 1.0), ("maker_fee", 0.0), ("taker_fee", 0.0), ("allow_no_funding", True))


def pytest_configure(config) -> None:  # noqa: ANN001 - pytest hook
    if os.environ.get("BT_SUITE_STOCK") != "1":
        bt_cerebro.BackBroker = SpotLikePerpBroker
    config.addinivalue_line("markers", "perp_broker: run with the perpetual broker")


def pytest_report_header(config) -> str:  # noqa: ANN001
    return f"backtrader {bt.__version__}; broker: " + (
        "stock BackBroker" if os.environ.get("BT_SUITE_STOCK") == "1" else "SpotLikePerpBroker (engine.broker.PerpBroker)")
