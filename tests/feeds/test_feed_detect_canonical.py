"""A CSV in the package's own canonical bar schema is recognised without --format."""

from __future__ import annotations

import pytest

from feeds.detect import detect_format, load


def test_canonical_csv_is_detected_and_loaded(tmp_path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("open_time,open,high,low,close,volume,funding_rate\n"
                    "2021-01-01T00:00:00Z,10,11,9,10.5,2,\n"
                    "2021-01-01T00:01:00Z,10.5,12,10,11,3,0.0001\n")
    assert detect_format(path) == "generic"
    frame = load(path)
    assert list(frame.index.strftime("%H:%M")) == ["00:00", "00:01"]
    assert frame["close"].tolist() == [10.5, 11.0]
    assert frame["funding_rate"].iloc[1] == pytest.approx(0.0001)
