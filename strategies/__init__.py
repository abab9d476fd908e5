"""Backtrader strategies on a small base class. May use risk/, feeds.schema and ta.

``REGISTRY`` maps the names the CLI accepts to strategy classes (explicit; no discovery).
"""

from strategies.base import PerpStrategy, RiskView
from strategies.buy_and_hold import BuyAndHold

REGISTRY: dict[str, type[PerpStrategy]] = {
    "buy_and_hold": BuyAndHold,
}

__all__ = ["REGISTRY", "PerpStrategy", "RiskView", "BuyAndHold"]
