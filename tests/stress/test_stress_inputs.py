"""``deleverage stress``, ``demo`` and ``stress --portfolio``: bad input is one line with nothing
printed before it; a TOML config gets the command line's checks; lists never drop or repeat items."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.cli import main
from engine.config import parse_list
from engine.stress import StressSpec
from risk.errors import DeleverageError
from tests.cli_errors import one_line_error

STRESS = ["stress", "buy_and_hold", "--scenarios", "312", "--leverage", "3", "--data", "reconstructed",
          "--workers", "1", "--no-report"]




def _config(tmp_path: Path, line: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text('[strategy]\nname = "buy_and_hold"\n[stress]\nscenarios = ["312"]\ndata = "reconstructed"\n'
                    f'leverage = [3]\n{line}\n')
    return path


@pytest.mark.parametrize("line, expected", [
    ("cash = inf", "[stress] cash = inf: expected a finite number > 0"),
    ("cash = -5", "[stress] cash = -5: expected a finite number > 0"),
    ("funding_rate = nan", "[stress] funding_rate = nan: expected a finite number"),
    ("funding_rate = inf", "[stress] funding_rate = inf: expected a finite number"),
    ("workers = 0", "[stress] workers = 0: expected a whole number of at least 1"),
    ('venue = "nope"', "[stress] venue = 'nope': unknown venue 'nope'; known: binance_usdm"),
    ('data_path = "/nonexist"', "[stress] data_path = '/nonexist': no such file or folder"),
])
def test_a_config_file_gets_the_command_lines_checks(tmp_path, capsys, line, expected):
    cfg = _config(tmp_path, line)
    assert main(["stress", "--config", str(cfg), "--out", str(tmp_path / "o"), "--no-report"]) == 2
    got = one_line_error(capsys)
    assert got.startswith(f"deleverage: error: config file {cfg}: ") and expected in got
    assert not (tmp_path / "o").exists()


def test_the_spec_refuses_what_the_command_line_refuses(tmp_path):
    """The Python API too: no NaN/inf cash or funding, so stress.json can never hold Infinity."""
    for kwargs, expected in (({"cash": float("inf")}, "--cash inf: expected a finite number > 0"),
                             ({"funding_rate": float("nan")}, "--funding-rate nan: expected a finite number"),
                             ({"workers": 0}, "--workers 0: expected a whole number of at least 1"),
                             ({"venue": "nope"}, "--venue nope: unknown venue 'nope'"),
                             ({"data_path": str(tmp_path / "none")}, f"--data-path {tmp_path / 'none'}: no such file"),
                             ({"data_path": str(tmp_path)}, (f"--data-path {tmp_path} has no effect with --data "
                                                            "reconstructed"))):
        spec = StressSpec(strategy="buy_and_hold", scenarios=["312"], leverages=[3.0], data_kind="reconstructed",
                          **kwargs)
        with pytest.raises(DeleverageError) as err:
            spec.validate()
        assert str(err.value).startswith(expected)


@pytest.mark.parametrize("args, expected", [
    (["--venue", "nope"], "--venue nope: unknown venue 'nope'; known: binance_usdm"),
    (["--workers", "0"], "--workers 0: expected a whole number of at least 1"),
    (["--data-path", "/nonexist"], "--data-path /nonexist: no such file or folder"),
    (["--data-path", "."], "--data-path . has no effect with --data reconstructed"),
])
def test_stress_errors_are_one_line_without_a_plan_line(tmp_path, capsys, args, expected):
    assert main([*STRESS, *args, "--out", str(tmp_path / "o")]) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_a_non_empty_out_is_one_line_without_a_plan_line(tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "mine.txt").write_text("x")
    assert main([*STRESS, "--out", str(out)]) == 2
    assert "is not empty and is not a stress run" in one_line_error(capsys)
    assert main(["demo", "--strategies", "buy_and_hold", "--scenarios", "312", "--leverage", "3", "--no-report",
                 "--out", str(out)]) == 2
    assert "is not empty and is not a stress run" in one_line_error(capsys)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]


def test_list_items_are_never_dropped_or_repeated():
    assert parse_list("312, 519", "--scenarios") == ["312", "519"]
    assert parse_list(["1", 2.5], "--leverage", float) == [1.0, 2.5]
    for value, cast, expected in (("1,,2", float, "--leverage '1,,2': item 2 is empty"),
                                  ("312,", str, "--leverage '312,': item 2 is empty"),
                                  (",312", str, "--leverage ',312': item 1 is empty"),
                                  ("1,1.0", float, "--leverage '1,1.0': 1.0 is given twice"),
                                  ("a,b,a", str, "--leverage 'a,b,a': a is given twice"),
                                  (" , ", str, "--leverage: empty list")):
        with pytest.raises(DeleverageError) as err:
            parse_list(value, "--leverage", cast)
        assert str(err.value).startswith(expected)


@pytest.mark.parametrize("argv, expected", [
    (["demo", "--strategies", "buy_and_hold,buy_and_hold"], ("--strategies 'buy_and_hold,buy_and_hold': "
                                                            "buy_and_hold is given twice")),
    (["demo", "--strategies", "buy_and_hold,"], "--strategies 'buy_and_hold,': item 2 is empty"),
    (["demo", "--leverage", "1,,2"], "--leverage '1,,2': item 2 is empty"),
    (["demo", "--scenarios", "312,"], "--scenarios '312,': item 2 is empty"),
    (["stress", "buy_and_hold", "--leverage", "1,,2"], "--leverage '1,,2': item 2 is empty"),
    (["stress", "buy_and_hold", "--scenarios", "312,"], "--scenarios '312,': item 2 is empty"),
    (["stress", "buy_and_hold", "--scenarios", "312,312"], "--scenarios '312,312': 312 is given twice"),
])
def test_list_options_are_one_line(tmp_path, capsys, argv, expected):
    assert main([*argv, "--no-report", "--out", str(tmp_path / "o")]) == 2
    assert expected in one_line_error(capsys)
    assert not (tmp_path / "o").exists()


def test_run_stress_refuses_a_strategy_twice(tmp_path):
    from engine.stress import run_stress

    spec = StressSpec(strategy="buy_and_hold", scenarios=["312"], leverages=[3.0], data_kind="reconstructed")
    with pytest.raises(DeleverageError, match="strategies buy_and_hold given twice"):
        run_stress(spec, tmp_path / "o", strategies=["buy_and_hold", "sma_crossover", "buy_and_hold"])
    assert not (tmp_path / "o").exists()


PORTFOLIO = '[portfolio]\nscenarios = ["312"]\nleverage = [3]\ndata = "reconstructed"\n' \
            '[[symbols]]\nsymbol = "BTCUSDT"\nweight = {a}\n[[symbols]]\nsymbol = "ETHUSDT"\nweight = {b}\n'


@pytest.mark.parametrize("a, b, shown", [("0.9", "0.4", "|0.9| + |0.4| = 1.3"),
                                         ("0.3", "0.3", "|0.3| + |0.3| = 0.6"),
                                         ("1.5", "-0.5", "|1.5| + |-0.5| = 2")])
def test_portfolio_weights_must_sum_to_one(tmp_path, capsys, a, b, shown):
    """The grid's leverage is the account's gross leverage: weights summing to 1.3 would run
    3.9x gross under the label 3x, so they are refused."""
    path = tmp_path / "p.toml"
    path.write_text(PORTFOLIO.format(a=a, b=b))
    assert main(["stress", "--portfolio", str(path), "--out", str(tmp_path / "o"), "--no-report"]) == 2
    got = one_line_error(capsys)
    assert f"{path}: [[symbols]] weights: {shown}; expected absolute weights summing to 1" in got
    assert not (tmp_path / "o").exists()


def test_portfolio_weights_summing_to_one_with_a_short_are_accepted(tmp_path):
    from engine.portfolio_stress import load_portfolio_toml

    path = tmp_path / "p.toml"
    path.write_text(PORTFOLIO.format(a="0.7", b="-0.3"))
    spec = load_portfolio_toml(path)
    assert [(e.symbol, e.weight) for e in spec.symbols] == [("BTCUSDT", 0.7), ("ETHUSDT", -0.3)]


@pytest.mark.parametrize("extra, expected", [
    (["--param", "fast=3"], ("--param does not apply to --portfolio (set a symbol's params = { ... } under its "
                            "[[symbols]] entry, or [portfolio] params, in the TOML)")),
    (["--venue", "bitmex"], "--venue does not apply to --portfolio (set venue = \"...\" under [portfolio]"),
    (["--margin", "isolated"], "--margin does not apply to --portfolio (a portfolio's account is cross margin"),
    (["--data-path", "."], "--data-path does not apply to --portfolio (give a symbol its bars with data = \"FILE\""),
])
def test_portfolio_option_errors_name_the_right_place(tmp_path, capsys, extra, expected):
    path = tmp_path / "p.toml"
    path.write_text(PORTFOLIO.format(a="0.5", b="0.5"))
    assert main(["stress", "--portfolio", str(path), *extra, "--out", str(tmp_path / "o"), "--no-report"]) == 2
    assert expected in one_line_error(capsys)


def test_stress_json_is_valid_json(tmp_path, capsys):
    """A finished run's stress.json is strict JSON (no NaN/Infinity tokens)."""
    out = tmp_path / "o"
    assert main([*STRESS, "--cash", "5000", "--out", str(out)]) == 0
    capsys.readouterr()
    doc = json.loads((out / "stress.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in stress.json"))
    assert doc["options"]["cash"] == 5000.0 and doc["scenario_notes"]["312"]["initial_cash"] == 5000.0


@pytest.mark.parametrize("line, expected", [
    ("scenarios = []", "[stress] scenarios: empty list"),
    ('scenarios = ["312", "312"]', "[stress] scenarios '312,312': 312 is given twice"),
    ("leverage = []", "[stress] leverage: empty list"),
    ('leverage = "1,,2"', "[stress] leverage '1,,2': item 2 is empty"),
    ('leverage = "x"', "[stress] leverage: 'x' is not a number"),
])
def test_config_lists_are_checked_and_named(tmp_path, capsys, line, expected):
    """An empty list in the file is an error (it was silently the default grid)."""
    cfg = tmp_path / "c.toml"
    key = line.split(" ")[0]
    rest = {"scenarios": 'leverage = [3]', "leverage": 'scenarios = ["312"]'}[key]
    cfg.write_text(f'[strategy]\nname = "buy_and_hold"\n[stress]\ndata = "reconstructed"\n{rest}\n{line}\n')
    assert main(["stress", "--config", str(cfg), "--out", str(tmp_path / "o"), "--no-report"]) == 2
    assert f"config file {cfg}: {expected}" in one_line_error(capsys)
