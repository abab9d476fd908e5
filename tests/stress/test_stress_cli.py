"""``deleverage stress`` from the command line and a TOML config (CLI > file > defaults)."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from engine.cli import main
from engine.config import load_config
from risk.errors import DeleverageError


def test_config_file_and_command_line_precedence(tmp_path, capsys) -> None:
    cfg = tmp_path / "s.toml"
    cfg.write_text('[strategy]\nname = "sma_crossover"\n[params]\nfast = 5\nslow = 20\n'
                   '[stress]\nscenarios = ["2021-07-26"]\nleverage = [1, 3]\nmargin = "cross"\n')
    out = tmp_path / "st"
    code = main(["stress", "--config", str(cfg), "--leverage", "2", "--param", "slow=30", "--json", "--no-report",
                 "--workers", "1", "--out", str(out)])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["config"]["params"] == {"fast": 5, "slow": 30}  # file, then the command line
    assert doc["config"]["leverages"] == [2.0] and doc["config"]["margin_mode"] == "cross"
    assert doc["config"]["data_kinds"] == ["reconstructed"] and "RECONSTRUCTED" in doc["config"]["data_note"]
    survival = pd.read_parquet(out / "survival.parquet")
    assert survival[["strategy", "scenario", "leverage", "margin_mode", "data_kind"]].values.tolist() == [
        ["sma_crossover", "2021-07-26", 2.0, "cross", "reconstructed"]]
    assert [c["scenario"] for c in doc["survival"]] == ["2021-07-26"]


def test_config_errors_name_what_was_wrong(tmp_path, capsys) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[stress]\nleverages = [1]\n")
    with pytest.raises(DeleverageError, match="unknown key 'leverages' in \\[stress\\]"):
        load_config(bad)
    bad.write_text("[strategy]\nname = 3\n")
    with pytest.raises(DeleverageError, match="wrong type"):
        load_config(bad)
    assert main(["stress", "buy_and_hold", "--leverage", "2,x"]) == 2
    assert "'x' is not a number" in capsys.readouterr().err
    assert main(["stress", "--scenarios", "312"]) == 2
    assert "no strategy given" in capsys.readouterr().err
