"""Percentiles as the benchmarks print them."""

import numpy as np


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100, interpolated); nan for no values, so an empty step prints as such."""
    return float(np.percentile(values, q)) if values else float("nan")
