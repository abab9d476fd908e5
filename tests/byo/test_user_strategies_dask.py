"""A user strategy file on a real Dask LocalCluster (two worker processes) gives the local pool's table:
each worker loads the file itself from the reference carried in its tasks."""

from __future__ import annotations

import textwrap

import pandas as pd
import pytest

from tests.byo.test_user_strategies import USER_CODE, optimize_config

distributed = pytest.importorskip("distributed")


def test_user_file_on_dask_equals_local_pool(tmp_path) -> None:
    from distributed import LocalCluster

    from engine.optimize import DaskExecutor, LocalExecutor, optimize

    user_file = tmp_path / "dask_user_strats.py"
    user_file.write_text(textwrap.dedent(USER_CODE))
    cfg = optimize_config(user_file)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, protocol="tcp") as cluster:
        on_dask = optimize(cfg, tmp_path / "dask", executor=DaskExecutor(cluster.scheduler_address))
        from distributed import Client

        with Client(cluster.scheduler_address) as client:
            loaded = client.run(_user_modules)
    local = optimize(cfg, tmp_path / "local", executor=LocalExecutor(1))
    pd.testing.assert_frame_equal(on_dask.trials, local.trials, check_exact=True)
    assert any(loaded.values())  # the workers imported the user's file


def _user_modules() -> list[str]:
    import sys

    return [name for name in sys.modules if name.startswith("deleverage_user_dask_user_strats")]
