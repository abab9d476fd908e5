"""Issue 12, errors a person can read: every command on a table of bad inputs, and corrupted real files.

Each bad input ends in one line naming the input and what was expected (exit 2; 130 on
Ctrl-C; a file that reads but holds bad data gets ``data validate``'s report and exit 1),
never a traceback, never an "internal error", never a Python parameter name where the
command has its own option.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.cli import main

BITMEX = "bitmex_xbtusd_1m_2020-03-09_2020-03-16.csv"
FUNDING = "binance_usdtm_funding_btc_eth_2020-03_2021-04_2021-05.csv"
# Python words that must never reach a user of the CLI (the examples and their kin)
PYTHON_WORDS = ("attrs[", "data='", "data_path=", "funding_unit=", "allow_outliers=", "format= /",
                "PerpBroker(", "allow_no_funding=", "require_complete=", "Traceback", "internal error")


def run(argv: list[str]) -> tuple[int, str, str]:
    """``deleverage ARGV`` in-process: (exit code, stdout, stderr). An exception here fails the test."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(err: str, expected: str, *, own: bool = True) -> None:
    """``err`` ends in exactly one error line holding ``expected``; with ``own`` it is the only line."""
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [line for line in lines if "error:" in line]
    assert len(errors) == 1 and lines[-1] == errors[0], err
    assert lines[-1].startswith("deleverage"), err
    if own:
        assert len(lines) == 1, err
    assert expected in lines[-1], f"{expected!r} not in {lines[-1]!r}"
    for word in PYTHON_WORDS:
        assert word not in err, f"{word!r} in {err!r}"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    shared = Path(os.environ.get("DELEVERAGE_SHARED_DATA") or Path(__file__).resolve().parents[2].parent / "shared" / "data")
    if not (shared / BITMEX).exists():
        pytest.skip(f"real exchange data not found at {shared}")
    d = tmp_path_factory.mktemp("bad")
    lines = (shared / BITMEX).read_text().splitlines()
    f: dict[str, Path] = {"shared": shared, "dir": d / "folder", "empty_dir": d / "nothing-here"}
    f["dir"].mkdir()
    (f["dir"] / "a.csv").write_text("x\n")
    f["empty_dir"].mkdir()

    def put(name: str, text: str | bytes) -> Path:
        p = d / name
        p.write_bytes(text if isinstance(text, bytes) else text.encode())
        f[name.split(".")[0]] = p
        return p

    put("gz.csv", gzip.compress("\n".join(lines[:50]).encode()))
    put("bin.csv", bytes(range(256)) * 4)
    put("hdr.csv", lines[0] + "\n")
    put("one.csv", "\n".join(lines[:2]) + "\n")
    put("twenty.csv", "\n".join(lines[:21]) + "\n")
    put("semi.csv", "\n".join(x.replace(",", ";") for x in lines[:30]) + "\n")
    put("tab.csv", "\n".join(x.replace(",", "\t") for x in lines[:30]) + "\n")
    body = [x.split(",") for x in lines[:10]]
    body[3][1] = '"2020-03-09\nT00:02:00Z"'  # a quoted field holding a line break: record 3 is on lines 4-5
    del body[3][-1]
    put("newline.csv", "\n".join(",".join(r) for r in body) + "\n")
    put("shortrow.csv", "\n".join(lines[:6] + [",".join(lines[6].split(",")[:4])] + lines[7:20]) + "\n")
    put("nocol.csv", "\n".join(",".join(x.split(",")[:5] + x.split(",")[6:]) for x in lines[:30]) + "\n")
    rows = [x.split(",") for x in lines[:200]]
    rows[100][3] = repr(float(rows[100][3]) * 100)
    put("spike.csv", "\n".join(",".join(r) for r in rows) + "\n")
    put("afile.txt", "not a folder\n")
    return f


# (argv with {placeholders}, exit code, text of the one error line; None: see stdout_text)
TABLE: list[tuple[str, int, str]] = [
    # a gzip or binary file renamed .csv
    ("data validate {gz}", 2, "gz.csv: the file is a gzip archive, not text"),
    ("data validate {bin}", 2, "bin.csv: the file is binary (it holds NUL bytes), not text"),
    ("backtest --data {gz} --no-funding --no-report --out {tmp}/r", 2, "gzip archive"),
    ("optimize buy_and_hold --data {bin} --param leverage=1:3 --out {tmp}/o", 2, "bin.csv: the file is binary"),
    ("stress buy_and_hold --scenarios 312 --data real --data-path {gz} --leverage 2 --out {tmp}/s", 2, "gzip archive"),
    ("scenarios show 312 --data real --data-path {gz}", 2, "gzip archive"),
    # a directory as --data or to data validate
    ("data validate {dir}", 2, "folder: is a directory; expected a data file"),
    ("backtest --data {dir} --no-report --out {tmp}/r", 2, "is a directory; expected a data file"),
    ("optimize buy_and_hold --data {dir} --param leverage=1:3 --out {tmp}/o", 2, "is a directory"),
    ("report {gz}", 2, "gz.csv"),
    # --out unwritable or an existing file
    ("backtest --scenario 312 --no-report --out {afile}", 2, "--out " + "{afile}: is an existing file"),
    ("backtest --scenario 312 --no-report --out {afile}/run", 2, "is a file; expected a folder path"),
    ("stress buy_and_hold --scenarios 312 --leverage 2 --no-report --out {afile}", 2, "afile.txt: is a file"),
    ("scenarios export 312 --out {afile}/x.parquet", 2, "afile.txt"),
    # numbers and times
    ("backtest --scenario 312 --leverage inf --no-report --out {tmp}/r", 2, "argument --leverage: 'inf': expected a finite number > 0"),
    ("backtest --scenario 312 --leverage nan --no-report --out {tmp}/r", 2, "argument --leverage: 'nan'"),
    ("backtest --scenario 312 --leverage -3 --no-report --out {tmp}/r", 2, "argument --leverage: '-3'"),
    ("backtest --scenario 312 --cash 0 --no-report --out {tmp}/r", 2, "argument --cash: '0'"),
    ("backtest --scenario 312 --funding-rate inf --no-report --out {tmp}/r", 2, "argument --funding-rate: 'inf'"),
    ("stress buy_and_hold --scenarios 312 --leverage inf --out {tmp}/s", 2, "--leverage: levels must be finite numbers > 0"),
    ("stress buy_and_hold --scenarios 312 --cash inf --out {tmp}/s", 2, "argument --cash: 'inf': expected a finite number > 0"),
    ("optimize buy_and_hold --leverage inf --param leverage=1:3 --out {tmp}/o", 2, "argument --leverage: 'inf'"),
    ("backtest --data {twenty} --start yesterday --end 2020-03-12 --no-report", 2,
     "argument --start: 'yesterday' is not a date or time; expected UTC such as 2020-03-12"),
    ("backtest --data {twenty} --start 2020-03-09 --end soon --no-report", 2, "argument --end: 'soon'"),
    ("data fetch binance --symbol BTCUSDT --start yesterday --end 2020-01-02", 2, "argument --start: 'yesterday'"),
    # delimiters, physical lines, missing columns
    ("data validate {semi}", 2, "semi.csv: line 1 is separated by semicolons (7 fields), not commas"),
    ("data validate {tab}", 2, "tab.csv: line 1 is separated by TABs (7 fields), not commas"),
    ("backtest --data {semi} --no-funding --no-report --out {tmp}/r", 2, "separated by semicolons"),
    ("data validate {newline}", 2, "newline.csv: lines 4-5 (record 4) has 6 fields, the first line has 7"),
    ("data validate {shortrow}", 2, "shortrow.csv: line 7 (record 7) has 4 fields, the first line has 7"),
    ("data validate {nocol}", 2, "column 'close': column not found"),
    ("backtest --data {nocol} --no-funding --no-report --out {tmp}/r", 2, "column 'close': column not found"),
    # empty and too-short data
    ("data validate {hdr}", 2, "hdr.csv: no data rows (only a header line)"),
    ("backtest --data {hdr} --no-funding --no-report --out {tmp}/r", 2, "no data rows (only a header line)"),
    ("backtest --data {one} --no-funding --no-report --out {tmp}/r", 2, "one.csv: 1 bar; expected at least 2"),
    ("backtest --data {twenty} --strategy sma_crossover --no-funding --no-report --out {tmp}/r", 2,
     "20 bars; sma_crossover needs more than slow=30 bars of warm-up"),
    # bad prints, funding, the CLI's own words
    ("backtest --data {spike} --no-funding --no-report --out {tmp}/r", 2, "pass --allow-outliers to keep it"),
    ("backtest --data {twenty} --no-report --out {tmp}/r", 2,
     "the bars have no funding rates; expected --funding FILE (with --start and --end), a constant --funding-rate"),
    ("backtest --scenario 312 --data-kind real --data-path {empty_dir} --no-report --out {tmp}/r", 2, "--data-kind reconstructed"),
    ("scenarios show 312 --data real --data-path {empty_dir}", 2, "--data reconstructed"),
    ("backtest --data {twenty} --data-path {empty_dir} --no-report --out {tmp}/r", 2,
     "--data-path goes with --scenario NAME --data-kind real"),
    # names
    ("backtest --scenario nope --no-report --out {tmp}/r", 2, "unknown scenario 'nope'"),
    ("backtest --scenario 312 --strategy nope --no-report --out {tmp}/r", 2, "unknown strategy 'nope'"),
    ("stress nope --scenarios 312", 2, "nope"),
    ("nonsense", 2, "invalid choice: 'nonsense'"),
]
OWN = ("data", "backtest", "scenarios", "report", "nonsense")  # commands whose stderr is only the error line


@pytest.mark.parametrize("argv, code, expected", TABLE, ids=[t[0].split(" {")[0][:40] + f"-{i}" for i, t in enumerate(TABLE)])
def test_bad_input_ends_in_one_line(files: dict[str, Path], tmp_path: Path, argv: str, code: int, expected: str) -> None:
    names = {k: str(v) for k, v in files.items()} | {"tmp": str(tmp_path)}
    got, out, err = run([a.format(**names) for a in argv.split()])
    assert got == code, (out, err)
    assert "Traceback" not in out
    assert_one_line_error(err, expected.format(**names), own=argv.split()[0] in OWN)


def test_findings_in_a_readable_file_are_a_report(files: dict[str, Path]) -> None:
    code, out, err = run(["data", "validate", str(files["one"]), str(files["spike"])])
    assert code == 1 and not err
    assert "ERROR [empty]" in out and "1 bar; expected at least 2" in out
    assert "ERROR [outlier]" in out and "row 100 (2020-03-09T01:39:00Z), column 'high'" in out
    assert "(pass --allow-outliers to keep it)" in out and "allow_outliers=" not in out
    code, out, _ = run(["data", "validate", "--allow-outliers", str(files["spike"])])
    assert code == 0 and "WARNING [outlier]" in out


def test_an_unreadable_file_does_not_stop_the_others(files: dict[str, Path]) -> None:
    code, out, err = run(["data", "validate", str(files["gz"]), str(files["shared"] / BITMEX)])
    assert code == 2 and "gzip archive" in err and "result: OK" in out


def test_backtest_with_every_order_refused_says_refused(tmp_path: Path) -> None:
    code, out, err = run(["backtest", "--scenario", "312", "--leverage", "150", "--no-report", "--out", str(tmp_path / "r")])
    assert code == 0, err
    assert ("REFUSED: the broker rejected every order, no position was ever held (1 order(s) refused: leverage 150 "
            "exceeds the venue maximum 100") in out
    assert "fills 0" in out


def test_backtest_out_is_never_overwritten_silently(tmp_path: Path) -> None:
    out_dir = tmp_path / "run"
    assert run(["backtest", "--scenario", "312", "--no-report", "--out", str(out_dir)])[0] == 0
    before = (out_dir / "summary.json").read_bytes()
    code, _, err = run(["backtest", "--scenario", "312", "--leverage", "3", "--no-report", "--out", str(out_dir)])
    assert code == 2 and "already holds files (a previous run?)" in err and "--overwrite" in err
    assert (out_dir / "summary.json").read_bytes() == before
    assert run(["backtest", "--scenario", "312", "--leverage", "3", "--no-report", "--out", str(out_dir),
                "--overwrite"])[0] == 0
    assert (out_dir / "summary.json").read_bytes() != before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no temporary folder left beside it
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    code, _, err = run(["backtest", "--scenario", "312", "--no-report", "--out", str(tmp_path / "mine"), "--overwrite"])
    assert code == 2 and "not a deleverage run" in err and (tmp_path / "mine" / "notes.txt").read_text() == "keep"


def test_ctrl_c_in_backtest_is_one_line_and_130(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import engine.runner

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(engine.runner, "run_backtest", interrupted)
    code, _, err = run(["backtest", "--scenario", "312", "--no-report", "--out", str(tmp_path / "r")])
    assert code == 130 and err.strip() == "deleverage: error: backtest interrupted by Ctrl-C"
    assert not (tmp_path / "r").exists()


def test_ctrl_c_in_stress_stops_the_workers_without_tracebacks(tmp_path: Path) -> None:
    exe = Path(sys.executable).with_name("deleverage")
    levels = ",".join(f"{1 + k / 4:g}" for k in range(60))  # 180 backtrader cells: minutes of work, stopped after ~2 s
    cmd = [str(exe), "stress", "buy_and_hold", "--scenarios", "312,519,ftx", "--leverage", levels,
           "--engine", "backtrader", "--workers", "2", "--no-report", "--out", str(tmp_path / "s")]
    # SIGINT back to its default in the child: a suite started in the background (`cmd &`) inherits
    # SIGINT ignored, and a Python started with it ignored never raises KeyboardInterrupt
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stderr.readline()  # the plan line: the pool starts right after it
    assert first.startswith("stress buy_and_hold: 3 scenario(s) x 60 leverage level(s)"), first
    try:
        proc.wait(timeout=2)  # the pool is at work by now; the grid takes far longer than this
    except subprocess.TimeoutExpired:
        pass
    assert proc.poll() is None, "stress finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGINT)  # as a terminal does: the whole process group
    _, rest = proc.communicate(timeout=120)
    assert proc.returncode == 130, rest
    assert [line for line in rest.splitlines() if line.strip()] == ["deleverage: error: stress interrupted by Ctrl-C"], rest


def test_version_and_plain_help() -> None:
    code, out, _ = run(["--version"])
    assert code == 0 and out.startswith("deleverage ") and out.split()[1][0].isdigit()
    for argv in (["--help"], ["backtest", "--help"], ["stress", "--help"], ["data", "validate", "--help"],
                 ["optimize", "--help"]):
        code, out, _ = run(argv)
        assert code == 0
        assert "``" not in out and "::" not in out and ":func:" not in out and "**" not in out, out
        if argv[0] != "data":  # every parser that takes a strategy lists them
            assert "buy_and_hold, sma_crossover, breakout, cascade_fade, funding_carry, dca_grid" in " ".join(out.split())


def test_scenarios_show_prints_its_title_once() -> None:
    code, out, _ = run(["scenarios", "show", "312"])
    assert code == 0 and out.count("Black Thursday: BTC -55 % on BitMEX") == 1


# ---------------------------------------------------------------- corrupted real files (hypothesis)

SOURCES = (BITMEX, "binance_spot_btcusdt_1h_2020-03-05_2020-03-20.csv", FUNDING,
           "binance_usdtm_btcusdt_forceorders_2024-12-04_2024-12-06.csv",
           "hyperliquid_liquidations_with_fills_2023-02-28_2023-05-01.csv",
           "coinglass_btc_liquidations_1h_binance_bybit_okx_2025-11-23_2026-05-22.csv",
           "coinalyze_btc_perp_liquidations_daily_usd_2022-01-02_2024-09-20.csv",
           "bitmex_xbtusd_funding_2020-02-15_2020-04-15.csv")
CELLS = st.sampled_from(["", "nan", "inf", "-1", "0", "1e308", "abc", '"', "2020-13-45", "\x00", "ü", "1,5", " "])


@st.composite
def corruption(draw: st.DrawFn) -> tuple[str, bytes]:
    """A real file's first lines with one corruption applied (the kinds a download or an edit makes)."""
    name = draw(st.sampled_from(SOURCES))
    lines = SHARED_HEADS[name]
    kind = draw(st.sampled_from(["truncate", "cell", "swap", "duplicate", "bytes", "drop_field", "delimiter", "blank"]))
    rows = [line.split(",") for line in lines]
    r = draw(st.integers(0, len(rows) - 1))
    if kind == "cell":
        rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(CELLS)
    elif kind == "swap":
        s = draw(st.integers(0, len(rows) - 1))
        rows[r], rows[s] = rows[s], rows[r]
    elif kind == "duplicate":
        rows.insert(r, list(rows[r]))
    elif kind == "drop_field":
        del rows[r][draw(st.integers(0, len(rows[r]) - 1))]
    elif kind == "delimiter":
        rows[r] = [";".join(rows[r])]
    elif kind == "blank":
        rows[r] = [""]
    data = ("\n".join(",".join(row) for row in rows) + "\n").encode()
    if kind == "truncate":
        data = data[:draw(st.integers(0, len(data)))]
    elif kind == "bytes":
        at = draw(st.integers(0, len(data)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=8)) + data[at:]
    return name, data


SHARED_HEADS: dict[str, list[str]] = {}


@pytest.fixture(scope="module")
def heads(files: dict[str, Path]) -> None:
    for name in SOURCES:
        SHARED_HEADS[name] = (files["shared"] / name).read_text().splitlines()[:60]


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=corruption())
def test_corrupted_real_files_validate_or_fail_in_one_line(heads: None, tmp_path: Path, case: tuple[str, bytes]) -> None:
    name, data = case
    path = tmp_path / name
    path.write_bytes(data)
    code, out, err = run(["data", "validate", str(path)])
    assert code in (0, 1, 2), (code, out, err)
    assert "Traceback" not in out and "internal error" not in out
    if code == 2:
        assert_one_line_error(err, name)
    else:
        assert not err and out.startswith(str(path)), (out, err)


@settings(max_examples=12, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(case=corruption().filter(lambda c: c[0] == BITMEX))
def test_corrupted_real_bars_backtest_or_fail_in_one_line(heads: None, tmp_path_factory: pytest.TempPathFactory,
                                                          case: tuple[str, bytes]) -> None:
    d = tmp_path_factory.mktemp("bt")
    path = d / BITMEX
    path.write_bytes(case[1])
    code, out, err = run(["backtest", "--data", str(path), "--no-funding", "--no-report", "--out", str(d / "run")])
    assert code in (0, 2), (code, out, err)
    if code == 2:
        assert_one_line_error(err, "")
    else:
        assert "run directory:" in out and not err
