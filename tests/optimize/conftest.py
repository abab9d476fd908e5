"""Fixtures of the optimizer tests: small seeded data, so every run takes seconds.

``synthetic:3000:3`` is 3,000 seeded 1-minute bars (reports.synthetic): the first half drifts
up about 4 % with no dip below -1 %, and at 70 % of the series (in the second half) a one-bar
wick falls 18 %. A leveraged long therefore scores best in sample with the highest leverage and
is liquidated out of sample: the story the optimizer must expose.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine.optimize import OptimizeConfig, ParamRange

DATA = "synthetic:3000:3"
RUN = {"funding_rate": 0.0001}


def make_config(**overrides: Any) -> OptimizeConfig:
    base: dict[str, Any] = dict(
        strategy="buy_and_hold",
        ranges=(ParamRange("leverage", 1.0, 19.0, 3.0),),
        data=DATA, method="grid", objective="return", walk_forward=1, run=dict(RUN),
    )
    base.update(overrides)
    return OptimizeConfig(**base)


@pytest.fixture
def config_factory():
    return make_config
