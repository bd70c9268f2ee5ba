"""Latency predictors fitted on end-to-end measurements: protocol, registry, files, fitting and
scoring (see docs/predictors.md)."""

from hwnas.latency.predictors.base import (
    BUILTIN,
    FORMAT,
    LatencyPredictor,
    PredictorContext,
    StoredPredictor,
    create_predictor,
    load_predictor,
    predictor_class,
    predictor_names,
    predictor_path,
    register_predictor,
)

__all__ = ["BUILTIN", "FORMAT", "LatencyPredictor", "PredictorContext", "StoredPredictor",
           "create_predictor", "load_predictor", "predictor_class", "predictor_names", "predictor_path",
           "register_predictor"]
