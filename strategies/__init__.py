"""Backtrader strategies on a small base class. May use risk/, feeds.schema and ta.

``REGISTRY`` maps the names the CLI accepts to strategy classes (explicit; no discovery).
``SIGNAL_STRATEGIES`` lists those with a signal form (``target_exposure``; see
:mod:`strategies.base`).
"""

from strategies.base import PerpStrategy, RiskView, SignalStrategy
from strategies.breakout import Breakout
from strategies.buy_and_hold import BuyAndHold
from strategies.cascade_fade import CascadeFade
from strategies.dca_grid import DcaGrid
from strategies.funding_carry import FundingCarry
from strategies.liq_band_break import LiqBandBreak
from strategies.sma_crossover import SmaCrossover

REGISTRY: dict[str, type[PerpStrategy]] = {
    "buy_and_hold": BuyAndHold,
    "sma_crossover": SmaCrossover,
    "breakout": Breakout,
    "cascade_fade": CascadeFade,
    "funding_carry": FundingCarry,
    "dca_grid": DcaGrid,
    "liq_band_break": LiqBandBreak,
}

SIGNAL_STRATEGIES: tuple[str, ...] = tuple(name for name, cls in REGISTRY.items() if "target_exposure" in vars(cls)
                                           or issubclass(cls, SignalStrategy))

__all__ = ["REGISTRY", "SIGNAL_STRATEGIES", "PerpStrategy", "RiskView", "SignalStrategy", "BuyAndHold",
           "SmaCrossover", "Breakout", "CascadeFade", "FundingCarry", "DcaGrid", "LiqBandBreak"]
