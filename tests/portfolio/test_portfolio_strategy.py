"""``[portfolio] strategy``: one backtrader strategy trading every symbol's feed on the one cross
wallet (backtrader only), in the stress grid and from Python."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.portfolio import Leg, PortfolioSpec, run_strategy
from engine.portfolio_stress import load_portfolio_toml
from risk.errors import DeleverageError
from tests.engine.helpers import bars
from tests.portfolio.helpers import money_gap
from tests.portfolio.test_stress_portfolio import run

FIXTURE = Path(__file__).parent / "fixtures" / "pair_hold.py"
TAKER = 0.0004


def toml(tmp_path: Path, extra: str = "", symbols: str = "") -> Path:
    p = tmp_path / "p.toml"
    p.write_text(f"""[portfolio]
venue = "binance_usdm"
cash = 10000
scenarios = ["519"]
leverage = [1, 10]
data = "reconstructed"
strategy = "{FIXTURE}:PairHold"
params = {{ weights = "0.6,0.4" }}
{extra}
[[symbols]]
symbol = "BTCUSDT"
{symbols}
[[symbols]]
symbol = "ETHUSDT"
""")
    return p


def flat(p: float) -> tuple[float, float, float, float]:
    return (p, p, p, p)


def test_a_strategy_trades_both_feeds_on_one_wallet_hand_checked() -> None:
    btc = bars([flat(40_000.0), flat(40_000.0), flat(44_000.0), flat(44_000.0)])
    eth = bars([flat(3_000.0), flat(3_000.0), flat(2_700.0), flat(2_700.0)])
    spec = PortfolioSpec([Leg("BTCUSDT", btc), Leg("ETHUSDT", eth)], cash=10_000.0, allow_no_funding=True)
    r = run_strategy(spec, f"{FIXTURE}:PairHold", {"weights": "0.5,0.5"}, leverage=2.0)
    assert r.engine == "backtrader" and r.spec_info["strategy"].endswith("PairHold")
    q_b, q_e = r.records["qty"][-1]
    # each leg (PerpStrategy.target_leverage): 10,000 x 0.5 x 0.9999 = 4,999.5 of equity at 2x with room
    # for the taker fee: notional 4,999.5 x 2 / (1 + 2 x 0.0004) = 9,991.0; / price, down to the 0.001 lot
    notional = 10_000 * 0.5 * 0.9999 * 2 / (1 + 2 * TAKER)
    assert notional == pytest.approx(9_991.007, abs=1e-3)
    assert q_b == pytest.approx(0.249) and q_e == pytest.approx(3.330)  # 0.24978 and 3.33034
    fees = (q_b * 40_000 + q_e * 3_000) * TAKER
    # BTC +10 %, ETH -10 % on the one wallet
    assert r.equity[-1] == pytest.approx(10_000 - fees + q_b * 4_000 - q_e * 300, rel=1e-12)
    assert abs(money_gap(r, spec.cash)) < 1e-9 * spec.cash
    assert len(r.frame()) == 4 and {"BTCUSDT_margin_ratio", "ETHUSDT_liq"} <= set(r.frame().columns)


def test_the_grid_with_a_portfolio_strategy(tmp_path: Path) -> None:
    out = tmp_path / "ps"
    code, stdout, err = run(["stress", "--portfolio", str(toml(tmp_path)), "--out", str(out), "--json",
                             "--workers", "1"])
    assert code == 0, err
    cells = {c["leverage"]: c for c in json.loads(stdout)["cells"]}
    assert {c["engine"] for c in cells.values()} == {"backtrader"}
    assert cells[1.0]["verdict"] == "survived"
    assert cells[10.0]["verdict"] == "liquidated"
    assert {part.split()[0] for part in cells[10.0]["liquidations"].split("; ")} == {"BTCUSDT", "ETHUSDT"}
    summary = json.loads((out / cells[10.0]["run_dir"] / "summary.json").read_text())
    assert summary["portfolio"]["strategy"].endswith("pair_hold.py:PairHold")
    assert "Portfolio survival grid" in (out / "report.html").read_text()


@pytest.mark.parametrize("extra,symbols,message", [
    ('engine = "fast"', "", 'engine = "fast": strategy = .* runs on backtrader only'),
    ("", "weight = 0.6", r"\[\[symbols\]\] #1 weight: \[portfolio\] strategy = .* trades every symbol itself"),
    ("", 'strategy = "sma_crossover"', r"#1 strategy: \[portfolio\] strategy"),
])
def test_bad_strategy_portfolios_are_one_line(tmp_path: Path, extra: str, symbols: str, message: str) -> None:
    with pytest.raises(DeleverageError, match=message):
        load_portfolio_toml(toml(tmp_path, extra, symbols))


def test_an_unknown_strategy_param_is_one_line(tmp_path: Path) -> None:
    p = toml(tmp_path)
    p.write_text(p.read_text().replace('weights = "0.6,0.4"', "wieghts = 1"))
    with pytest.raises(DeleverageError, match=r"\[portfolio\] strategy = .*wieghts"):
        load_portfolio_toml(p)
