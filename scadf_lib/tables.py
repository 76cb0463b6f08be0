"""Summaries of the tidy result tables (``all_metrics.csv``): means with 95 % confidence intervals
over seeds. Used by the driver, the report and the notebooks."""

from __future__ import annotations

import numpy as np
import pandas as pd


def csv_flags(column: pd.Series) -> pd.Series:
    """A boolean column read back from CSV (``True``/``False``, as text or bool; missing is False)
    as booleans: runs.csv ``flat``, rebuilds.csv ``reproduced``."""
    return column.astype(str).str.lower() == "true"


def mean_ci(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Mean and half-width of the Student-t confidence interval (NaN half-width for one value)."""
    from scipy import stats
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) < 2:
        return (float(v.mean()) if len(v) else np.nan), np.nan
    half = stats.t.ppf(0.5 + confidence / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(half)


def ratio_ci(ratios: np.ndarray, confidence: float = 0.95) -> tuple[float, float, float]:
    """Per-seed ratios summarised on the log scale, so that no one seed dominates: the geometric mean
    and its Student-t interval, (mean, low, high); low and high are NaN for one ratio."""
    r = np.asarray(ratios, dtype=float)
    r = r[np.isfinite(r) & (r > 0)]
    if not len(r):
        return np.nan, np.nan, np.nan
    mean, half = mean_ci(np.log(r), confidence)
    return float(np.exp(mean)), float(np.exp(mean - half)), float(np.exp(mean + half))


def fmt_ratio(mean: float, low: float, high: float) -> str:
    """'0.95× (0.62-1.45)': a geometric-mean ratio with its 95 % interval, or '0.95×' for one seed."""
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean:.2f}×" + (f" ({low:.2f}-{high:.2f})" if np.isfinite(low) else "")


def summarize(metrics: pd.DataFrame, by: list[str], group: str, band: str = "all") -> pd.DataFrame:
    """Mean MSE (m^2) and 95 % CI over seeds for one metric group, per ``by`` keys."""
    sel = metrics[(metrics.group == group) & (metrics.band == band)]
    rows = []
    for key, g in sel.groupby(by):
        mean, half = mean_ci(g.mse_m2.values)
        rows.append({**dict(zip(by, key if isinstance(key, tuple) else (key,))), "mse_m2": mean, "ci95": half,
                     "seeds": int(g.seed.nunique())})
    return pd.DataFrame(rows, columns=[*by, "mse_m2", "ci95", "seeds"])


def md_table(df: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table; floats with two decimals."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in row) + " |")
    return "\n".join(lines)
