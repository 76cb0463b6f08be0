"""Features a base station estimates from its measured array CFR (:mod:`scadf_lib.measure`).

For each UE and band, from Y (antenna, subcarrier):

- **first path**: detected on the angle-delay profile (a Hann-windowed, 8x zero-padded IFFT over
  the subcarriers, then an FFT over the elements into 2N beams; per delay the strongest beam): the
  earliest local maximum at most ``dynamic_range_db`` below the strongest peak and ``detection_db``
  above the noise of a cell. The Hann window keeps sidelobes at -31 dB, so a strong later path does
  not fake an earlier one; the beams add the array gain (12 dB with 16 elements) to the detection.
  Delay and direction are then refined in turn by golden-section search of the single-path
  likelihood |a(s)^H Y f(tau)|^2 within one grid cell (the maximum-likelihood estimator for one
  path, which reaches the Cramér-Rao bound at high SNR: tests/test_measure.py);
- **time of arrival -> path length** (m): c times the first path's delay (biased by the timing
  offset, and pulled by other paths within one 6 m delay bin);
- **direction of departure** at the BS: a ULA measures the direction cosine s = cos(el) sin(az)
  along its axis, not the azimuth itself (it cannot tell front from back, nor azimuth from
  elevation); reported as the angle from broadside psi = arcsin(s) (rad) of the first path;
- **received power** (dB, as a path gain: received over transmitted power): mean |Y|^2 minus the
  known noise variance.

The UE's angle of arrival is not measurable by a single-antenna UE and is dropped. A feature whose
evidence is below the detection threshold is NaN (missing), never a guess.

Single-path Cramér-Rao bounds (:func:`crb`) for N elements, K subcarriers and SNR per element and
subcarrier rho: var(tau) >= 1 / (8 pi^2 rho N sum_k (df_k - mean df)^2) and
var(s) >= 1 / (2 pi^2 rho K sum_n (n - mean n)^2).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft

from scadf_lib.measure import Measurement
from scadf_lib.schema import SPEED_OF_LIGHT

#: Estimated features, in the order a model reads them, with units.
FEATURES = {"distance": "m", "aod": "rad", "path_gain": "dB"}


@dataclass(frozen=True)
class EstimatorConfig:
    """Settings of the estimators (units in the names)."""

    oversample: int = 8  # zero-padding factor of the delay profile (2.5 ns steps; refined after)
    beams_per_element: int = 2  # beams of the detection profile per array element
    #: a peak must stand this far above the mean noise of a profile cell: with about 16 independent
    #: beams x 64 delays per UE and exponential noise, 12 dB gives a false alarm in about 1 UE of 1,000
    detection_db: float = 12.0
    dynamic_range_db: float = 20.0  # the first path is at most this far below the strongest peak
    #: delays this far before 0 are searched too, for negative timing offsets; None: 5 standard
    #: deviations of the measurement's timing offset plus 10 ns (a BS knows its timing error budget).
    #: The delay profile wraps at 1 / df (384 m of path): a wider window would take the longest paths
    #: (324-384 m) for early ones
    early_window_ns: float | None = None

    def early_window_s(self, timing_offset_std_ns: float) -> float:
        """The early search window (s) for a measurement with this timing offset std (ns)."""
        ns = self.early_window_ns if self.early_window_ns is not None else 5 * timing_offset_std_ns + 10
        return ns * 1e-9
    refine_iterations: int = 30  # golden-section steps of the local refinement
    #: the power estimate is kept where its excess over the noise is this many standard deviations
    #: of the noise-only estimate (noise_var / sqrt(elements x subcarriers))
    power_detection_sigma: float = 3.0

    def __post_init__(self) -> None:
        if self.oversample < 1 or self.refine_iterations < 1:
            raise ValueError("oversample and refine_iterations must be >= 1")
        if self.detection_db < 0 or self.dynamic_range_db <= 0:
            raise ValueError("detection_db must be >= 0 dB and dynamic_range_db > 0 dB")


def _golden_max(f, lo: np.ndarray, hi: np.ndarray, iterations: int) -> np.ndarray:
    """Vectorised golden-section search for the maximum of f on [lo, hi], one interval per UE."""
    g = (np.sqrt(5) - 1) / 2
    a, b = lo.copy(), hi.copy()
    for _ in range(iterations):
        c, d = b - g * (b - a), a + g * (b - a)
        left = f(c) > f(d)
        a, b = np.where(left, a, c), np.where(left, d, b)
    return (a + b) / 2


def angle_delay_profile(y: np.ndarray, oversample: int, beams: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Beam-maximum delay profile of a block of UEs: for each delay bin of a Hann-windowed,
    ``oversample``-times zero-padded IFFT over the subcarriers, the largest power over ``beams``
    beams (a zero-padded FFT over the elements). Returns (profile (ue, bins), the beam index of each
    maximum (ue, bins), the noise per bin divided by the noise variance per entry)."""
    n_ue, n_ant, k = y.shape
    w = np.hanning(k + 2)[1:-1].astype(np.float32)
    # subcarrier offsets are (m - K/2) df: with the FFT index m, exp(j 2 pi df_m tau) differs from
    # exp(j 2 pi m df tau) by a phase common to all subcarriers, which |.|^2 removes
    z = scipy.fft.ifft(y * w, n=k * oversample, axis=-1, workers=-1)  # complex64 stays complex64
    if n_ant > 1:
        z = scipy.fft.fft(z, n=max(beams, n_ant), axis=1, workers=-1)
    power = np.abs(z) ** 2
    best = power.argmax(axis=1)
    return np.take_along_axis(power, best[:, None], axis=1)[:, 0], best, n_ant * float((w ** 2).sum()) / (k * oversample) ** 2


def beam_direction_cosine(index: np.ndarray, beams: int) -> np.ndarray:
    """Direction cosine s in [-1, 1) of FFT beam ``index`` (numpy's FFT peaks where the element phase
    step pi s equals 2 pi index / beams, modulo 2 pi)."""
    s = 2.0 * index / beams
    return np.where(s >= 1, s - 2, s)


def _delay_phases(offsets_hz: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """exp(j 2 pi df_k tau_u): (ue, subcarrier) complex64."""
    return np.exp(2j * np.pi * offsets_hz[None, :] * tau[:, None]).astype(np.complex64)


def _steering(s: np.ndarray, n_ant: int) -> np.ndarray:
    """exp(-j pi n s_u): (ue, antenna) complex64, the beam towards direction cosine s."""
    return np.exp(-1j * np.pi * s[:, None] * np.arange(n_ant)).astype(np.complex64)


def _refine_delay(y: np.ndarray, offsets_hz: np.ndarray, s: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                  iterations: int) -> np.ndarray:
    """The delay maximising the single-path likelihood |sum_n sum_k Y exp(-j pi n s) exp(j 2 pi df_k tau)|^2
    at a fixed direction: the beam is formed once, then each step costs one sum over subcarriers."""
    beam = np.einsum("unk,un->uk", y, _steering(s, y.shape[1]))
    return _golden_max(lambda t: np.abs((beam * _delay_phases(offsets_hz, t)).sum(axis=1)) ** 2, lo, hi, iterations)


def _refine_direction(y: np.ndarray, offsets_hz: np.ndarray, tau: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                      iterations: int) -> np.ndarray:
    """The direction cosine maximising the same likelihood at a fixed delay (snapshot formed once)."""
    snap = np.einsum("unk,uk->un", y, _delay_phases(offsets_hz, tau))
    return _golden_max(lambda v: np.abs((snap * _steering(v, y.shape[1])).sum(axis=1)) ** 2, lo, hi, iterations)


def first_path(m: Measurement, cfg: EstimatorConfig, block: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """(delay s, direction cosine) of each UE's first path; NaN where nothing is detected.

    Detection on the beam-maximum delay profile (:func:`angle_delay_profile`): the earliest local
    maximum at most ``dynamic_range_db`` below the strongest and ``detection_db`` above the noise;
    then delay and direction cosine are refined in turn by golden-section search of the single-path
    likelihood (:func:`_refine_delay`, :func:`_refine_direction`) within one grid step of the cell.
    """
    n_ue, n_ant, k = m.cfr.shape
    period = 1.0 / float(m.offsets_hz[1] - m.offsets_hz[0])
    beams = cfg.beams_per_element * n_ant if n_ant > 1 else 1
    n_bins = k * cfg.oversample
    step = period / n_bins
    shift = int(np.ceil(cfg.early_window_s(m.config.timing_offset_std_ns) / step))  # [-window, period - window)
    coarse_tau, coarse_s, detected = np.zeros(n_ue), np.zeros(n_ue), np.zeros(n_ue, bool)
    for lo in range(0, n_ue, block):
        sl = slice(lo, lo + block)
        p, beam, noise_gain = angle_delay_profile(m.cfr[sl], cfg.oversample, beams)
        p, beam = np.roll(p, shift, axis=1), np.roll(beam, shift, axis=1)
        floor = m.noise_var * noise_gain * 10 ** (cfg.detection_db / 10)
        peak = p.max(axis=1)
        threshold = np.maximum(peak * 10 ** (-cfg.dynamic_range_db / 10), floor)
        local = (p >= np.roll(p, 1, axis=1)) & (p >= np.roll(p, -1, axis=1)) & (p >= threshold[:, None])
        first = local.argmax(axis=1)
        coarse_tau[sl] = (first - shift) * step
        coarse_s[sl] = beam_direction_cosine(beam[np.arange(len(first)), first], beams) if n_ant > 1 else 0.0
        detected[sl] = peak > floor
    y, f, it = m.cfr, m.offsets_hz, cfg.refine_iterations
    tau = _refine_delay(y, f, coarse_s, coarse_tau - step, coarse_tau + step, it)
    if n_ant > 1:
        ds = 2.0 / beams
        s = _refine_direction(y, f, tau, coarse_s - ds, coarse_s + ds, it)
        tau = _refine_delay(y, f, s, tau - step / 2, tau + step / 2, it)
    else:
        s = np.full(n_ue, np.nan)
    # the likelihood is periodic in s with period 2 (exp(j pi n s)): a refinement that stepped past an
    # end of [-1, 1) (the endfire beam at s = 1 is the beam at s = -1) is wrapped back, not clipped
    s = np.mod(s + 1, 2) - 1
    return np.where(detected, tau, np.nan), np.where(detected, s, np.nan)


def received_power_db(m: Measurement, sigmas: float) -> np.ndarray:
    """Path gain estimate (dB): 10 log10(mean |Y|^2 - noise variance); NaN where the excess power is
    below ``sigmas`` noise-only standard deviations of the mean (noise_var / sqrt(n))."""
    n = m.cfr.shape[1] * m.cfr.shape[2]
    excess = (np.abs(m.cfr) ** 2).mean(axis=(1, 2), dtype=np.float64) - m.noise_var
    detected = excess > sigmas * m.noise_var / np.sqrt(n)
    return np.where(detected, 10 * np.log10(np.maximum(excess, 1e-300)), np.nan)


def estimate(m: Measurement, cfg: EstimatorConfig = EstimatorConfig()) -> dict[str, np.ndarray]:
    """The estimated features of every UE of a measurement: ``distance`` (m, first path),
    ``aod`` (rad from broadside, first path), ``path_gain`` (dB); NaN where missing."""
    delay, s = first_path(m, cfg)
    return {"distance": SPEED_OF_LIGHT * delay, "aod": np.arcsin(np.clip(s, -1, 1)),
            "path_gain": received_power_db(m, cfg.power_detection_sigma)}


def crb(snr_db: float | np.ndarray, offsets_hz: np.ndarray, num_antennas: int,
        direction_cosine: float = 0.0) -> dict[str, np.ndarray]:
    """Single-path Cramér-Rao bounds (standard deviations) at an SNR per element and subcarrier (dB):
    ``distance`` (m), ``aod`` (rad from broadside, at the given direction cosine), ``path_gain``
    (dB: the noise-only standard deviation of the power estimate, not a CRB proper)."""
    rho = 10 ** (np.asarray(snr_db, dtype=np.float64) / 10)
    k = len(offsets_hz)
    n = np.arange(num_antennas)
    var_tau = 1 / (8 * np.pi ** 2 * rho * num_antennas * ((offsets_hz - offsets_hz.mean()) ** 2).sum())
    var_s = 1 / (2 * np.pi ** 2 * rho * k * max(((n - n.mean()) ** 2).sum(), 1e-30))
    m = num_antennas * k
    # P_hat = mean|Y|^2 - s2: var = (s2^2 + 2 P s2) / m; relative to P = rho s2
    rel = np.sqrt((1 + 2 * rho) / m) / rho
    return {"distance": SPEED_OF_LIGHT * np.sqrt(var_tau),
            "aod": np.sqrt(var_s) / np.sqrt(max(1 - direction_cosine ** 2, 1e-12)),
            "path_gain": 10 / np.log(10) * rel}
