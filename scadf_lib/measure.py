"""What a base station measures: the uplink channel estimate of its whole array, from stored paths.

The UE sends an uplink sounding reference signal (SRS) over the 50 MHz band; the BS estimates the
channel at each of its ``N`` ULA elements and ``K`` subcarriers. The measurement is uplink because
the BS is the one that measures (a single-antenna UE could not resolve an angle); by reciprocity
the uplink channel equals the downlink one, so the departure angles at the BS are the stored AoDs.

Model, for UE u, element n, subcarrier k (offset df_k from the carrier, Hz)::

    Y[n, k] = exp(j phi) * sum_p c_p exp(j pi n s_p) exp(-j 2 pi df_k (tau_p + dt)) + W[n, k]

- ``c_p``: the path's baseband gain at element 0 (carrier phase included), ``tau_p`` its delay (s),
  ``s_p = cos(el_p) sin(az_p)`` the direction cosine along the array axis (the ULA lies along the
  scene's y axis, half-wavelength spacing, so the element phase step is pi * s_p; checked against
  Sionna RT's own 16-element CFR in tests/test_measure.py);
- ``phi``: a common phase, uniform in [0, 2 pi) per measurement (oscillators are not locked);
- ``dt``: a timing offset, Gaussian with std ``timing_offset_std_ns`` per measurement (3GPP TR
  38.843 models 2, 10 or 50 ns);
- ``W``: white complex Gaussian noise. Y is the channel estimate normalised by the transmit
  amplitude, so the noise variance per element and subcarrier is N / P_tx with
  N = -174 dBm/Hz + 10 log10(B) + NF (dBm) and P_tx the UE's power: each UE's SNR follows from its
  own ray-traced path gain (far NLOS UEs are noisy, near LOS ones clean).

Every setting has a name and a default (:class:`MeasurementConfig`), recorded with each run.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from scadf_lib.schema import has_paths, parse_band, subcarrier_offsets_hz

#: The inputs a model can be given: the ray tracer's own values, or what a BS estimates.
INPUTS = ("oracle", "measured")
#: Thermal noise power spectral density at 290 K, dBm/Hz.
THERMAL_NOISE_DBM_HZ = -174.0
#: Frequency range 1 ends at 7.125 GHz (3GPP TS 38.104); above it the BS noise figure is FR2's.
FR1_MAX_GHZ = 7.125


@dataclass(frozen=True)
class MeasurementConfig:
    """The uplink measurement: link budget, impairments and array (units in the names).

    Defaults: a 3GPP power-class-3 UE (23 dBm, TS 38.101-1) sounding the whole 50 MHz; a BS
    noise figure of 5 dB in FR1 and 7 dB in FR2 (ITU-R M.2412's evaluation values, recalled, not
    read); 2 ns timing offset std (TR 38.843's smallest, a calibrated UE-TRP timing error group);
    a common phase per measurement; the full 16-element array.
    """

    tx_power_dbm: float = 23.0
    noise_figure_db: float | None = None  # None: 5 dB in FR1 (<= 7.125 GHz), 7 dB in FR2
    noise_psd_dbm_hz: float = THERMAL_NOISE_DBM_HZ
    num_antennas: int = 16
    timing_offset_std_ns: float = 2.0
    common_phase: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if self.noise_figure_db is not None and self.noise_figure_db < 0:
            raise ValueError(f"noise_figure_db = {self.noise_figure_db} dB: a receiver's noise figure is >= 0 dB "
                             f"(a BS has about 5-7 dB); pass a non-negative value or None for the default")
        if not isinstance(self.num_antennas, (int, np.integer)) or self.num_antennas < 1:
            raise ValueError(f"num_antennas = {self.num_antennas}: the array needs at least 1 element "
                             f"(the BS of the shipped data has 16)")
        if self.timing_offset_std_ns < 0:
            raise ValueError(f"timing_offset_std_ns = {self.timing_offset_std_ns}: a standard deviation is >= 0 ns "
                             f"(3GPP uses 2, 10 or 50 ns)")
        if not np.isfinite(self.tx_power_dbm):
            raise ValueError("tx_power_dbm must be a finite power in dBm (a UE transmits about 23 dBm)")

    def noise_figure(self, band_ghz: float) -> float:
        """The BS noise figure (dB) at a carrier (GHz)."""
        if self.noise_figure_db is not None:
            return float(self.noise_figure_db)
        return 5.0 if band_ghz <= FR1_MAX_GHZ else 7.0

    def noise_dbm(self, band_ghz: float, bandwidth_hz: float) -> float:
        """Noise power over the band at one element, dBm."""
        return self.noise_psd_dbm_hz + 10 * np.log10(bandwidth_hz) + self.noise_figure(band_ghz)

    def to_json(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))


def check_inputs(name: str) -> str:
    """``name`` if it is one of :data:`INPUTS`, else a clear error."""
    if name not in INPUTS:
        raise ValueError(f"unknown inputs {name!r}: choose one of {list(INPUTS)} ('oracle': the ray tracer's exact "
                         f"values; 'measured': what the BS estimates from its noisy array CFR)")
    return name


def require_paths(ds: xr.Dataset) -> None:
    """Refuse a dataset without stored paths, naming the fix."""
    if not has_paths(ds):
        raise ValueError(f"this dataset (data version {ds.attrs.get('data_version', 1)}) stores no paths, so "
                         f"nothing can be measured from it: use the shipped data/<scene>.nc (version 2) or "
                         f"regenerate with `make data`")


@dataclass
class Paths:
    """The stored paths of one band as arrays: ``coef`` (ue, path) complex, ``delay_s`` (ue, path),
    ``direction_cosine`` (ue, path) along the array axis, ``valid`` (ue, path)."""

    coef: np.ndarray
    delay_s: np.ndarray
    direction_cosine: np.ndarray
    valid: np.ndarray

    @classmethod
    def from_dataset(cls, ds: xr.Dataset, band: float) -> "Paths":
        require_paths(ds)
        b = parse_band(band, tuple(float(v) for v in ds["band"].values))
        sel = ds.sel(band=b)
        n = ds["num_stored_paths"].values
        valid = np.arange(ds.sizes["path"])[None, :] < n[:, None]
        coef = (sel["path_coef_real"].values + 1j * sel["path_coef_imag"].values).astype(np.complex64)
        el, az = ds["path_aod_el"].values, ds["path_aod_az"].values
        return cls(coef=np.where(valid, coef, 0), delay_s=ds["path_delay"].values.astype(np.float64),
                   direction_cosine=(np.cos(el) * np.sin(az)).astype(np.float64), valid=valid)


def steering(direction_cosine: np.ndarray, num_antennas: int) -> np.ndarray:
    """Element phases exp(j pi n s) of a half-wavelength ULA, relative to element 0: (..., n)."""
    n = np.arange(num_antennas)
    return np.exp(1j * np.pi * direction_cosine[..., None] * n)


def array_cfr(paths: Paths, offsets_hz: np.ndarray, num_antennas: int, extra_delay_s: np.ndarray | None = None,
              block: int = 2048) -> np.ndarray:
    """The noise-free CFR of the whole ULA: (ue, antenna, subcarrier) complex64.

    H[u, n, k] = sum_p c_up exp(j pi n s_up) exp(-j 2 pi df_k (tau_up + dt_u)); ``extra_delay_s``
    (ue,) adds a timing offset dt. Computed as a batched matrix product over blocks of UEs with
    similar path counts, each block cut to its own largest count (the padding holds no path). The
    subcarrier phases are taken in float32 (at most 1.3 us x 25 MHz = 200 rad: 2e-5 rad of error).
    """
    n_ue = paths.coef.shape[0]
    out = np.empty((n_ue, num_antennas, len(offsets_hz)), np.complex64)
    counts = paths.valid.sum(axis=1)
    order = np.argsort(counts, kind="stable")
    for lo in range(0, n_ue, block):
        rows = order[lo:lo + block]
        width = max(int(counts[rows].max()), 1)
        tau = paths.delay_s[rows, :width]
        if extra_delay_s is not None:
            tau = tau + extra_delay_s[rows, None]
        a = (steering(paths.direction_cosine[rows, :width], num_antennas) * paths.coef[rows, :width, None])
        phase = (-2 * np.pi * tau[:, :, None] * offsets_hz[None, None, :]).astype(np.float32)
        out[rows] = np.matmul(a.astype(np.complex64).transpose(0, 2, 1), np.exp(1j * phase))
    return out


def snr_db(path_gain_db: np.ndarray, config: MeasurementConfig, band_ghz: float, bandwidth_hz: float) -> np.ndarray:
    """SNR per element and subcarrier (dB): P_tx + path gain - noise; both spread evenly over the band."""
    return config.tx_power_dbm + np.asarray(path_gain_db) - config.noise_dbm(band_ghz, bandwidth_hz)


@dataclass
class Measurement:
    """One band's measurements of every UE of a dataset.

    ``cfr`` (ue, antenna, subcarrier): the channel estimate normalised by the transmit amplitude;
    ``noise_var``: its noise variance per entry (same units, |H|^2); ``snr_db`` (ue,): per element
    and subcarrier; ``timing_offset_s`` and ``common_phase_rad`` (ue,): the impairments drawn.
    """

    band_ghz: float
    cfr: np.ndarray
    noise_var: float
    snr_db: np.ndarray
    timing_offset_s: np.ndarray
    common_phase_rad: np.ndarray
    offsets_hz: np.ndarray
    config: MeasurementConfig


def band_seed(config: MeasurementConfig, band_ghz: float) -> np.random.Generator:
    """The random stream of one band's measurement: fixed by the seed and the band."""
    return np.random.default_rng([config.seed, int(round(band_ghz * 1000))])


def measure(ds: xr.Dataset, band: float, config: MeasurementConfig = MeasurementConfig()) -> Measurement:
    """What the BS measures of every UE of ``ds`` at ``band`` (GHz): see the module docstring."""
    band_ghz = parse_band(band, tuple(float(v) for v in ds["band"].values))
    return measure_paths(Paths.from_dataset(ds, band_ghz), band_ghz, float(ds.attrs["bandwidth_hz"]),
                         int(ds.attrs["num_subcarriers"]), config)


def measure_paths(paths: Paths, band_ghz: float, bandwidth_hz: float, num_subcarriers: int,
                  config: MeasurementConfig = MeasurementConfig()) -> Measurement:
    """The measurement of :func:`measure` from :class:`Paths` (synthetic paths in tests)."""
    offsets = subcarrier_offsets_hz(bandwidth_hz, num_subcarriers)
    rng = band_seed(config, band_ghz)
    n_ue = paths.coef.shape[0]
    dt = rng.normal(0.0, config.timing_offset_std_ns * 1e-9, n_ue)
    phase = rng.uniform(0, 2 * np.pi, n_ue) * config.common_phase  # drawn always: the noise stays the same
    h = array_cfr(paths, offsets, config.num_antennas, extra_delay_s=dt)
    h *= np.exp(1j * phase)[:, None, None].astype(np.complex64)
    noise_var = _noise_var(config, band_ghz, bandwidth_hz)
    noise = rng.standard_normal(h.shape + (2,), dtype=np.float32).view(np.complex64)[..., 0]  # CN(0, 2)
    h += np.float32(np.sqrt(noise_var / 2)) * noise
    return Measurement(band_ghz=band_ghz, cfr=h, noise_var=float(noise_var),
                       snr_db=_element_snr_db(paths, noise_var), timing_offset_s=dt,
                       common_phase_rad=phase, offsets_hz=offsets, config=config)


def link_snr_db(ds: xr.Dataset, band: float, config: MeasurementConfig = MeasurementConfig()) -> np.ndarray:
    """(ue,) the per-element SNR (dB) that :func:`measure` reports for ``band`` (GHz), from the paths'
    total gain and the link budget alone: no CFR is synthesised (about 100x faster), the same values."""
    band_ghz = parse_band(band, tuple(float(v) for v in ds["band"].values))
    paths = Paths.from_dataset(ds, band_ghz)
    return _element_snr_db(paths, _noise_var(config, band_ghz, float(ds.attrs["bandwidth_hz"])))


def _noise_var(config: MeasurementConfig, band_ghz: float, bandwidth_hz: float) -> float:
    """The noise variance per CFR entry, relative to the transmit power (|H|^2 units)."""
    return 10 ** ((config.noise_dbm(band_ghz, bandwidth_hz) - config.tx_power_dbm) / 10)


def _element_snr_db(paths: Paths, noise_var: float) -> np.ndarray:
    """(ue,) SNR (dB) per element and subcarrier: the paths' total power gain (the mean |H|^2) over the noise."""
    gain = (np.abs(paths.coef) ** 2).sum(axis=1)
    return 10 * np.log10(np.maximum(gain, 1e-30) / noise_var)
