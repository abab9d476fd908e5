"""`deleverage data validate`: options a format does not take, contradicting options and files, and the
wording of the findings (one line naming file, row, column and what was expected; no Python internals)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main

T0 = 1_583_712_000_000  # 2020-03-09T00:00:00Z
H = 3_600_000


def iso(ms: int) -> str:
    import pandas as pd

    return pd.Timestamp(ms, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def kline_export(path: Path, symbols: tuple[str, ...] = ("BTC/USDT",) * 4) -> Path:
    lines = ["timestamp_ms,open_time_utc,symbol,open,high,low,close,volume_base,volume_quote,trade_count"]
    for i, sym in enumerate(symbols):
        lines.append(f"{T0 + i * H},{iso(T0 + i * H)},{sym},100,110,90,105,2,210,7")
    path.write_text("\n".join(lines) + "\n")
    return path


def funding_export(path: Path, hours: str = "8") -> Path:
    lines = ["symbol,calc_time_ms,calc_time_utc,funding_interval_hours,funding_rate"]
    for i in range(4):
        t = T0 + i * 8 * H
        lines.append(f"BTCUSDT,{t},{iso(t)},{hours},0.0001")
    path.write_text("\n".join(lines) + "\n")
    return path


def coinglass(path: Path, total: str = "300") -> Path:
    lines = ["timestamp_ms,open_time_utc,liq_long_usd,liq_short_usd,liq_total_usd"]
    for i in range(3):
        lines.append(f"{T0 + i * H},{iso(T0 + i * H)},100,200,{total if i == 1 else 300}")
    path.write_text("\n".join(lines) + "\n")
    return path


def events(path: Path, symbols: tuple[str, ...] = ("BTCUSDT",) * 3) -> Path:
    lines = ["timestamp_ms,venue,symbol,liquidated_position_side,order_side,price,avg_fill_price,filled_qty_base,"
             "notional_quote"]
    for i, sym in enumerate(symbols):
        lines.append(f"{T0 + i * 1000},binance_usdtm,{sym},long,sell,100,100,2,200")
    path.write_text("\n".join(lines) + "\n")
    return path


def bitmex(path: Path) -> Path:
    lines = ["timestamp_ms,open_time_utc,open,high,low,close,volume_usd_contracts"]
    for i in range(4):
        t = T0 + i * 60_000
        lines.append(f"{t},{iso(t)},8000,8010,7990,8005,10000")
    path.write_text("\n".join(lines) + "\n")
    return path


def metrics(path: Path, symbols: tuple[str, ...] = ("SOLUSDT",) * 3, oi: tuple[str, ...] = ("1000",) * 3,
            value: tuple[str, ...] = ("20000",) * 3) -> Path:
    lines = ["create_time,symbol,sum_open_interest,sum_open_interest_value,count_toptrader_long_short_ratio,"
             "sum_toptrader_long_short_ratio,count_long_short_ratio,sum_taker_long_short_vol_ratio"]
    for i, sym in enumerate(symbols):
        lines.append(f"2021-12-01 00:{5 * i:02d}:00,{sym},{oi[i]},{value[i]},1,1,1,1")
    path.write_text("\n".join(lines) + "\n")
    return path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["data", "validate", *argv])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def one_error(capsys, *argv: str) -> str:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith("deleverage: error: "), (code, out, err)
    for internal in ("got an unexpected keyword", "load_", "np.", "=True", "mapping=", "contract_size=", "market=",
                     "internal error"):
        assert internal not in err, err
    return err.strip()


@pytest.mark.parametrize("make, option, fmt", [
    (lambda d: kline_export(d / "k.csv"), ["--market", "um"], "kline_export"),
    (lambda d: kline_export(d / "k.csv"), ["--volume-unit", "quote"], "kline_export"),
    (lambda d: funding_export(d / "f.csv"), ["--market", "um"], "funding_export"),
    (lambda d: funding_export(d / "f.csv"), ["--symbol", "BTCUSDT"], "funding_export"),
    (lambda d: coinglass(d / "cg.csv"), ["--volume-unit", "base"], "coinglass_liquidations"),
    (lambda d: events(d / "ev.csv"), ["--market", "um"], "liquidation_event_export"),
    (lambda d: bitmex(d / "b.csv"), ["--market", "um"], "bitmex_buckets"),
    (lambda d: kline_export(d / "k.csv"), ["--format", "generic", "--market", "um"], "generic"),
])
def test_an_option_the_format_does_not_take_is_named(tmp_path: Path, capsys, make, option, fmt) -> None:
    path = make(tmp_path)
    err = one_error(capsys, str(path), *option)
    assert err.startswith(f"deleverage: error: {path}: {option[-2]} does not apply to a {fmt} file (")


def test_symbol_contradicting_the_symbol_column_or_the_file_name(tmp_path: Path, capsys) -> None:
    path = kline_export(tmp_path / "k.csv")
    err = one_error(capsys, str(path), "--symbol", "ETHUSDT")
    assert err == (f"deleverage: error: {path}: row 1 (2020-03-09T00:00:00Z), column 'symbol': symbol 'BTC/USDT' "
                   "contradicts --symbol ETHUSDT; expected only ETHUSDT in this file (4 rows differ)")
    code, out, _ = run(capsys, str(path), "--symbol", "BTCUSDT")  # BTC/USDT is BTCUSDT
    assert code == 0 and "result: OK" in out
    named = kline_export(tmp_path / "binance_spot_btcusdt_1h.csv")
    err = one_error(capsys, str(named), "--symbol", "ETHUSDT")
    assert err == (f"deleverage: error: {named}: --symbol ETHUSDT contradicts the file name, which says BTCUSDT; "
                   "expected the file's own symbol (or a file named after it)")
    assert one_error(capsys, str(path), "--symbol", "") == "deleverage: error: --symbol is empty; expected a symbol such as BTCUSDT"
    assert one_error(capsys, str(bitmex(tmp_path / "bitmex_xbtusd_1m.csv")), "--symbol", "BTCUSDT").endswith(
        "--symbol BTCUSDT contradicts the file name, which says XBTUSD; expected the file's own symbol (or a file "
        "named after it)")


def test_bitmex_symbol_of_unknown_contract_size_names_no_python_keyword(tmp_path: Path, capsys) -> None:
    path = bitmex(tmp_path / "b.csv")
    err = one_error(capsys, str(path), "--symbol", "ETHUSD")
    assert err == (f"deleverage: error: {path}: column 'volume_usd_contracts': contract size of ETHUSD is unknown "
                   "(deleverage knows the BitMEX contract XBTUSD); expected an XBTUSD file, or --volume-unit quote for "
                   "a USD column")


def test_a_file_of_one_symbol_that_holds_another(tmp_path: Path, capsys) -> None:
    mixed = kline_export(tmp_path / "k.csv", ("BTC/USDT", "BTC/USDT", "ETH/USDT", "BTC/USDT"))
    assert one_error(capsys, str(mixed)) == (
        f"deleverage: error: {mixed}: row 3 (2020-03-09T02:00:00Z), column 'symbol': symbol 'ETH/USDT' differs from "
        "row 1 ('BTC/USDT'); expected one symbol per file (split the file by symbol)")
    sol = metrics(tmp_path / "SOLUSDT-metrics-2021-12-01.csv", ("SOLUSDT", "ETHUSDT", "SOLUSDT"))
    assert one_error(capsys, str(sol)) == (
        f"deleverage: error: {sol}: row 2 (2021-12-01T00:05:00Z), column 'symbol': symbol 'ETHUSDT' contradicts the "
        "file name (SOLUSDT); expected only SOLUSDT in this file (1 row differs)")
    ev = events(tmp_path / "binance_usdtm_btcusdt_forceorders.csv", ("BTCUSDT", "BTCUSDT", "ETHUSDT"))
    assert one_error(capsys, str(ev)) == (
        f"deleverage: error: {ev}: row 3 (2020-03-09T00:00:02Z), column 'symbol': symbol 'ETHUSDT' contradicts the "
        "file name (BTCUSDT); expected only BTCUSDT in this file (1 row differs)")
    code, out, _ = run(capsys, str(events(tmp_path / "ev.csv", ("BTCUSDT", "ETHUSDT", "BTCUSDT"))))
    assert code == 0 and "BTCUSDT (2 events), ETHUSDT (1 event)" in out  # a file not named after a symbol may mix them


def test_generic_missing_column_names_the_canonical_column(tmp_path: Path, capsys) -> None:
    path = tmp_path / "g.csv"
    path.write_text("open_time,o,high,low,close,volume\n2020-03-09T00:00:00Z,1,2,0.5,1.5,3\n")
    assert one_error(capsys, str(path), "--format", "generic") == (
        f"deleverage: error: {path}: column 'open': column not found; the file has ['open_time', 'o', 'high', 'low', "
        "'close', 'volume']; expected the canonical column 'open' (rename the file's column to 'open')")


def findings(capsys, *argv: str) -> tuple[int, list[str]]:
    code, out, err = run(capsys, *argv)
    assert err == ""
    return code, [line.strip() for line in out.splitlines() if line.strip().startswith(("ERROR", "WARNING"))]


def test_unsorted_rows_name_both_rows_or_the_previous_time(tmp_path: Path, capsys) -> None:
    fu = tmp_path / "fu.csv"
    fu.write_text("symbol,calc_time_ms,calc_time_utc,funding_interval_hours,funding_rate\n"
                  "BTCUSDT,1583712000000,2020-03-09T00:00:00Z,8,0.0001\n"
                  "BTCUSDT,1583769600000,2020-03-09T16:00:00Z,8,0.0001\n"
                  "BTCUSDT,1583740800000,2020-03-09T08:00:00Z,8,0.0001\n")
    code, found = findings(capsys, str(fu))
    assert code == 1 and found[0] == (
        f"ERROR [unsorted] {fu}: row 3 (2020-03-09T08:00:00Z): settlement time 2020-03-09T08:00:00Z is earlier than "
        "the previous settlement time (2020-03-09T16:00:00Z); expected settlement times in increasing order (the file "
        "is unsorted) (symbol BTCUSDT)")
    fo = tmp_path / "fo.jsonl"
    fo.write_text('{"e":"forceOrder","E":1733330785587,"o":{"s":"BTCUSDT","S":"SELL","p":"100","ap":"100","z":"2",'
                  '"T":1733330785584}}\n{"e":"forceOrder","E":1733330785000,"o":{"s":"BTCUSDT","S":"SELL","p":"100",'
                  '"ap":"100","z":"2","T":1733330780000}}\n')
    code, found = findings(capsys, str(fo))
    assert code == 1 and found == [
        f"ERROR [unsorted] {fo}: row 2 (2024-12-04T16:46:20Z): event time 2024-12-04T16:46:20Z is earlier than row 1 "
        "(2024-12-04T16:46:25.584Z); expected event times in increasing order (the file is unsorted)"]


def test_cells_are_shown_as_written_not_as_numpy_reprs(tmp_path: Path, capsys) -> None:
    ev = tmp_path / "ev.csv"
    ev.write_text("timestamp_ms,venue,symbol,liquidated_position_side,order_side,price,avg_fill_price,filled_qty_base,"
                  "notional_quote\n1583712000000,binance_usdtm,BTCUSDT,long,buy,100,100,2,200\n")
    code, found = findings(capsys, str(ev))
    assert code == 1 and found == [
        f"ERROR [side] {ev}: row 1 (2020-03-09T00:00:00Z), column 'order_side': order side 'buy' does not close a long "
        "position; expected 'sell' (a forced sell closes a long, a forced buy closes a short)"]
    g = tmp_path / "g.csv"
    g.write_text("open_time,open,high,low,close,volume\n1583712000000,1,2,0.5,1.5,3\n,1,2,0.5,1.5,3\n")
    assert one_error(capsys, str(g)) == (f"deleverage: error: {g}: row 2, column 'open_time': expected an epoch "
                                         "timestamp, got an empty cell")


def test_timestamps_off_grid_too_large_or_text_name_their_row(tmp_path: Path, capsys) -> None:
    g = tmp_path / "g.csv"
    steps = [0, 60, 120, 210, 300, 360]  # minutes: the 4th bar is 30 minutes off the 1h grid
    g.write_text("open_time,open,high,low,close,volume\n"
                 + "".join(f"{T0 + m * 60_000},1,2,0.5,1.5,3\n" for m in steps))
    code, found = findings(capsys, str(g))
    assert code == 1 and found == [
        f"ERROR [grid] {g}: row 4 (2020-03-09T03:30:00Z): bar at 2020-03-09T03:30:00Z is 90min after the previous one; "
        "expected steps that are multiples of 1h (2 rows in total, first shown)",
        f"ERROR [grid] {g}: row 4 (2020-03-09T03:30:00Z): bar at 2020-03-09T03:30:00Z is not on the 1h grid; expected "
        "bar open times that are multiples of 1h (UTC)"]  # and no "gap of 0 missing bars"
    lines = kline_export(tmp_path / "k.csv", ("BTC/USDT",) * 6).read_text().splitlines()
    huge = tmp_path / "huge.csv"
    huge.write_text("\n".join([*lines[:3], "99999999999999999999999" + lines[3][13:], *lines[4:]]) + "\n")
    assert one_error(capsys, str(huge)) == (
        f"deleverage: error: {huge}: row 3, column 'timestamp_ms': timestamp '99999999999999999999999' is out of range "
        "(after the year 2262 in any epoch unit); expected an epoch timestamp in s, ms, us or ns")
    text = tmp_path / "text.csv"
    text.write_text("\n".join([*lines[:5], "abc" + lines[5][13:], *lines[6:]]) + "\n")
    assert one_error(capsys, str(text)) == (
        f"deleverage: error: {text}: row 5, column 'timestamp_ms': timestamp 'abc' is not an epoch number like row 1 "
        f"({T0}); expected one timestamp format per file")


def test_utf8_bom_header_is_recognised(tmp_path: Path, capsys) -> None:
    plain = kline_export(tmp_path / "k.csv")
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbf" + plain.read_bytes())
    code, out, err = run(capsys, str(bom))
    assert code == 0 and err == "" and f"{bom}: kline_export (bars), 4 rows" in out and "result: OK" in out


def test_coinglass_total_is_checked_to_the_rounding_of_the_cells_as_a_finding(tmp_path: Path, capsys) -> None:
    path = tmp_path / "cg.csv"
    path.write_text("timestamp_ms,open_time_utc,liq_long_usd,liq_short_usd,liq_total_usd\n"
                    f"{T0},{iso(T0)},400165.78798,243072.53866,643238.32664\n"
                    f"{T0 + H},{iso(T0 + H)},400165.78798,243072.53866,643238.78664\n"  # 0.46 USD more
                    f"{T0 + 2 * H},{iso(T0 + 2 * H)},100.5,200.25,300.75\n")
    code, found = findings(capsys, str(path))
    assert code == 1 and found == [
        f"ERROR [sum] {path}: row 2 (2020-03-09T01:00:00Z), column 'liq_total_usd': liq_total_usd 643238.78664 is not "
        "liq_long_usd + liq_short_usd = 400165.78798 + 243072.53866 = 643238.32664 (off by +0.46 USD, more than the "
        "rounding of the cells, 1.6e-05); expected the total to be the sum of the sides"]
    rounded = tmp_path / "cg_int.csv"  # whole dollars: 400166 + 243073 = 643239, written 643238 is within rounding
    rounded.write_text("timestamp_ms,open_time_utc,liq_long_usd,liq_short_usd,liq_total_usd\n"
                       f"{T0},{iso(T0)},400166,243073,643238\n{T0 + H},{iso(T0 + H)},1,2,3\n")
    code, found = findings(capsys, str(rounded))
    assert code == 0 and found == []


def test_funding_unit_percent_contradicting_fraction_rates(tmp_path: Path, capsys) -> None:
    path = funding_export(tmp_path / "f.csv")  # four settlements at the base rate 0.0001 (a fraction)
    code, out, _ = run(capsys, str(path), "--funding-unit", "percent")
    assert code == 1 and "  funding unit: percent (declared with --funding-unit; divided by 100)" in out
    assert (f"ERROR [unit] {path}: column 'funding_rate': --funding-unit percent contradicts the file, whose rates are "
            "fractions: 4 of 4 rates are the base rate 0.0001; expected --funding-unit fraction (or auto)") in out
    code, out, _ = run(capsys, str(path), "--funding-unit", "fraction")
    assert code == 0 and "  funding unit: fraction (declared with --funding-unit)" in out
    pct = tmp_path / "pct.csv"
    pct.write_text(path.read_text().replace("0.0001", "0.01"))  # the same rates written in percent
    code, out, _ = run(capsys, str(pct), "--funding-unit", "percent")
    assert code == 0 and "result: OK" in out


D0 = 1_621_382_400_000  # 2021-05-19
KLINE_HEADER = ("open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,"
                "taker_buy_quote_volume,ignore")


def archive_klines(path: Path, change: dict[int, tuple[str, str]] | None = None) -> Path:
    rows = [f"{D0 + i * 60_000},40000,40010,39990,40005,1.5,{D0 + i * 60_000 + 59_999},60000,7,0.7,28000,0"
            for i in range(4)]
    for i, (old, new) in (change or {}).items():
        rows[i] = rows[i].replace(old, new)
    path.write_text(KLINE_HEADER + "\n" + "\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize("name, hours, expected", [
    ("f0.csv", "0", "row 1 (2020-03-09T00:00:00Z), column 'funding_interval_hours': funding interval 0 hours; expected "
                    "a positive number of hours (8 on most venues) (4 rows in total, first shown)"),
    ("fneg.csv", "-8", "row 1 (2020-03-09T00:00:00Z), column 'funding_interval_hours': funding interval -8 hours; "
                       "expected a positive number of hours (8 on most venues) (4 rows in total, first shown)"),
    ("f4.csv", "4", "row 1 (2020-03-09T00:00:00Z), column 'funding_interval_hours': funding interval 4 hours, but the "
                    "BTCUSDT settlements are 8h apart (the most common step); expected the interval the settlements "
                    "follow"),
])
def test_funding_interval_must_be_positive_and_match_the_settlements(tmp_path: Path, capsys, name, hours, expected) -> None:
    path = funding_export(tmp_path / name, hours)
    code, found = findings(capsys, str(path))
    assert code == 1 and found[0] == f"ERROR [schema] {path}: {expected}"
    code, found = findings(capsys, str(funding_export(tmp_path / "f8.csv", "8")))
    assert code == 0 and found == []


def test_open_interest_implied_price_and_zero(tmp_path: Path, capsys) -> None:
    huge = metrics(tmp_path / "BTCUSDT-metrics-2021-12-01.csv", ("BTCUSDT",) * 3,
                   value=("3500000000", "3000000000000000", "3500000000"))
    code, found = findings(capsys, str(huge))
    assert code == 1 and found == [
        f"ERROR [unit] {huge}: row 2 (2021-12-01T00:05:00Z), column 'open_interest_notional': open_interest_notional / "
        "open_interest = 3e+15 / 1000 = 3e+12 is not a price of one coin (expected between 1e-08 and 1e+07 quote per "
        "coin); expected open_interest in coins and open_interest_notional in quote currency"]
    zero = metrics(tmp_path / "BTCUSDT-metrics-2021-12-02.csv", ("BTCUSDT",) * 3, oi=("1000", "1000", "0"))
    code, found = findings(capsys, str(zero))
    assert code == 1 and found == [
        f"ERROR [nonpositive] {zero}: row 3 (2021-12-01T00:10:00Z), column 'open_interest': open interest 0; expected > 0 "
        "(a listed perpetual always has open positions; a 0 is most likely a missing value)"]
    code, found = findings(capsys, str(metrics(tmp_path / "BTCUSDT-metrics-2021-12-03.csv", ("BTCUSDT",) * 3)))
    assert code == 0 and found == []  # 20000 / 1000 = 20 quote per coin


def test_binance_klines_taker_volume_and_trade_count(tmp_path: Path, capsys) -> None:
    taker = archive_klines(tmp_path / "BTCUSDT-1m-2021-05-19.csv", {2: (",7,0.7,", ",7,2.5,")})
    code, found = findings(capsys, str(taker))
    assert code == 1 and found == [
        f"ERROR [volume] {taker}: row 3 (2021-05-19T00:02:00Z), column 'taker_buy_volume': taker_buy_volume 2.5 exceeds "
        "volume 1.5; expected the taker-buy part of the volume to be at most the volume"]
    count = archive_klines(tmp_path / "BTCUSDT-1m-2021-05-20.csv", {1: (",7,0.7,", ",-3,0.7,")})
    code, found = findings(capsys, str(count))
    assert code == 1 and found == [
        f"ERROR [negative] {count}: row 2 (2021-05-19T00:01:00Z), column 'count': trade count -3 is negative; expected >= 0"]
    good = archive_klines(tmp_path / "BTCUSDT-1m-2021-05-21.csv")
    assert findings(capsys, str(good)) == (0, [])
    code, found = findings(capsys, str(good), "--format", "binance_premiumIndexKlines")
    assert code == 1 and found == [
        f"ERROR [unit] {good}: row 1 (2021-05-19T00:00:00Z), column 'close': premium index 40005 is not a premium (a "
        "small fraction of the index price, such as 0.0003; at most 0.5); this looks like a price: expected a "
        "premiumIndexKlines file (or --format binance_klines, binance_markPriceKlines, binance_indexPriceKlines) "
        "(4 rows in total, first shown)"]


def test_liquidation_snapshot_quantities(tmp_path: Path, capsys) -> None:
    header = ("time,side,order_type,time_in_force,original_quantity,price,average_price,order_status,"
              "last_fill_quantity,accumulated_fill_quantity")

    def snapshot(name: str, row: int, old: str, new: str) -> Path:
        rows = [f"{D0 + i * 1000},SELL,LIMIT,IOC,2,40000,40000,FILLED,2,2" for i in range(3)]
        rows[row] = rows[row].replace(old, new)
        path = tmp_path / name
        path.write_text(header + "\n" + "\n".join(rows) + "\n")
        return path

    neg = snapshot("BTCUSDT-liquidationSnapshot-2021-05-19.csv", 1, "IOC,2,", "IOC,-1,")
    code, found = findings(capsys, str(neg))
    assert code == 1 and found == [
        f"ERROR [nonpositive] {neg}: row 2 (2021-05-19T00:00:01Z), column 'original_quantity': original_quantity -1 is "
        "not positive; expected the order's quantity > 0"]
    over = snapshot("BTCUSDT-liquidationSnapshot-2021-05-20.csv", 2, "FILLED,2,2", "FILLED,2,3")
    code, found = findings(capsys, str(over))
    assert code == 1 and found == [
        f"ERROR [fill] {over}: row 3 (2021-05-19T00:00:02Z), column 'accumulated_fill_quantity': "
        "accumulated_fill_quantity 3 exceeds original_quantity 2; expected a fill of at most the order's quantity"]


def test_coinalyze_date_must_agree_with_timestamp(tmp_path: Path, capsys) -> None:
    day = 1_641_081_600_000  # 2022-01-02
    path = tmp_path / "coinalyze.csv"
    path.write_text("date_utc,timestamp_ms,exchange,coinalyze_symbol,symbol_on_exchange,margin,liq_long_usd,liq_short_usd\n"
                    + "".join(f"2022-01-0{d},{day + k * 86_400_000},Binance,BTCUSDT_PERP.A,BTCUSDT,STABLE,100,200\n"
                              for k, d in enumerate((2, 5, 4))))
    assert one_error(capsys, str(path)) == (
        f"deleverage: error: {path}: row 2, column 'date_utc': '2022-01-05' disagrees with timestamp_ms 1641168000000 "
        "(2022-01-03T00:00:00Z); expected both columns to state the same UTC day (1 row disagrees)")


def test_volume_unit_contradicting_base_and_quote_columns(tmp_path: Path, capsys) -> None:
    g = tmp_path / "g.csv"
    g.write_text("open_time,open,high,low,close,volume,quote_volume\n"
                 f"{T0},100,110,90,105,2,210\n{T0 + H},105,110,100,108,3,318\n")
    for unit in ("quote", "contracts"):
        assert one_error(capsys, str(g), "--volume-unit", unit) == (
            f"deleverage: error: {g}: column 'volume': --volume-unit {unit} contradicts the file, which has both volume "
            "and quote_volume (volume in base units, quote_volume in quote); expected --volume-unit base (or none)")
    code, out, _ = run(capsys, str(g), "--volume-unit", "base")
    assert code == 0 and "result: OK" in out
    err = one_error(capsys, str(kline_export(tmp_path / "k.csv")), "--volume-unit", "contracts")
    assert err.endswith("--volume-unit does not apply to a kline_export file (normalised kline export (timestamp_ms, "
                        "volume_base, ...))")
    klines = archive_klines(tmp_path / "BTCUSDT-1m-2021-05-19.csv")
    assert one_error(capsys, str(klines), "--volume-unit", "quote").endswith(
        "--volume-unit does not apply to a binance_klines file (Binance archive klines (um/cm, CSV or ZIP))")
    assert one_error(capsys, str(klines), "--symbol", "ETHUSDT") == (
        f"deleverage: error: {klines}: --symbol ETHUSDT contradicts the file name, which says BTCUSDT; expected the "
        "file's own symbol")


def test_allow_gaps_or_outliers_that_change_nothing_are_errors(tmp_path: Path, capsys) -> None:
    ev = events(tmp_path / "ev.csv")
    code, out, err = run(capsys, str(ev), "--allow-gaps")
    assert code == 2 and "result: OK" in out and err == (
        "deleverage: error: --allow-gaps does not apply to the file given; it applies to bar files (funding and "
        "open-interest gaps are warnings already; events have no bar grid)\n")
    fu = funding_export(tmp_path / "f.csv")
    code, _, err = run(capsys, str(fu), "--allow-outliers")
    assert code == 2 and err == ("deleverage: error: --allow-outliers does not apply to the file given; it applies to "
                                 "trade and mark-price bars\n")
    k = kline_export(tmp_path / "k.csv")
    code, out, err = run(capsys, str(k), str(fu), "--allow-gaps", "--allow-outliers")  # used by the bars
    assert code == 0 and err == "" and out.count("result: OK") == 2


def test_funding_unit_on_bars_without_funding_is_an_error(tmp_path: Path, capsys) -> None:
    g = tmp_path / "g.csv"
    g.write_text("open_time,open,high,low,close,volume\n" + "".join(f"{T0 + k * H},1,2,0.5,1.5,3\n" for k in range(3)))
    assert one_error(capsys, str(g), "--funding-unit", "percent") == (
        f"deleverage: error: {g}: --funding-unit does not apply to this generic file: it has no funding_rate column")
    with_funding = tmp_path / "gf.csv"
    with_funding.write_text("open_time,open,high,low,close,volume,funding_rate\n"
                            + "".join(f"{T0 + k * H},1,2,0.5,1.5,3,{'0.0001' if k == 0 else ''}\n" for k in range(3)))
    code, out, _ = run(capsys, str(with_funding), "--funding-unit", "fraction")
    assert code == 0 and "funding unit: fraction (declared with --funding-unit)" in out


def test_text_time_without_zone_names_no_missing_option(tmp_path: Path, capsys) -> None:
    g = tmp_path / "naive.csv"
    g.write_text("open_time,open,high,low,close,volume\n2020-03-09 00:00:00,1,2,0.5,1.5,3\n2020-03-09 01:00:00,1,2,0.5,1.5,3\n")
    assert one_error(capsys, str(g)) == (
        f"deleverage: error: {g}: row 1, column 'open_time': timestamp '2020-03-09 00:00:00' has no time zone; expected "
        "UTC text such as '2020-03-13T02:15:00Z' (write the zone, Z or +00:00, into the file: a zone is never guessed)")
