"""``deleverage stress --portfolio FILE.toml``: the grid, the account verdicts, the reports, and
one clear line for each bad input."""

from __future__ import annotations

import io
import json
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pandas as pd
import pytest

from engine.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "portfolio_btc_eth.toml"


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_the_example_grid_gives_an_account_verdict_per_cell(tmp_path: Path) -> None:
    out = tmp_path / "ps"
    code, stdout, err = run(["stress", "--portfolio", str(EXAMPLE), "--scenarios", "519", "--leverage", "1,10",
                             "--out", str(out), "--json"])
    assert code == 0, err
    cells = {c["leverage"]: c for c in json.loads(stdout)["cells"]}
    assert cells[1.0]["verdict"] == "survived" and not cells[1.0]["liquidated"]
    # at 10x gross (6x BTC, 4x ETH) the 519 fall takes the account: both symbols, by the account rule
    assert cells[10.0]["verdict"] == "liquidated"
    assert {part.split()[0] for part in cells[10.0]["liquidations"].split("; ")} == {"BTCUSDT", "ETHUSDT"}
    assert cells[10.0]["data_kind"] == "reconstructed"
    survival = pd.read_parquet(out / "survival.parquet")
    assert list(survival["leverage"]) == [1.0, 10.0]
    cell = out / cells[10.0]["run_dir"]
    frame = pd.read_parquet(cell / "portfolio.parquet")
    assert {"account_margin_ratio", "BTCUSDT_margin_ratio", "ETHUSDT_margin_ratio", "ETHUSDT_liq"} <= set(frame.columns)
    liq = pd.read_parquet(cell / "liquidations.parquet")
    assert liq["account"].all() and set(liq["symbol"]) == {"BTCUSDT", "ETHUSDT"}
    page = (out / "report.html").read_text()
    assert "Portfolio survival grid" in page and "RECONSTRUCTED" in page
    cell_page = (cell / "report.html").read_text()
    assert "margin ratio (account and each symbol" in cell_page and "Liquidations (account-level" in cell_page


def test_the_two_engines_agree_on_a_grid_cell(tmp_path: Path) -> None:
    from engine.portfolio_stress import load_portfolio_toml, run_cell

    spec = load_portfolio_toml(EXAMPLE)
    spec.engine = "fast"
    fast = run_cell(spec, "2024-08-05", 5.0, tmp_path / "f")
    spec.engine = "backtrader"
    slow = run_cell(spec, "2024-08-05", 5.0, tmp_path / "b")
    assert (fast["engine"], slow["engine"]) == ("fast", "backtrader")
    assert fast["verdict"] == slow["verdict"] and fast["liquidations"] == slow["liquidations"]
    assert fast["equity_left"] == pytest.approx(slow["equity_left"], rel=1e-9, abs=1e-12)
    assert fast["rejected_orders"] == slow["rejected_orders"]


@pytest.mark.parametrize("text,message", [
    ('[portfolio]\nvenue = "binance_usdm"\nbogus = 1\n', "unknown key 'bogus' in [portfolio]"),
    ('[portfolio]\ncash = "lots"\n', "[portfolio] cash = 'lots': expected a number"),
    ('[portfolio]\nmargin = "isolated"\n[[symbols]]\nsymbol = "BTCUSDT"\n', 'margin = \'isolated\': expected "cross"'),
    ('[[symbols]]\nsymbol = "BTCUSDT"\nweight = "half"\n[[symbols]]\nsymbol = "ETHUSDT"\n',
     "[[symbols]] #1 weight = 'half': expected a number"),
    ('[[symbols]]\nweight = 0.5\n[[symbols]]\nsymbol = "ETHUSDT"\n', "[[symbols]] #1 has no symbol"),
    ('[[symbols]]\nsymbol = "DOGEUSDT"\n[[symbols]]\nsymbol = "ETHUSDT"\n', "[[symbols]] #1 symbol = 'DOGEUSDT'"),
    ('[[symbols]]\nsymbol = "BTCUSDT"\n', "1 [[symbols]] entry; expected at least two"),
    ('[portfolio]\nleverage = [1, -2]\n[[symbols]]\nsymbol = "BTCUSDT"\n[[symbols]]\nsymbol = "ETHUSDT"\n',
     "leverage = [1.0, -2.0]: expected finite numbers > 0"),
    ('[portfolio\n', "not valid TOML"),
])
def test_bad_toml_is_one_line_naming_the_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.toml"
    path.write_text(text)
    code, _, err = run(["stress", "--portfolio", str(path), "--out", str(tmp_path / "o")])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


def test_a_scenario_without_the_symbol_is_refused_naming_those_with_it(tmp_path: Path) -> None:
    code, _, err = run(["stress", "--portfolio", str(EXAMPLE), "--scenarios", "312,luna", "--out", str(tmp_path / "o")])
    assert code == 2
    assert err.strip() == ("deleverage: error: scenario luna has no ETH path on binance_usdm (for ETHUSDT); scenarios "
                           "with one: 312, 519, 2024-08-05 (or give ETHUSDT a data = FILE)")
    code, _, err = run(["stress", "sma_crossover", "--portfolio", str(EXAMPLE)])
    assert code == 2 and "give no STRATEGY" in err


def test_a_symbol_can_follow_its_own_signal_form_strategy(tmp_path: Path) -> None:
    # ETH follows sma_crossover (12/48) at -0.5 of the cell's leverage; BTC is held at +0.5
    from engine.portfolio_stress import load_portfolio_toml, run_cell
    from strategies.sma_crossover import SmaCrossover

    path = tmp_path / "p.toml"
    path.write_text('[portfolio]\nscenarios = ["519"]\n[[symbols]]\nsymbol = "BTCUSDT"\nweight = 0.5\n'
                    '[[symbols]]\nsymbol = "ETHUSDT"\nweight = -0.5\nstrategy = "sma_crossover"\n'
                    'params = { fast = 12, slow = 48 }\n')
    spec = load_portfolio_toml(path)
    cell = run_cell(spec, "519", 2.0, tmp_path / "o")
    fills = pd.read_parquet(tmp_path / "o" / cell["run_dir"] / "fills.parquet")
    eth = fills[fills["symbol"] == "ETHUSDT"]
    from feeds.scenarios import get_scenario

    bars = get_scenario("519").bars(data="reconstructed", asset="ETH", venue="binance_usdm")
    target = -0.5 * 2.0 * SmaCrossover.target_exposure(bars, fast=12, slow=48, leverage=1.0)
    changes = int((target[1:] != target[:-1]).sum() + (target[0] != 0))
    # every change of the target is an order, and each fills (the leverage setting, twice the largest gross
    # target, leaves the margin check room for the other position's losses): nothing is refused
    assert len(eth) == changes and set(eth["side"]) == {"buy", "sell"} and cell["rejected_orders"] == 0
    assert len(fills[fills["symbol"] == "BTCUSDT"]) == 1
    assert (fills[fills["symbol"] == "BTCUSDT"]["side"] == "buy").all()
