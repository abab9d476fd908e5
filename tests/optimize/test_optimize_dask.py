"""The same sweep on a real Dask LocalCluster (loopback, two worker processes) and on the local
pool gives identical tables."""

from __future__ import annotations

import pandas as pd
import pytest

from engine.optimize import DaskExecutor, LocalExecutor, ParamRange, optimize

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def cluster():
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None, protocol="tcp") as c:
        yield c


def test_dask_cluster_results_equal_local_results(tmp_path, cluster, config_factory):
    cfg = config_factory(ranges=(ParamRange("leverage", 1.0, 19.0, 6.0), ParamRange("side", -1, 1, 2, True)),
                         walk_forward=2, survive=("synthetic:1500:5",), objective="sortino")
    assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
    dask_ex = DaskExecutor(cluster.scheduler_address)
    assert "2 worker(s)" in dask_ex.describe()
    on_dask = optimize(cfg, tmp_path / "dask", executor=dask_ex)
    local = optimize(cfg, tmp_path / "local", executor=LocalExecutor(2))
    assert on_dask.summary["executor"].startswith("Dask cluster tcp://127.0.0.1:")
    assert on_dask.summary["evaluations"]["units"] == 8 * 4  # 8 sets x (3 chunks + 1 scenario)
    assert len(on_dask.trials) == 16  # 8 sets x 2 folds
    pd.testing.assert_frame_equal(on_dask.trials, local.trials, check_exact=True)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "dask" / "trials.parquet"),
                                  pd.read_parquet(tmp_path / "local" / "trials.parquet"), check_exact=True)
    assert on_dask.summary["per_fold"] == local.summary["per_fold"]
    # the work really ran in the cluster's worker processes: they hold the bars they loaded
    from distributed import Client

    with Client(cluster.scheduler_address) as client:
        loaded = client.run(_loaded_bars)
    assert len(loaded) == 2
    assert any(("synthetic:3000:3", None, False) in keys for keys in loaded.values())  # (spec, scenario data, no_funding)


def _loaded_bars() -> list[tuple]:
    from engine.optimize.evaluate import _BARS

    return [tuple(k) for k in _BARS]


def test_dask_de_matches_local_de(tmp_path, cluster, config_factory):
    cfg = config_factory(method="de", ranges=(ParamRange("leverage", 1.0, 20.0, None),), popsize=5, maxiter=3,
                         seed=5, objective="calmar")
    on_dask = optimize(cfg, tmp_path / "dask", executor=DaskExecutor(cluster.scheduler_address))
    local = optimize(cfg, tmp_path / "local", executor=LocalExecutor(1))
    pd.testing.assert_frame_equal(on_dask.trials, local.trials, check_exact=True)
    assert on_dask.summary["differential_evolution"] == local.summary["differential_evolution"]
