"""How the reports write values: no exponent, no -0.00, percent, UTC times, yes/no, words,
quantities with their unit (hand-written expectations)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from reports.format import (config_rows, fmt_amount, fmt_pct, fmt_qty, fmt_time, instrument_units, label, times_word)


@pytest.mark.parametrize("value, text", [
    (1.10944e-05, "0.00001109"), (-0.0000001, "-0.00000010"), (-1e-13, "0.00"), (-0.004, "-0.004000"), (0.586, "0.5860"),
    (194821.0, "194,821.00"), (7192.48926, "7,192.49"), (math.nan, "–"), (None, "–"),
])
def test_amounts_have_no_exponent_and_no_negative_zero(value, text) -> None:
    assert fmt_amount(value) == text


def test_percent_and_times() -> None:
    assert fmt_pct(-0.00001, 2) == "0.00 %" and fmt_pct(0.054321) == "5.4 %" and fmt_pct(math.nan) == "–"
    assert fmt_time(pd.NaT) == "–" and fmt_time("2020-03-12T10:41:00+00:00") == "2020-03-12 10:41 UTC"
    assert fmt_time(pd.Timestamp("2020-03-12 10:41:07")) == "2020-03-12 10:41:07 UTC"
    assert [times_word(n) for n in (1, 2, 3)] == ["once", "twice", "3 times"]


def test_quantities_carry_their_unit() -> None:
    xbt = instrument_units({"venue": "bitmex", "symbol": "XBTUSD", "settle_currency": "BTC", "inverse": True})
    assert xbt == {"base": "BTC", "quote": "USD", "settle": "BTC", "qty": "USD contracts"}
    assert fmt_qty(194821.0, xbt["qty"]) == "194,821 USD contracts"
    usdm = instrument_units({"venue": "binance_usdm", "symbol": "BTCUSDT", "settle_currency": "USDT"})
    assert usdm["qty"] == "BTC" and usdm["quote"] == "USDT" and fmt_qty(9.96, usdm["qty"]) == "9.960 BTC"
    coinm = instrument_units({"venue": "binance_coinm", "symbol": "BTCUSD_PERP", "settle_currency": "BTC"})
    assert coinm["qty"] == "contracts of 100 USD"


def test_a_config_reads_as_a_table() -> None:
    rows = dict(config_rows({"margin_mode": "isolated", "analyzers": True, "funding_rate": None, "leverage": 25.0,
                             "data": {"kind": "reconstructed"}, "leverages": [3.0, 10.0], "wipeout": 0.1}))
    assert rows == {"Margin mode": "isolated", "backtrader analyzers": "yes", "Constant funding rate (per interval)": "–",
                    "Leverage": "25×", "Data · Kind": "reconstructed", "Leverage levels": "3×, 10×",
                    "Wipe-out floor (equity left)": "10.00 %"}
    assert label("min_distance_to_liquidation") == "Closest distance to liquidation" and label("foo_bar") == "Foo bar"


def test_the_insurance_fund_label_names_its_gap_losses() -> None:
    """``insurance_fund`` is the fund's result: clearance fees in, covers and (since gapped closes
    are booked at the trigger open) gap losses out, so its label says so."""
    assert label("insurance_fund") == "Insurance fund's result (fees in, covers and gap losses out)"
