"""Dated bracket tables, venue registry, funding sign, and the clear errors of bad input."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

import risk
from risk import DeleverageError, PerpInstrument, TierTable
from risk.formulas import funding_payment
from risk.venues import DEFAULT_SYMBOLS, INSTRUMENTS, VENUES


def ts(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc).timestamp()


# --- table selection by date ------------------------------------------------------------------

@pytest.mark.parametrize(("when", "base_mmr"), [
    pytest.param("2019-06-01", 0.0050, id="2019: 0.50% (312-era base MM)"),
    pytest.param("2020-03-12T23:59:59", 0.0050, id="312: 0.50%"),
    pytest.param("2020-04-16T23:59:59", 0.0050, id="last second before the cut: 0.50%"),
    pytest.param("2020-04-17", 0.0045, id="BitMEX blog 17 Apr 2020: 0.45%"),
    pytest.param("2020-05-04T12:00:00", 0.0045, id="between the cuts: 0.45%"),
    pytest.param("2020-05-05", 0.0040, id="BitMEX 5 May 2020 announcement: 0.40%"),
    pytest.param("2021-05-19", 0.0040, id="519: 0.40%"),
])
def test_bitmex_base_maintenance_by_date(when, base_mmr):
    inst = risk.get_instrument("bitmex", "XBTUSD")
    assert inst.tiers_at(ts(when)).bracket(1.0)[0] == pytest.approx(base_mmr)


def test_bitmex_risk_limit_steps():
    # riskLimitsExamples: base risk limit 200 XBT; each 100 XBT step adds 0.5 % to MM (and IM)
    table = risk.get_instrument("bitmex").tiers_at(ts("2020-03-12"))
    assert table.bracket(200.0)[0] == pytest.approx(0.005)  # 200 XBT is still the base limit
    assert table.bracket(250.0)[0] == pytest.approx(0.010)
    assert table.bracket(301.0)[0] == pytest.approx(0.015)
    assert table.cum_rule == "step" and table.bracket(250.0)[1] == 0.0


def test_latest_table_when_no_timestamp_and_earliest_before_the_first_date():
    inst = risk.get_instrument("binance_usdm", "BTCUSDT")
    assert inst.tiers_at() is inst.tier_tables[-1]
    assert inst.tiers_at().effective_from == "2024-06-28"
    assert inst.tiers_at(ts("2020-03-12")).effective_from == "2021-03-18"  # earliest we can cite
    assert inst.tiers_at(ts("2021-05-19")).bracket(3_500_000) == (0.025, pytest.approx(16_300), 20.0)
    assert inst.tiers_at(ts("2024-07-01")).bracket(3_500_000)[0] == 0.01


def test_binance_coinm_table_switch():
    inst = risk.get_instrument("binance_coinm")
    assert inst.symbol == "BTCUSD_PERP" and inst.inverse and inst.contract_size == 100.0
    assert inst.max_leverage(7.0, ts("2021-02-05")) == 125.0  # 2020 table: 125x up to 10 BTC
    assert inst.max_leverage(7.0, ts("2021-05-19")) == 100.0  # 2021 table: 125x up to 5 BTC


def test_liquidation_price_follows_the_table_in_force():
    # 2 BTC at 60k, 20x: bracket 0.5 %/50 in both Binance tables -> same price; BitMEX: MM moves with the date
    a = risk.liquidation_price("bitmex", "long", 10_000, 10_000, 0.0415, timestamp=ts("2020-03-12"))
    b = risk.liquidation_price("bitmex", "long", 10_000, 10_000, 0.0415, timestamp=ts("2020-05-05"))
    assert a == pytest.approx(10_000 / (1 + 0.0415 - 0.00575))
    assert b == pytest.approx(10_000 / (1 + 0.0415 - 0.00475))


# --- registry ---------------------------------------------------------------------------------

def test_every_venue_has_a_default_symbol_and_instruments():
    assert set(DEFAULT_SYMBOLS) == set(VENUES)
    for venue, symbol in DEFAULT_SYMBOLS.items():
        inst = risk.get_instrument(venue)
        assert (inst.venue, inst.symbol) == (venue, symbol)


@pytest.mark.parametrize(("venue", "symbol", "inverse", "contract_size", "settle"), [
    ("binance_usdm", "BTCUSDT", False, 1.0, "USDT"),
    ("binance_usdm", "ETHUSDT", False, 1.0, "USDT"),
    ("binance_coinm", "BTCUSD_PERP", True, 100.0, "BTC"),
    ("binance_coinm", "ETHUSD_PERP", True, 10.0, "ETH"),
    ("bitmex", "XBTUSD", True, 1.0, "BTC"),
    ("bybit", "BTCUSDT", False, 1.0, "USDT"),
    ("bybit", "BTCUSD", True, 1.0, "BTC"),
    ("bybit", "ETHUSD", True, 1.0, "ETH"),
    ("okx", "BTC-USDT-SWAP", False, 0.01, "USDT"),
    ("hyperliquid", "BTC", False, 1.0, "USDC"),
    ("hyperliquid", "ETH", False, 1.0, "USDC"),
])
def test_shipped_instruments(venue, symbol, inverse, contract_size, settle):
    inst = INSTRUMENTS[(venue, symbol)]
    assert (inst.inverse, inst.contract_size, inst.settle_currency) == (inverse, contract_size, settle)
    for table in inst.tier_tables:
        assert table.source.strip()


def test_bitmex_ethusd_quanto_is_not_shipped():
    with pytest.raises(DeleverageError, match="unknown instrument 'ETHUSD' on bitmex; known: XBTUSD"):
        risk.get_instrument("bitmex", "ETHUSD")


# --- funding sign -----------------------------------------------------------------------------

@pytest.mark.parametrize(("inverse", "signed_qty", "cs", "price", "rate", "expected"), [
    pytest.param(False, 2.0, 1.0, 60_000, 0.0007, -84.0, id="linear long, positive rate: pays (mechanics 2.1)"),
    pytest.param(False, -2.0, 1.0, 60_000, 0.0007, 84.0, id="linear short, positive rate: receives"),
    pytest.param(False, 2.0, 1.0, 60_000, -0.0007, 84.0, id="linear long, negative rate: receives"),
    pytest.param(False, -2.0, 1.0, 60_000, -0.0007, -84.0, id="linear short, negative rate: pays"),
    pytest.param(True, 1_000.0, 100.0, 50_000, 0.0001, -0.0002, id="inverse long 2 BTC of contracts: pays 0.0002 BTC (coin)"),
    pytest.param(True, -1_000.0, 100.0, 50_000, 0.0001, 0.0002, id="inverse short: receives 0.0002 BTC"),
    pytest.param(True, 10_000.0, 1.0, 4_000, -0.00375, 0.009375, id="XBTUSD long at the -0.375% cap (312): receives 0.009375 XBT"),
])
def test_funding_sign_convention(inverse, signed_qty, cs, price, rate, expected):
    assert funding_payment(inverse, signed_qty, cs, price, rate) == pytest.approx(expected, rel=1e-12)


def test_funding_that_is_a_cost_moves_a_bitmex_liquidation_closer():
    kwargs = dict(maintenance_rate=0.005)
    base = risk.liquidation_price("bitmex", "long", 10_000, 10_000, 0.0415, funding_rate=0.0, **kwargs)
    paying = risk.liquidation_price("bitmex", "long", 10_000, 10_000, 0.0415, funding_rate=0.0001, **kwargs)
    receiving = risk.liquidation_price("bitmex", "long", 10_000, 10_000, 0.0415, funding_rate=-0.0001, **kwargs)
    assert paying > base == receiving


# --- validation errors ------------------------------------------------------------------------

def table(**overrides):
    args = dict(effective_from="2021-01-01", floors=(0, 10), mmrs=(0.01, 0.02), max_leverages=(50, 25), source="test")
    args.update(overrides)
    return TierTable(**args)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"floors": (0,), "mmrs": (0.01, 0.02)}, "same non-zero length"),
    ({"floors": (), "mmrs": (), "max_leverages": ()}, "same non-zero length"),
    ({"floors": (5, 10)}, "floors must start at 0 and increase strictly"),
    ({"floors": (0, 0)}, "floors must start at 0 and increase strictly"),
    ({"mmrs": (0.01, 1.5)}, r"maintenance rates must be fractions in \(0, 1\)"),
    ({"mmrs": (0.0, 0.02)}, r"maintenance rates must be fractions in \(0, 1\)"),
    ({"max_leverages": (50, 0)}, "max_leverages must be positive"),
    ({"effective_from": "March 2021"}, "effective_from must be an ISO date"),
    ({"source": "  "}, "source must cite"),
    ({"cum_rule": "stepped"}, "cum_rule must be 'continuous' or 'step'"),
])
def test_tier_table_validation(overrides, message):
    with pytest.raises(DeleverageError, match=message):
        table(**overrides)


def instrument(**overrides):
    args = dict(symbol="X", venue="binance_usdm", inverse=False, contract_size=1.0, tick_size=0.1, lot_size=0.001,
                min_notional=5.0, settle_currency="USDT", maker_fee=0.0, taker_fee=0.0, liquidation_fee_rate=0.0,
                funding_interval_hours=8, tier_tables=(table(),))
    args.update(overrides)
    return PerpInstrument(**args)


@pytest.mark.parametrize(("overrides", "message"), [
    ({"tier_tables": ()}, "at least one tier table is required"),
    ({"contract_size": 0.0}, "contract_size, tick_size and lot_size must be positive"),
    ({"tick_size": -1.0}, "contract_size, tick_size and lot_size must be positive"),
])
def test_instrument_validation(overrides, message):
    with pytest.raises(DeleverageError, match=message):
        instrument(**overrides)


def test_instrument_sorts_tables_by_date():
    inst = instrument(tier_tables=(table(effective_from="2022-01-01"), table(effective_from="2020-01-01")))
    assert [t.effective_from for t in inst.tier_tables] == ["2020-01-01", "2022-01-01"]


@pytest.mark.parametrize(("call", "message"), [
    (lambda: risk.liquidation_price("ftx", "long", 1, 1, 1), "unknown venue 'ftx'; known: binance_usdm"),
    (lambda: risk.liquidation_price("bybit", "long", 1, 1, 1, symbol="DOGEUSDT"), "unknown instrument 'DOGEUSDT' on bybit"),
    (lambda: risk.liquidation_price("bybit", "up", 1, 1, 1), "side must be 'long' or 'short', got 'up'"),
    (lambda: risk.liquidation_price("bybit", "long", 100, 0, 1), "quantity and entry_price must be positive"),
    (lambda: risk.liquidation_price("bybit", "long", -5, 1, 1), "quantity and entry_price must be positive"),
    (lambda: risk.liquidation_price("bybit", "long", 100, 1, 1, margin_mode="portfolio"), "margin_mode must be 'isolated' or 'cross'"),
    (lambda: risk.liquidation_price("bybit", "long", 100, 1, 1, other_maintenance_margin=5), "only apply to cross margin"),
    (lambda: risk.liquidation_price("bybit", "long", 100, 1, 1, tiers=[(10, 0.01)]), "tiers must start with a floor of 0"),
    (lambda: risk.bankruptcy("okx", "long", 100, 0, 1), "quantity and entry_price must be positive"),
])
def test_public_api_errors(call, message):
    with pytest.raises(DeleverageError, match=message):
        call()


def test_tiers_override_follows_the_venue_cum_rule():
    # Bybit applies the tier's rate to the whole position (no deduction): a 3M position at 1 %
    step = risk.liquidation_price("bybit", "long", 30_000, 100, 300_000, tiers=[(0, 0.005), (2_000_000, 0.01)])
    assert step == pytest.approx(30_000 - (300_000 - 3_000_000 * 0.01) / 100)
    # Binance deducts the continuous amount: cum = 2M x 0.5 % = 10,000
    cont = risk.liquidation_price("binance_usdm", "long", 30_000, 100, 300_000, tiers=[(0, 0.005), (2_000_000, 0.01)])
    assert cont == pytest.approx((3_000_000 - 300_000 - 10_000) / (100 * 0.99))


def test_cannot_be_liquidated_returns_none():
    assert risk.liquidation_price("binance_usdm", "long", 60_000, 1, 60_000, maintenance_rate=0.004) is None  # 1x long
    assert risk.bankruptcy("binance_usdm", "long", 60_000, 1, 60_000) is None


def test_funding_schedule_places_settlements_on_the_bars_that_hold_them() -> None:
    from risk.formulas import funding_schedule, next_funding_time

    hours = np.array([0.0, 8.0, 16.0])
    day = 737_000.0  # a UTC midnight in backtrader's date numbers
    assert next_funding_time(day + 1 / 24, hours) == day + 8 / 24
    assert next_funding_time(day + 16 / 24, hours) == day + 16 / 24
    assert next_funding_time(day + 17 / 24, hours) == day + 1
    # hourly bars from 00:00: settlements at 00, 08, 16 and the next 00 (bar 24)
    rates = funding_schedule(day + np.arange(30) / 24, hours, 0.0001)
    assert list(np.flatnonzero(~np.isnan(rates))) == [0, 8, 16, 24]
    # 5-hour bars from 03:00: a settlement lands on the first bar opening at or after it
    # (bars at 03, 08, 13, 18, 23 and 04 the next day: 08:00 -> bar 1, 16:00 -> bar 3, 00:00 -> bar 5)
    rates = funding_schedule(day + (3 + 5 * np.arange(6)) / 24, hours, -0.0002)
    assert list(np.flatnonzero(~np.isnan(rates))) == [1, 3, 5]
    assert rates[1] == -0.0002
