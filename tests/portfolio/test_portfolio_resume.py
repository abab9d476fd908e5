"""``stress --portfolio``: each cell written whole as it finishes, ``--resume`` after a kill gives the
same table, ``--workers`` runs the cells on a pool (the machinery of the single-symbol grid)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

import engine.portfolio_stress as ps
from engine.portfolio_stress import load_portfolio_toml, run_portfolio_stress
from risk.errors import DeleverageError
from tests.portfolio.test_stress_portfolio import EXAMPLE, run


def small_spec() -> ps.PortfolioStressSpec:
    spec = load_portfolio_toml(EXAMPLE)
    spec.scenarios = ["519"]
    spec.leverages = [1.0, 3.0, 10.0]
    spec.workers = 1
    return spec


def test_a_killed_grid_resumes_to_the_same_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = run_portfolio_stress(small_spec(), tmp_path / "whole", progress=False)
    assert list(whole["verdict"]) == ["survived", "liquidated", "liquidated"]

    real_cell = ps.run_cell
    calls: list[float] = []

    def killed_at_second(spec, scenario, leverage, out):  # noqa: ANN001
        calls.append(leverage)
        if len(calls) == 2:  # the kill lands while the second cell is being written
            (Path(out) / "runs" / "519" / ".tmp-x3-deadbeef").mkdir(parents=True)
            raise KeyboardInterrupt
        return real_cell(spec, scenario, leverage, out)

    monkeypatch.setattr(ps, "run_cell", killed_at_second)
    out = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        run_portfolio_stress(small_spec(), out, progress=False)
    with (out / "cells.jsonl").open("a") as fh:
        fh.write('{"scenario": "519", "lev')  # a line torn by the kill
    first = (out / "runs" / "519" / "x1" / "cell.json").read_text()
    assert not (out / "runs" / "519" / "x3").exists() and not (out / "survival.parquet").exists()

    # a second run without --resume is refused; --resume runs only the two missing cells
    with pytest.raises(DeleverageError, match="--resume"):
        run_portfolio_stress(small_spec(), out, progress=False)
    calls.clear()
    monkeypatch.setattr(ps, "run_cell", lambda *a: (calls.append(a[2]), real_cell(*a))[1])
    resumed = run_portfolio_stress(small_spec(), out, progress=False, mode="resume")
    assert calls == [3.0, 10.0] and resumed.attrs["resumed"] == 1
    assert (out / "runs" / "519" / "x1" / "cell.json").read_text() == first  # the finished cell is kept as is
    assert not list(out.glob("runs/**/.tmp-*"))
    pd.testing.assert_frame_equal(pd.read_parquet(out / "survival.parquet"),
                                  pd.read_parquet(tmp_path / "whole" / "survival.parquet"))
    lines = [json.loads(x) for x in (out / "cells.jsonl").read_text().splitlines()]
    assert [c["leverage"] for c in lines] == [1.0, 3.0, 10.0]
    config = json.loads((out / "stress.json").read_text())
    assert config["kind"] == "portfolio" and len(config["resumed"]) == 1


def test_resume_with_other_options_is_refused_naming_them(tmp_path: Path) -> None:
    spec = small_spec()
    spec.leverages = [1.0]
    run_portfolio_stress(spec, tmp_path / "a", progress=False)
    spec.leverages = [1.0, 2.0]
    spec.cash = 20_000.0
    with pytest.raises(DeleverageError) as err:
        run_portfolio_stress(spec, tmp_path / "a", progress=False, mode="resume")
    assert "--leverage: [1.0] there, [1.0, 2.0] now" in str(err.value) and "cash" in str(err.value)


def test_workers_and_resume_from_the_command_line(tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["stress", "--portfolio", str(EXAMPLE), "--scenarios", "519", "--leverage", "1,10", "--out", str(out),
            "--json"]
    code, stdout, err = run([*args, "--workers", "2"])
    assert code == 0, err
    pooled = {c["leverage"]: c for c in json.loads(stdout)["cells"]}
    assert [pooled[1.0]["verdict"], pooled[10.0]["verdict"]] == ["survived", "liquidated"]
    code, _, err = run(args)
    assert code != 0 and "already holds a stress run: pass --resume" in err and "Traceback" not in err
    code, stdout, err = run([*args, "--resume", "--workers", "1"])
    assert code == 0, err
    again = {c["leverage"]: c for c in json.loads(stdout)["cells"]}
    assert again == pooled  # nothing left to run: the same records, read back from cells.jsonl
    code, _, err = run([*args, "--workers", "0", "--overwrite"])
    assert code != 0 and "--workers 0: expected at least 1" in err


def test_partial_liquidation_in_the_portfolio_grid(tmp_path: Path) -> None:
    # 519 at 10x on a 10,000 USDT account: Binance's restoring slice cannot help small positions (the
    # 1.25 % clearance fee exceeds their maintenance rates), so the cells equal the whole-position ones
    args = ["stress", "--portfolio", str(EXAMPLE), "--scenarios", "519", "--leverage", "10", "--json",
            "--workers", "1"]
    code, stdout, err = run([*args, "--out", str(tmp_path / "whole")])
    assert code == 0, err
    code, sliced, err = run([*args, "--partial-liquidation", "--out", str(tmp_path / "part")])
    assert code == 0, err
    a, b = json.loads(stdout)["cells"][0], json.loads(sliced)["cells"][0]
    assert b["liquidated"] and b["liquidations"] == a["liquidations"] and b["equity_left"] == a["equity_left"]
    config = json.loads((tmp_path / "part" / "stress.json").read_text())
    assert config["partial_liquidation"] is True and config["options"]["partial_liquidation"] is True
    summary = json.loads((tmp_path / "part" / b["run_dir"] / "summary.json").read_text())
    assert summary["portfolio"]["partial_liquidation"] is True
    # a resume with the other setting is refused, naming it
    code, _, err = run([*args, "--out", str(tmp_path / "part"), "--resume"])
    assert code != 0 and "--partial-liquidation: true there, false now" in err
