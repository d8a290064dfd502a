"""Detectors: plug-ins that turn topology state and route churn into alert conditions."""

from __future__ import annotations

from bgpwatch.detect.base import (
    REGISTRY,
    Detector,
    Param,
    describe_detectors,
    detector_param_problems,
    register,
    validate_detector_params,
)

__all__ = [
    "REGISTRY",
    "Detector",
    "Param",
    "describe_detectors",
    "detector_param_problems",
    "register",
    "validate_detector_params",
]
