"""A stress cell the insurance fund bailed out is told apart from a survivor and from a solvent
liquidation: its row carries ``insurance_cover`` (the run summary's ``insurance_cover_total`` as a
fraction of the initial equity, like ``fees``), both engines, single-symbol and portfolio grids,
and the printed tables and HTML reports mark it "insolvent" with the cover.

Hand figures (Binance USD-M BTCUSDT, isolated, 10,000 USDT, taker 0.04 %; tests/engine/
test_insolvent_liquidation.py): buy-and-hold at 50x buys 24.509 BTC at 20,000 (490,180 notional,
margin 9,803.6, fee 196.072); the 5 % funding at 01:00 takes 24,509, so the collateral is
9,803.6 - 24,509 = -14,705.4: the position is bankrupt at the open and the insurance fund pays the
14,705.4 back (1.47054 of the initial equity); the account keeps the 0.328 it never posted. At 2x
the margin holds (cover 0). On the "wick" bars the 50x long is liquidated with margin left (a
solvent liquidation: cover 0).

Portfolio (tests/portfolio/test_portfolio_insolvent.py): BTCUSDT 24x + ETHUSDT 1x on one cross
wallet; the 5 % BTC funding leaves the wallet at -1,980.008, covered by the fund (BTC 1,930.508,
ETH 49.5): 0.1980008 of the initial equity.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from engine.stress import SURVIVAL_COLUMNS, ScenarioInput, StressResult, StressSpec, format_table, run_stress, \
    survival_frame, to_json

CASH = 10_000.0
COVER = 14_705.4  # 9,803.6 margin - 24,509 funding, paid back by the fund
START = pd.Timestamp("2021-01-01", tz="UTC")


def _frame(rows: list[tuple[float, float, float, float]], funding: list[float]) -> pd.DataFrame:
    index = pd.date_range(START, periods=len(rows), freq="1h", tz="UTC", name="open_time")
    frame = pd.DataFrame(rows, columns=["open", "high", "low", "close"], index=index, dtype=float)
    frame["volume"] = 1.0
    frame["funding_rate"] = funding
    frame.attrs["kind"] = "simulated"
    return frame


FUND5 = _frame([(20_000.0, 20_100.0, 19_900.0, 20_000.0), (20_000.0, 20_100.0, 19_950.0, 20_050.0),
                (20_050.0, 20_150.0, 20_000.0, 20_100.0), (20_100.0, 20_200.0, 20_050.0, 20_150.0)],
               [np.nan, 0.05, np.nan, np.nan])
WICK = _frame([(20_000.0, 20_100.0, 19_900.0, 20_000.0), (20_000.0, 20_100.0, 19_950.0, 20_050.0),
               (20_050.0, 20_150.0, 19_500.0, 19_900.0), (19_900.0, 20_000.0, 19_850.0, 19_950.0)],
              [np.nan, 0.001, np.nan, np.nan])
INPUTS = [ScenarioInput("fund5", FUND5, title="5 % funding"), ScenarioInput("wick", WICK, title="2.5 % wick")]


@pytest.fixture(scope="module", params=["auto", "backtrader"])
def grid(request, tmp_path_factory) -> StressResult:
    spec = StressSpec(strategy="buy_and_hold", scenarios=["fund5", "wick"], leverages=[2.0, 50.0],
                      venue="binance_usdm", workers=1, engine=request.param)
    return run_stress(spec, tmp_path_factory.mktemp(request.param), inputs=INPUTS, progress=False)


def _summary(grid: StressResult, run_dir: str) -> dict:
    return json.loads((grid.path / run_dir / "summary.json").read_text())


def test_the_cover_is_the_run_summarys_by_hand_both_engines(grid) -> None:
    s = grid.survival.set_index(["scenario", "leverage"])
    assert set(grid.survival["engine"]) == ({"fast"} if grid.config["options"]["engine"] == "auto" else {"backtrader"})
    bailed = s.loc[("fund5", 50.0)]
    assert bailed["verdict"] == "liquidated"
    assert bailed["insurance_cover"] == pytest.approx(COVER / CASH, rel=1e-9)  # 1.47054
    summary = _summary(grid, bailed["run_dir"])
    assert summary["insurance_cover_total"] == pytest.approx(COVER, rel=1e-9)
    assert bailed["insurance_cover"] * CASH == pytest.approx(summary["insurance_cover_total"], rel=1e-12)
    # fees stay what the account paid (the entry's 196.072), equity left includes the cover (0.328 kept)
    assert bailed["fees"] == pytest.approx(196.072 / CASH, rel=1e-9)
    assert bailed["equity_left"] == pytest.approx(0.328 / CASH, abs=1e-9)
    # every other cell: a survivor, or a solvent liquidation (the wick), has no cover
    for key in (("fund5", 2.0), ("wick", 2.0), ("wick", 50.0)):
        assert s.loc[key, "insurance_cover"] == 0.0, key
        assert _summary(grid, s.loc[key, "run_dir"])["insurance_cover_total"] == 0.0, key
    assert s.loc[("wick", 50.0), "verdict"] == "liquidated"
    assert s.loc[("fund5", 2.0), "verdict"] == s.loc[("wick", 2.0), "verdict"] == "survived"


def test_every_stored_output_carries_the_cover(grid) -> None:
    stored = pd.read_parquet(grid.path / "survival.parquet")
    assert tuple(stored.columns) == SURVIVAL_COLUMNS and stored["insurance_cover"].dtype == "float64"
    assert stored["insurance_cover"].tolist() == grid.survival["insurance_cover"].tolist()
    cells = {(r["scenario"], r["leverage"]): r for r in map(json.loads, (grid.path / "cells.jsonl").read_text().splitlines())}
    assert cells[("fund5", 50.0)]["insurance_cover"] == pytest.approx(COVER / CASH, rel=1e-9)
    assert cells[("wick", 50.0)]["insurance_cover"] == 0.0
    cell = json.loads((grid.path / cells[("fund5", 50.0)]["run_dir"] / "cell.json").read_text())
    assert cell["insurance_cover"] == cells[("fund5", 50.0)]["insurance_cover"]
    out = {(r["scenario"], r["leverage"]): r["insurance_cover"] for r in to_json(grid)["survival"]}  # --json
    assert out == {("fund5", 2.0): 0.0, ("fund5", 50.0): pytest.approx(COVER / CASH, rel=1e-9),
                   ("wick", 2.0): 0.0, ("wick", 50.0): 0.0}
    assert "insurance_cover" in grid.config["units"]


def test_the_printed_table_marks_the_bailed_out_cell(grid) -> None:
    text = format_table(grid)
    lines = text.splitlines()
    [header] = [line for line in lines if line.startswith("strategy ")]
    assert header.endswith("fees fund cover")
    rows = {tuple(line.split()[1:4:2]): line for line in lines if line.startswith("buy_and_hold ")}
    assert rows[("fund5", "50x")].endswith("1.96%    147.05%")  # fees 196.072 / 10,000, then the cover
    assert rows[("wick", "50x")].rstrip().endswith("%") and "LIQUIDATED" in rows[("wick", "50x")]
    for key in (("fund5", "2x"), ("wick", "2x"), ("wick", "50x")):
        assert len(rows[key].rstrip()) < len(rows[("fund5", "50x")]), key  # no cover shown
    assert any(line.startswith("fund cover: the insurance fund's cover of an insolvent liquidation") for line in lines)
    k = lines.index(next(line for line in lines if line.startswith("INSOLVENT liquidations")))
    assert lines[k + 1] == ("  buy_and_hold fund5 50x: fund covered 14,705.40 USDT (147.05 % of the initial equity); "
                            "equity without the fund -147.05 %")
    assert lines[k + 2] == ""
    # a grid without an insolvent cell prints as before: no cover column, no list
    solvent = [r for r in grid.records if r["scenario"] == "wick"]
    plain = format_table(StressResult(path=grid.path, survival=grid.survival, frontier=grid.frontier, config=grid.config,
                                      records=solvent))
    assert "fund cover" not in plain and "INSOLVENT" not in plain
    assert next(line for line in plain.splitlines() if line.startswith("strategy ")).endswith("funding     fees")


def test_the_stress_report_shows_the_cover(grid) -> None:
    from reports.stress_report import render_stress

    html = render_stress(grid.path, render_cells=False).read_text()
    assert ("2 of 4 cells survived; 2 were liquidated (1 insolvent: the insurance fund covered the loss beyond the "
            "margin, up to 147.05 % of the initial equity).") in html
    # the grid table and heatmap label: insolvent apart from the solvent liquidation
    assert '<a href="runs/fund5/x50/report.html">✗ liquidated, insolvent</a>' in html
    assert '<a href="runs/wick/x50/report.html">✗ liquidated</a>' in html
    assert '"text":"\\u2717 insolvent"' in html and '"text":"\\u2717 liq"' in html
    assert "✗ insolvent: liquidated, and the loss went beyond the margin" in html  # the legend's key
    assert "liquidated, equity left 0.0 % (insolvent: the insurance fund covered 147.05 %)" in html  # equity chart
    # the hover and the verdict pill's tooltip: the cover and where equity would be without the fund
    assert ("the insurance fund covered 147.05 % of the initial equity (the loss beyond the margin, credited to the "
            "account, not a fee); without it equity left would be -147.05 %") in html
    # the cells table: a column, the cover on the bailed-out cell only
    assert "Insurance fund&#x27;s cover</th>" in html
    cells = html[html.index('id="cells"'):]
    cells = cells[:cells.index("</table>")]
    rows = cells.split("<tr>")[2:]
    by = {(r.split('<td class="l">')[2].split("<")[0], r.split('<td class="">')[1].split("<")[0]): r for r in rows}
    assert '<td class="">147.05 %</td>' in by[("fund5", "50×")]
    for key in (("fund5", "2×"), ("wick", "2×"), ("wick", "50×")):
        assert '<td class="">–</td><td class="">' in by[key] and "147.05" not in by[key], key


def test_an_older_stress_directory_without_the_column_loads_with_0(grid, tmp_path) -> None:
    import shutil

    from reports.stress_report import load_stress, render_stress

    old = tmp_path / "old"
    shutil.copytree(grid.path, old)
    stored = pd.read_parquet(old / "survival.parquet").drop(columns="insurance_cover")
    stored.to_parquet(old / "survival.parquet")
    _, survival, _ = load_stress(old)
    assert survival["insurance_cover"].tolist() == [0.0] * 4
    html = render_stress(old, render_cells=False).read_text()
    assert "insolvent" not in html and "Insurance fund&#x27;s cover" not in html
    # records of an earlier run being resumed (cells.jsonl lines without the key) build the table with 0
    records = [{k: v for k, v in r.items() if k != "insurance_cover"} for r in grid.records]
    frame = survival_frame(records, ["fund5", "wick"])
    assert tuple(frame.columns) == SURVIVAL_COLUMNS and frame["insurance_cover"].tolist() == [0.0] * 4
    mixed = survival_frame([*records[:2], *grid.records[2:]], ["fund5", "wick"])
    assert mixed["insurance_cover"].notna().all() and mixed["insurance_cover"].dtype == "float64"


# --- the portfolio grid ----------------------------------------------------------------------------


def _flat(p: float) -> tuple[float, float, float, float]:
    return (p, p, p, p)


@pytest.fixture(scope="module", params=["fast", "backtrader"])
def portfolio(request, tmp_path_factory):
    from engine.portfolio_stress import load_portfolio_toml, run_portfolio_stress

    d = tmp_path_factory.mktemp(f"portfolio-{request.param}")
    # BTC settles 5 % at 01:00 (and the base rate after, so the file reads as fractions); ETH has no
    # funding column: the constant 0.01 % of 00:00 is not paid (the positions open at that bar's open)
    btc = _frame([_flat(20_000.0), (20_000.0, 20_100.0, 19_950.0, 20_050.0), _flat(20_050.0), _flat(20_050.0)],
                 [np.nan, 0.05, 0.0001, 0.0001])
    eth = _frame([_flat(1_000.0), (1_000.0, 1_010.0, 990.0, 1_005.0), _flat(1_005.0), _flat(1_005.0)],
                 [np.nan] * 4).drop(columns="funding_rate")
    btc.to_parquet(d / "btc.parquet")
    eth.to_parquet(d / "eth.parquet")
    (d / "p.toml").write_text(f'[portfolio]\nvenue = "binance_usdm"\ncash = 10000\nscenarios = ["312"]\n'
                              f'leverage = [1, 25]\nengine = "{request.param}"\n'
                              f'[[symbols]]\nsymbol = "BTCUSDT"\nweight = 0.96\ndata = "{d / "btc.parquet"}"\n'
                              f'[[symbols]]\nsymbol = "ETHUSDT"\nweight = 0.04\ndata = "{d / "eth.parquet"}"\n')
    spec = load_portfolio_toml(d / "p.toml")
    spec.workers = 1
    return spec, run_portfolio_stress(spec, d / "out", progress=False), d / "out"


def test_the_portfolio_cell_carries_the_cover_both_engines(portfolio) -> None:
    spec, table, out = portfolio
    cells = table.set_index("leverage")
    assert set(table["engine"]) == {spec.engine}
    bailed, solvent = cells.loc[25.0], cells.loc[1.0]
    assert bailed["verdict"] == "liquidated" and solvent["verdict"] == "survived"
    summary = json.loads((out / bailed["run_dir"] / "summary.json").read_text())
    assert summary["insurance_cover_total"] == pytest.approx(1_980.008, abs=1e-9)
    assert bailed["insurance_cover"] == pytest.approx(0.1980008, abs=1e-12)
    assert bailed["insurance_cover"] * CASH == pytest.approx(summary["insurance_cover_total"], rel=1e-12)
    assert bailed["fees"] == pytest.approx(99.008 / CASH, abs=1e-12)  # the entries' taker fees only
    assert solvent["insurance_cover"] == 0.0
    stored = pd.read_parquet(out / "survival.parquet")
    assert stored["insurance_cover"].tolist() == [0.0, pytest.approx(0.1980008, abs=1e-12)]
    jsonl = [json.loads(line) for line in (out / "cells.jsonl").read_text().splitlines()]
    assert [c["insurance_cover"] for c in jsonl] == [0.0, pytest.approx(0.1980008, abs=1e-12)]


def test_the_portfolio_table_and_page_mark_the_insolvent_cell(portfolio, tmp_path) -> None:
    import shutil

    from engine.portfolio_stress import format_table
    from reports.portfolio_report import render_portfolio_stress

    spec, table, out = portfolio
    text = format_table(table, spec).splitlines()
    assert " fund cover  liquidated (account rule)" in text[1]
    [row] = [line for line in text if line.startswith("312") and " 25 " in line]
    assert "liquidated     0.0%" in row and "    19.80%  BTCUSDT 2021-01-01 01:00; ETHUSDT 2021-01-01 01:00" in row
    assert row.endswith("(insolvent: fund covered BTCUSDT 19.31%, ETHUSDT 0.50%)")  # 1,930.508 and 49.5
    assert any(line.startswith("fund cover: the insurance fund's cover of insolvent liquidations") for line in text)
    solvent = format_table(table[table["leverage"] == 1.0], spec)
    assert "fund cover" not in solvent and "insolvent" not in solvent
    page = render_portfolio_stress(out).read_text()
    assert "liquidated, insolvent</span>" in page
    assert "the insurance fund covered 19.80 %; without it equity -19.80 %" in page
    assert "1 cell(s) insolvent: the loss went beyond the margin" in page
    # a portfolio stress directory written before the key existed renders with no cover
    old = tmp_path / "old"
    shutil.copytree(out, old)
    lines = [json.loads(line) for line in (old / "cells.jsonl").read_text().splitlines()]
    (old / "cells.jsonl").write_text("".join(json.dumps({k: v for k, v in c.items() if k != "insurance_cover"}) + "\n"
                                             for c in lines))
    page = render_portfolio_stress(old).read_text()
    assert "insolvent" not in page and ">liquidated</span>" in page
    old_table = pd.DataFrame([{k: v for k, v in c.items() if k != "insurance_cover"} for c in lines])
    assert "fund cover" not in format_table(old_table, spec)


def _strip_cover(directory: Path, drop: str) -> None:
    """Make ``directory`` look like a run written before the column existed (no ``insurance_cover`` in
    cells.jsonl or cell.json) with the cell ``drop`` unfinished (no line, no directory)."""
    import shutil

    kept = []
    for rec in map(json.loads, (directory / "cells.jsonl").read_text().splitlines()):
        rec.pop("insurance_cover", None)
        if rec["run_dir"] == drop:
            shutil.rmtree(directory / drop)
            continue
        (directory / rec["run_dir"] / "cell.json").write_text(json.dumps(rec))
        kept.append(json.dumps(rec) + "\n")
    (directory / "cells.jsonl").write_text("".join(kept))


def test_a_resume_of_an_older_grid_fills_the_column(grid, tmp_path) -> None:
    import shutil

    old = tmp_path / "old"
    shutil.copytree(grid.path, old)
    _strip_cover(old, "runs/fund5/x50")
    spec = StressSpec(strategy="buy_and_hold", scenarios=["fund5", "wick"], leverages=[2.0, 50.0],
                      venue="binance_usdm", workers=1, engine=grid.config["options"]["engine"])
    again = run_stress(spec, old, inputs=INPUTS, progress=False, mode="resume")
    assert again.resumed == 3
    s = again.survival.set_index(["scenario", "leverage"])["insurance_cover"]
    assert s.to_dict() == {("fund5", 2.0): 0.0, ("fund5", 50.0): pytest.approx(COVER / CASH, rel=1e-9),
                           ("wick", 2.0): 0.0, ("wick", 50.0): 0.0}
    assert pd.read_parquet(old / "survival.parquet")["insurance_cover"].tolist() == again.survival["insurance_cover"].tolist()


def test_a_resume_of_an_older_portfolio_grid_fills_the_column(portfolio, tmp_path) -> None:
    import shutil

    from engine.portfolio_stress import run_portfolio_stress

    spec, table, out = portfolio
    old = tmp_path / "old"
    shutil.copytree(out, old)
    _strip_cover(old, table.loc[table["leverage"] == 25.0, "run_dir"].iloc[0])
    again = run_portfolio_stress(spec, old, progress=False, mode="resume")
    assert again.attrs["resumed"] == 1
    assert again["insurance_cover"].tolist() == [0.0, pytest.approx(0.1980008, abs=1e-12)]
    assert pd.read_parquet(old / "survival.parquet")["insurance_cover"].tolist() == again["insurance_cover"].tolist()
