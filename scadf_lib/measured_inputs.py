"""Model inputs as a base station measures them (``TrainConfig.inputs = "measured"``).

Each UE is measured once per band (:func:`scadf_lib.measure.measure`, the run's
:class:`~scadf_lib.measure.MeasurementConfig`, seeded) and the models are given, in place of the
ray tracer's oracle values:

- **numeric** (6 per point, :data:`MEASURED_NUMERIC_NAMES`): sine and cosine of the first path's
  angle from the array's broadside, its length (m), the received power (dB), and two flags, 1 where
  the first path or the power was below detection. A missing value is replaced by the median of the
  detected values at that band (the flag says so), never by a guess from the position;
- **CFR** (16 beams x 64 delay taps per point): the magnitude of the measured angle-delay profile,
  |FFT over the elements of the IFFT over the subcarriers|, divided by its RMS. A magnitude is
  invariant to the measurement's common phase; the timing offset shifts it along the delay axis.

The oracle inputs (:func:`scadf_lib.trajectories.input_features`) stay the default.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.fft
import xarray as xr

from scadf_lib.estimate import EstimatorConfig, estimate
from scadf_lib.measure import MeasurementConfig, measure

#: The numeric features of measured inputs, in order.
MEASURED_NUMERIC_NAMES = ("sin_aod", "cos_aod", "distance_m", "path_gain_db", "first_path_missing", "power_missing")


def angle_delay_magnitude(cfr: np.ndarray) -> np.ndarray:
    """|angle-delay profile| of measured CFRs (ue, antenna, subcarrier) -> (ue, beam, tap) float32,
    one beam per element and one tap per subcarrier, divided by each UE's RMS."""
    adp = np.abs(scipy.fft.fft(scipy.fft.ifft(cfr, axis=-1, workers=-1), axis=1, workers=-1))
    rms = np.sqrt((adp ** 2).mean(axis=(1, 2), keepdims=True))
    return (adp / np.where(rms > 0, rms, 1.0)).astype(np.float32)


def _filled(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values with NaN replaced by the median of the finite ones, 1.0 where missing)."""
    missing = ~np.isfinite(values)
    fill = float(np.median(values[~missing])) if (~missing).any() else 0.0
    return np.where(missing, fill, values), missing.astype(np.float32)


def measured_input_features(ds: xr.Dataset, measurement: MeasurementConfig | dict[str, Any] | None = None,
                            estimator: EstimatorConfig = EstimatorConfig()) -> tuple[np.ndarray, np.ndarray]:
    """``numeric`` (B, N, 6) and ``cfr`` (B, N, A, K) of every (band, UE), float32, from one measurement
    of each; the same shapes' roles as :func:`scadf_lib.trajectories.input_features`."""
    cfg = measurement if isinstance(measurement, MeasurementConfig) else MeasurementConfig(**(measurement or {}))
    numerics, cfrs = [], []
    for band in [float(b) for b in ds["band"].values]:
        m = measure(ds, band, cfg)
        f = estimate(m, estimator)
        distance, first_missing = _filled(f["distance"])
        gain, power_missing = _filled(f["path_gain"])
        psi = np.nan_to_num(f["aod"], nan=0.0)
        numerics.append(np.stack([np.sin(psi), np.cos(psi), distance, gain, first_missing, power_missing], axis=-1))
        cfrs.append(angle_delay_magnitude(m.cfr))
    return np.stack(numerics).astype(np.float32), np.stack(cfrs)
