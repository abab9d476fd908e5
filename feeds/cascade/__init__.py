"""Cascade simulator and its calibration (see :mod:`feeds.cascade.model` and :mod:`feeds.cascade.fit`)."""

from feeds.cascade.model import (CascadeParams, Inventory, Shock, build_inventory, monte_carlo, runaway_ratio,
                                 simulate)

__all__ = ["CascadeParams", "Shock", "Inventory", "build_inventory", "simulate", "runaway_ratio", "monte_carlo",
           "calibrate", "fitted_params", "preset", "evaluate", "path_errors", "real_target", "CalibrationResult"]


def __getattr__(name: str):  # lazy: the calibration module pulls in scipy.optimize
    if name in ("calibrate", "fitted_params", "preset", "evaluate", "path_errors", "real_target", "CalibrationResult"):
        from feeds.cascade import fit as _c

        return getattr(_c, name)
    raise AttributeError(name)
