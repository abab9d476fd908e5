"""Pure risk math and small domain objects: instruments, venue rules, brackets, margin,
liquidation, funding, fees and positions. Standard library and numpy only.

The convenience entry point::

    >>> import risk
    >>> print(round(risk.liquidation_price("binance_usdm", "long", 60_000, 2, 6_000), 2))
    57261.31
"""

from risk.errors import DeleverageError
from risk.instrument import PerpInstrument, TierTable
from risk.liquidation import bankruptcy, liquidation_price, parse_side
from risk.position import FillOutcome, PerpPosition, apply_fill, apply_funding
from risk.venues import INSTRUMENTS, VENUES, VenueRules, get_instrument, venue_rules

__all__ = [
    "DeleverageError", "PerpInstrument", "TierTable", "VenueRules", "VENUES", "INSTRUMENTS",
    "get_instrument", "venue_rules", "liquidation_price", "bankruptcy", "parse_side",
    "PerpPosition", "FillOutcome", "apply_fill", "apply_funding",
]
