"""A result set: its folder, the names of its files, and its tables, each read once."""

from __future__ import annotations

from pathlib import Path

import pandas as pd



class ResultSet:
    """A result set's folder (``results/<name>/``, written by ``python -m scadf_lib.experiments``) and
    its tables, each read at most once. The file names live here and nowhere else: the sweep driver
    writes them through :meth:`file`, the studies read them through :meth:`table`.

    ``tables`` pre-fills tables by file name (a test's hand-made tables)."""

    METRICS = "all_metrics.csv"        #: one row per run, point group and band: MSE (m²) and more
    RUNS = "runs.csv"                  #: one row per run: its settings, epochs, flatness, cost
    CURVES = "curves.csv.gz"           #: one row per run and epoch: the learning curves (gzipped: 5x smaller)
    PAIRED_POINTS = "paired_points.csv"  #: SCADF-MoE against L = 1 on the same held-out points
    ISOLATION = "isolation.csv"        #: held-out error on points with no training fingerprint nearby
    SWEEPS = "sweeps.csv"              #: one row per sweep command: wall clock, device, jobs
    REBUILDS = "rebuilds.csv"          #: committed runs retrained from scratch, and whether they matched
    TRACKS = "tracks.csv"              #: walked tracks scored with the Localiser
    DEGRADATION = "degradation.csv"    #: test-time corruptions per run
    ROUTING_RESPONSE = "routing_response.csv"  #: SCADF-MoE's CFR share under corruption
    ROUTING_QUALITY = "routing_quality.csv.gz"  #: SCADF-MoE's CFR share against measurement quality
    SNR_MAP = "snr.csv.gz"             #: per-element SNR (dB) per band and UE at the default link budget
    SURVEY_DISTANCE = "survey_distance.csv.gz"  #: held-out block points' distance to the survey (m), per seed
    ERRORS = "errors"                  #: per-point errors (m) of some runs, ``<run>.csv.gz``
    LEARNING_CURVES = "learning_curves.png"  #: figure: the main runs' validation curves (munich)
    ERROR_CDF = "error_cdf.png"        #: figure: held-out error CDFs per scene (seed 0)
    UNSURVEYED_CDF = "error_cdf_blocks.png"  #: figure: held-out error CDFs on points and on blocks
    ERROR_VS_DISTANCE = "error_vs_distance.png"  #: figure: held-out MSE on blocks against the distance to the survey
    SURVEY_DENSITY = "survey_density.png"  #: figure: held-out error against the share of the grid surveyed
    MEASURED_CDF = "error_cdf_measured.png"  #: figure: held-out error CDFs on oracle and on measured inputs
    ACCURACY_VS_SNR = "accuracy_vs_snr.png"  #: figure: held-out MSE per quarter of the link SNR
    DEGRADATION_REPORT = "DEGRADATION.md"  #: the degradation study in full (the report keeps a summary)

    def __init__(self, path: Path | str, tables: dict[str, pd.DataFrame] | None = None):
        self.path = Path(path)
        self._tables: dict[str, pd.DataFrame | None] = dict(tables or {})

    @classmethod
    def of_tables(cls, metrics: pd.DataFrame | None = None, runs: pd.DataFrame | None = None,
                  curves: pd.DataFrame | None = None, path: Path | str = ".") -> "ResultSet":
        """A set held in memory (a test's or a notebook's tables); ``metrics`` is taken as it is."""
        rs = cls(path, {cls.RUNS: runs, cls.CURVES: curves, cls.METRICS: metrics})
        rs._tables["metrics"] = metrics
        return rs

    def __repr__(self) -> str:
        return f"ResultSet({str(self.path)!r})"

    @property
    def name(self) -> str:
        return self.path.name

    def file(self, name: str) -> Path:
        """The path of one of the set's files (a name of this class's constants)."""
        return self.path / name

    def has(self, name: str) -> bool:
        if name in self._tables:
            return self._tables[name] is not None
        return self.file(name).exists()

    def table(self, name: str) -> pd.DataFrame | None:
        """One of the set's tables, read once (``band`` stays text); None where the set has none."""
        if name not in self._tables:
            path = self.file(name)
            dtype = {"band": str} if name == self.METRICS else None
            self._tables[name] = pd.read_csv(path, dtype=dtype) if path.exists() else None
        return self._tables[name]

    def required(self, name: str) -> pd.DataFrame:
        """:meth:`table`, or an error naming the command that writes the set."""
        table = self.table(name)
        if table is None:
            raise FileNotFoundError(f"{self.file(name)} not found: a result set is written by "
                                    f"`python -m scadf_lib.experiments --preset <name>` into results/<name>/")
        return table

    @property
    def runs(self) -> pd.DataFrame:
        return self.required(self.RUNS)

    @property
    def metrics(self) -> pd.DataFrame:
        """``all_metrics.csv`` without anchors that duplicate another on every split
        (:func:`redundant_anchors`); :attr:`runs` keeps them."""
        if "metrics" not in self._tables:
            self._tables["metrics"] = without_redundant_anchors(self.required(self.METRICS), self.runs)
        return self._tables["metrics"]

    @property
    def curves(self) -> pd.DataFrame | None:
        return self.table(self.CURVES)

    def errors(self, run: str) -> pd.DataFrame | None:
        """The per-point errors of one run (``errors/<run>.csv.gz``), or None where not kept."""
        return self.table(f"{self.ERRORS}/{run}.csv.gz")

    def sibling(self, name: str) -> "ResultSet":
        """Another set beside this one (``results/<name>/``)."""
        return ResultSet(self.path.parent / name)


def as_set(rs: ResultSet | Path | str) -> ResultSet:
    """A :class:`ResultSet`, from itself or from its folder."""
    return rs if isinstance(rs, ResultSet) else ResultSet(rs)


def read_set(set_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(metrics, runs) of a result set (:class:`ResultSet`)."""
    rs = ResultSet(set_dir)
    return rs.metrics, rs.runs


def read_curves(set_dir: Path) -> pd.DataFrame | None:
    """A result set's learning curves (``curves.csv.gz``: one row per run and epoch), or None without."""
    return ResultSet(set_dir).curves


def redundant_anchors(runs: pd.DataFrame) -> set[str]:
    """Anchors that reduced to another on every split of the set: ``wknn_cfr`` where the validation
    search chose CFR weight 0 everywhere (its predictions are then exactly WKNN (numeric)'s)."""
    cfr = runs[(runs.study == "anchors") & (runs.model == "wknn_cfr")]
    if cfr.empty or "anchor_cfr_weight" not in cfr:
        return set()
    return {"wknn_cfr"} if (cfr.anchor_cfr_weight.fillna(0) <= 0).all() else set()


def without_redundant_anchors(metrics: pd.DataFrame, runs: pd.DataFrame) -> pd.DataFrame:
    """``metrics`` without the rows of :func:`redundant_anchors` (they duplicate another anchor's)."""
    drop = redundant_anchors(runs)
    return metrics[~((metrics.study == "anchors") & metrics.model.isin(drop))]
