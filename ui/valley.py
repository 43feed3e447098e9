"""Chapter 1 glue: the controls (URL params), cached computations and tables of "Valley vs bowl".

A slider's journey: widget value (validated by :mod:`ui.state`, mirrored in the URL) ->
a cached pure function below (primitive, hashable arguments only; nothing read from globals)
-> a figure builder in :mod:`ui.valley_figures` -> :func:`ui.page.chart` (updated in place).
"""

from __future__ import annotations

import collections
import functools
import hashlib
import io
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import streamlit as st
from streamlit.runtime.scriptrunner import add_script_run_ctx, get_script_run_ctx

from bn_core import regression as R
from bn_core import theory as T
from bn_core.data import FEATURE_NAMES, RegressionData, make_regression
from bn_core.upload import CsvDataset, CsvError, parse_two_feature_csv
from ui import code, page
from ui import valley_figures as vf
from ui.state import BoolParam, ChoiceParam, FloatParam, IntParam, MultiChoiceParam
from ui.theme import KeepsDerived


def _log_options(mantissas: tuple, lo_exp: int, hi_exp: int, extra: tuple = ()) -> tuple[float, ...]:
    vals = {float(f"{m}e{e}") for e in range(lo_exp, hi_exp + 1) for m in mantissas} | set(extra)
    return tuple(sorted(vals))


#: Learning rates, 6 per decade from 1e-6 to 3 (a log scale: raw needs ~1e-5, standardized ~1).
LR_OPTIONS = _log_options((1, 1.5, 2, 3, 5, 7), -6, -1, extra=(1.0, 1.5, 2.0, 3.0))
#: Fractions of each variant's 2/lambda_max; above 1 full-batch gradient descent diverges.
FRACTION_OPTIONS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99,
                    1.0, 1.01, 1.05, 1.1, 1.2, 1.5)
TOL_OPTIONS = (1e-10, 1e-8, 1e-6, 1e-5, 1e-4, 1e-3, 1e-2)
MOMENTUM_OPTIONS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
BETA1_OPTIONS = (0.0, 0.5, 0.8, 0.9, 0.95, 0.99)
BETA2_OPTIONS = (0.9, 0.99, 0.999, 0.9999)
N_MAX, EPOCHS_MAX = 500, 200
MODES = ("fraction", "same")
MODE_LABELS = {"fraction": "fraction of each variant's 2/λ_max", "same": "same learning rate for all"}

SOURCES = ("seed", "example", "upload")
SOURCE_LABELS = {"seed": "seed recipe: y = 2A + 3B + noise", "example": "example CSV (house prices)",
                 "upload": "my own CSV (not stored in the link)"}
EXAMPLE_CSV = Path(__file__).resolve().parents[1] / "data" / "example_two_features.csv"

PARAMS = [
    ChoiceParam("c1_source", "seed", label="data", choices=SOURCES),
    IntParam("c1_seed", 42, label="seed", lo=0, hi=10_000),
    IntParam("c1_n", 100, label="samples n", lo=2, hi=N_MAX),
    FloatParam("c1_noise", 0.1, label="noise", lo=0.0, hi=100.0),
    MultiChoiceParam("c1_variants", ("raw", "standardized"), label="variants", choices=R.VARIANTS),
    ChoiceParam("c1_opt", "gd", label="optimizer", choices=tuple(R.OPTIMIZERS)),
    FloatParam("c1_mom", 0.9, label="momentum", lo=0.0, hi=0.99, options=MOMENTUM_OPTIONS),
    FloatParam("c1_beta1", 0.9, label="Adam beta1", lo=0.0, hi=0.99, options=BETA1_OPTIONS),
    FloatParam("c1_beta2", 0.999, label="Adam beta2", lo=0.9, hi=0.9999, options=BETA2_OPTIONS),
    ChoiceParam("c1_mode", "fraction", label="learning-rate mode", choices=MODES),
    # 5e-5: below raw's 2/lambda_max (7.4e-5 on the seed data), so "same learning rate for all"
    # opens on a step at which every variant runs (issue 10, item 11).
    FloatParam("c1_lr", 5e-5, label="learning rate", lo=LR_OPTIONS[0], hi=LR_OPTIONS[-1], options=LR_OPTIONS),
    FloatParam("c1_frac", 0.5, label="fraction of 2/λ_max", lo=FRACTION_OPTIONS[0], hi=FRACTION_OPTIONS[-1],
               options=FRACTION_OPTIONS),
    IntParam("c1_batch", 100, label="batch size", lo=1, hi=N_MAX),
    IntParam("c1_epochs", 100, label="epochs", lo=1, hi=EPOCHS_MAX),
    FloatParam("c1_tol", 1e-6, label="tolerance", lo=TOL_OPTIONS[0], hi=TOL_OPTIONS[-1], options=TOL_OPTIONS),
    BoolParam("c1_map", True, label="stability map"),
    ChoiceParam("c1_speed", "normal", label="animation speed", choices=tuple(vf.SPEEDS)),
]
P = {p.key: p for p in PARAMS}
#: The step-size controls, drawn inside the page's fragment (see ``ui.valley_controls``).
STEP_KEYS = ("c1_lr", "c1_frac")

#: Grid resolution of the drawn landscapes (the closed form does 400 x 400 in ~ms, but every
#: grid value is serialized, hashed and sent on every step-size change, so the page draws a
#: lighter one; at 80 x 80 the raw valley's contours still look smooth in Chromium, and the
#: landscape's JSON is about 73 KB instead of 95 KB at 100 x 100).
GRID = 80


def fmt_num(x: float) -> str:
    """Short human formatting: 3 significant digits, 'inf' for infinity, '—' for None."""
    if x is None:
        return "—"
    if isinstance(x, float) and math.isinf(x):
        return "∞"
    return f"{x:.3g}"


def per_rerun_cache(maxsize: int):
    """A ``functools.lru_cache`` for the few calls the page makes on *every* rerun.

    ``st.cache_resource`` builds each key by inspecting the function's signature and hashing
    every argument with its own hasher: about 1 ms per call on this machine, several per rerun.
    These calls take only hashable primitives (str, int, float and tuples of them), so a plain
    dictionary lookup on the argument tuple is an exact key and costs microseconds
    (``typed=True`` keeps ``1`` and ``1.0`` apart). ``lru_cache`` is thread-safe and, like
    ``st.cache_resource``, shared by all sessions of the process; what it returns is read-only,
    like everything cached here.
    """
    return functools.lru_cache(maxsize=maxsize, typed=True)


# Results and figure specs are read-only once built, so they are cached as shared resources
# (no pickling on every hit: a cache_data hit of a landscape cost ~7 ms of unpickling). Nothing
# mutates them: the page only reads results and ``with_current_setting`` copies a figure spec.


@st.cache_resource(max_entries=1, show_spinner=False)
def example_dataset() -> CsvDataset:
    """The shipped example (data/example_two_features.csv): floor area and rooms -> price."""
    return parse_two_feature_csv(EXAMPLE_CSV.read_bytes())


@st.cache_resource(max_entries=8, show_spinner=False)
def uploaded_dataset(digest: str, _raw: bytes | None) -> CsvDataset:
    """A user's CSV, parsed and validated once per content (keyed by its SHA-256 ``digest``)."""
    if _raw is None:
        raise CsvError("The uploaded file is no longer in memory: please upload it again.")
    return parse_two_feature_csv(_raw)


def register_upload(raw: bytes) -> tuple[tuple, CsvDataset]:
    """Validate an uploaded file; return its data key and data set (raises :class:`CsvError`)."""
    digest = hashlib.sha256(raw).hexdigest()[:20]
    return ("upload", digest), uploaded_dataset(digest, raw)


@st.cache_resource(max_entries=16, show_spinner=False)
def seed_dataset(seed: int, n: int, noise: float) -> RegressionData:
    """The seed recipe's data, generated once per (seed, n, noise)."""
    return make_regression(seed, n, noise)


#: :func:`seed_dataset` for the calls on every rerun (a cache_resource hit hashes its arguments).
_seed_dataset_hit = per_rerun_cache(16)(seed_dataset)


def dataset(data: tuple):
    """The data set behind a data key: ``("seed", seed, n, noise)``, ``("example",)`` or
    ``("upload", digest)`` (call :func:`register_upload` first in the same run)."""
    if data[0] == "seed":
        return _seed_dataset_hit(int(data[1]), int(data[2]), float(data[3]))
    if data[0] == "example":
        return example_dataset()
    return uploaded_dataset(data[1], None)


@dataclass(frozen=True)
class DataFacts:
    """What the page's prose says about a data set, computed from it (never hard-coded).

    Attributes
    ----------
    names : tuple of str
        The two feature names (A and B for the seed recipe).
    n : int
        Number of samples.
    diag : tuple of float
        The raw Hessian's diagonal ``(H11, H22) = (2 mean(x1^2), 2 mean(x2^2))``: the curvature
        along each weight axis.
    conds : dict of str to Conditioning
        Every variant's :class:`bn_core.theory.Conditioning` (kappa, 2/lambda_max, ...).
    """

    names: tuple
    n: int
    diag: tuple
    conds: dict


@st.cache_resource(max_entries=16, show_spinner=False)
def data_facts(data: tuple) -> DataFacts:
    """Names, size and every variant's conditioning of the data set ``data``, once per data set."""
    d = dataset(data)
    conds = {v: problem(data, v)[1] for v in R.VARIANTS}
    H = problem(data, "raw")[0].hessian
    names = tuple(getattr(d, "feature_names", FEATURE_NAMES))
    return DataFacts(names, len(d.y), (float(H[0, 0]), float(H[1, 1])), conds)


def feature_names(data: tuple) -> tuple[str, str]:
    """Names of the two features (A and B for the seed recipe)."""
    if data[0] == "seed":
        return FEATURE_NAMES
    return data_facts(data).names


def steepness_text(facts: DataFacts) -> str:
    """One sentence on the raw valley's shape, with numbers computed from the data.

    The axis ratio ``H22/H11`` (curvature along w2 vs along w1) and ``kappa`` (steepest vs
    flattest direction, which also counts the coupling of w1 and w2) are different numbers;
    both are stated.
    """
    (h1, h2), (a, b) = facts.diag, facts.names
    kappa = facts.conds["raw"].kappa
    parts = []
    if h1 > 0 and h2 > 0:
        (hi, lo), (w_hi, w_lo) = ((h2, h1), (("w₂", b), ("w₁", a))) if h2 >= h1 else ((h1, h2), (("w₁", a), ("w₂", b)))
        parts.append(f"the raw loss curves **{fmt_num(hi / lo)} times** more steeply along {w_hi[0]} ({w_hi[1]}) "
                     f"than along {w_lo[0]} ({w_lo[1]}): the ratio of the Hessian's diagonal entries, "
                     f"mean({w_hi[1]}²)/mean({w_lo[1]}²)")
    if math.isinf(kappa):
        parts.append("its flattest direction has **zero curvature (κ = ∞)**: a constant feature or two "
                     "proportional features leave one combination of w₁ and w₂ that changes nothing, so gradient "
                     "descent never moves along it")
    else:
        parts.append(f"its steepest direction is **κ = {fmt_num(kappa)} times** steeper than its flattest (the "
                     "ratio of the Hessian's eigenvalues, which also counts how w₁ and w₂ are coupled)")
    std = facts.conds["standardized"].kappa
    return ("; ".join(parts) + f". Standardized: κ = {fmt_num(std)}.")


def collinear_note(data: tuple) -> str | None:
    """A warning when the two features are (numerically) proportional or affinely related.

    Constant features have their own warning; this catches e.g. ``b = 2a`` (issue 10, item 12):
    the standardized Hessian is then singular and every kappa infinite.
    """
    d = dataset(data)
    X = np.asarray(d.X, float)
    sd = X.std(axis=0)
    if np.any(sd <= 1e-12 * np.maximum(np.abs(X).max(axis=0), 1e-300)):
        return None  # a constant feature: the page's constant-feature warning says it
    with np.errstate(all="ignore"):
        r = float(np.corrcoef(X[:, 0], X[:, 1])[0, 1])
    if not (math.isfinite(r) and abs(r) > 1 - 1e-9):
        return None
    slope, icpt = np.polyfit(X[:, 0], X[:, 1], 1)
    a, b = feature_names(data)
    rel = f"{b} = {slope:.4g} × {a}" + (f" {'+' if icpt >= 0 else '−'} {abs(icpt):.4g}" if abs(icpt) > 1e-9 * max(
        abs(X[:, 1]).max(), 1e-300) else "")
    facts = data_facts(data)
    flat = [vf.VARIANT_LABELS[v] for v in R.VARIANTS if math.isinf(facts.conds[v].kappa)]
    finite = [f"{vf.VARIANT_LABELS[v]} κ = {fmt_num(facts.conds[v].kappa)}" for v in R.VARIANTS
              if not math.isinf(facts.conds[v].kappa)]
    return (f"**The two features carry the same information:** {rel} on every row (correlation {r:.6f}). "
            f"For {', '.join(flat)} one combination of the weights (with the intercept) leaves every prediction "
            "unchanged, so the loss has a perfectly flat direction: κ = ∞, gradient descent never moves along it, "
            "and the least-squares weights are not unique (the minimum-norm ones are shown)"
            + (f"; {', '.join(finite)} (no intercept to trade with)" if finite else "")
            + ". Drop one of the two columns to get a well-posed fit.")


def stability_limit_text(optimizer: str, mode: str, momentum: float, facts: DataFacts, variants: tuple) -> str:
    """Where the stability map's full-batch row (its top row) should turn to divergence, for this optimizer.

    On a quadratic, full-batch gradient descent is stable iff ``alpha < 2/lambda_max``; heavy-ball
    momentum ``mu`` (v <- mu v + g, theta <- theta - alpha v) iff ``alpha < 2 (1 + mu)/lambda_max``;
    Adam has no such curvature limit (its step is about alpha per coordinate).
    """
    factor = {"gd": 1.0, "momentum": 1.0 + momentum}.get(optimizer)
    if factor is None:
        return ("Adam has no 2/λ_max limit: it moves every coordinate by about α per step whatever the "
                "curvature, so where it fails is read from the map itself, not predicted from λ_max.")
    rule = ("plain gradient descent is stable only for α < 2/λ_max" if optimizer == "gd" else
            f"heavy-ball momentum μ = {momentum:g} is stable for α < 2(1 + μ)/λ_max")
    if mode == "fraction":
        edge = FRACTION_MAP_MAX
        where = (f"so full batch (top row) is unstable beyond a fraction of {factor:g} for every variant (a cell "
                 f"is marked × once its loss has grown {R.EXPLODE_FACTOR:.0e}-fold, which takes more steps the "
                 "closer α is to the limit)"
                 if factor < edge else
                 f"a fraction of {factor:g}, at or beyond this map's right edge ({edge:g}), so full batch "
                 "(top row) stays stable across the map")
        return f"In *fraction* mode each variant uses its own 2/λ_max; on a quadratic {rule}: {where}."
    limits = ", ".join(f"{vf.VARIANT_LABELS[v]} {fmt_num(factor * facts.conds[v].max_stable_lr)}" for v in variants)
    return (f"With the same learning rate for all, {rule}: full batch (top row) is unstable above {limits} "
            f"(marked × once its loss has grown {R.EXPLODE_FACTOR:.0e}-fold).")


def stable_lr_text(facts: DataFacts, variants: tuple = ("raw", "standardized")) -> str:
    """'raw below 7.41e-05, standardized below 0.88': 2/lambda_max of each variant, from the data."""
    return ", ".join(f"{vf.VARIANT_LABELS[v]} below {fmt_num(facts.conds[v].max_stable_lr)}" for v in variants)


@per_rerun_cache(32)
def problem(data: tuple, variant: str) -> tuple[R.Problem, T.Conditioning]:
    """The variant's problem on the data set ``data`` and what its Hessian predicts."""
    d = dataset(data)
    p = R.make_problem(d.X, d.y, variant)
    return p, T.conditioning(p.hessian)


def same_mode_opening_lr(facts: DataFacts, variants: tuple, optimizer: str, momentum: float,
                         lr: float, diverges=None, tries: int = 12) -> float | None:
    """The learning rate "same learning rate for all" should open on, or None to keep ``lr``.

    Start from ``lr`` if it is below every shown variant's full-batch limit (2/lambda_max,
    times 1 + mu with momentum; Adam has none), else from the largest offered rate below 0.9 of
    the smallest limit. The full-batch bound does not hold for mini-batches with heavy momentum,
    so ``diverges(alpha) -> bool`` (run the shown variants at the page's settings) steps the
    candidate down the offered rates until nothing diverges, at most ``tries`` times (issue 10,
    item 11: the mode must not open on a divergence, whatever the data and settings).
    """
    factor = {"gd": 1.0, "momentum": 1.0 + momentum}.get(optimizer)
    limits = [factor * facts.conds[v].max_stable_lr for v in variants if factor is not None]
    limits = [x for x in limits if math.isfinite(x)]
    cand = lr
    if limits and lr >= min(limits):
        below = [o for o in LR_OPTIONS if o < 0.9 * min(limits)]
        cand = below[-1] if below else LR_OPTIONS[0]
    if diverges is not None:
        i = min(range(len(LR_OPTIONS)), key=lambda j: abs(math.log(LR_OPTIONS[j] / cand)))
        for _ in range(tries):
            if i == 0 or not diverges(LR_OPTIONS[i]):
                break
            i -= 1
        cand = LR_OPTIONS[i]
    return None if cand == lr else cand


def variant_lr(cond: T.Conditioning, mode: str, lr: float, frac: float) -> float:
    """The step a variant uses: ``lr`` for all, or ``frac * 2 / lambda_max`` of this variant."""
    if mode == "same" or not math.isfinite(cond.max_stable_lr):
        return float(lr)
    return float(frac * cond.max_stable_lr)


#: Runs with more steps than this show a spinner (the default 100 full-batch steps take ~1 ms;
#: batch 1 x 200 epochs x 500 samples, 100 000 steps, takes seconds).
SPINNER_STEPS = 20_000


def run(data: tuple, seed: int, variant: str, lr: float, batch: int, epochs: int,
        optimizer: str, mom: float, beta1: float, beta2: float) -> R.RunResult:
    """One optimizer run; mini-batches are shuffled from ``seed`` (cached by :func:`variant_view`)."""
    p, _ = problem(data, variant)
    steps = epochs * R.steps_per_epoch(len(p.y), batch)
    hyper = R.Hyper(mom, beta1, beta2)
    if steps <= SPINNER_STEPS:
        return R.run(p, lr, batch, epochs, optimizer, seed=seed, hyper=hyper)
    with st.spinner(f"Running the optimizer: {steps:,} steps…"):
        return R.run(p, lr, batch, epochs, optimizer, seed=seed, hyper=hyper)


def landscape(data: tuple, variant: str, p: R.Problem, res: R.RunResult):
    """The contour figure of one run: closed-form grid (around start, path and optimum) + path."""
    h = res.history
    path = np.column_stack([h["w1"], h["w2"]])
    (x0, x1), (y0, y1) = vf.grid_box(path, path[0], res.theta_star[:2])
    w1, w2 = np.linspace(x0, x1, GRID), np.linspace(y0, y1, GRID)
    with np.errstate(all="ignore"):
        Z = R.loss_grid(p.stats, w1, w2, R.slice_value(p)) - res.loss_star
    return vf.landscape_figure(variant, w1, w2, np.maximum(Z, 0.0), path, h["step"], res.theta_star[:2],
                               diverged_at=res.diverged_at, feature_names=feature_names(data))


#: The stability map's largest step: a fraction of 2/lambda_max, or a learning rate.
FRACTION_MAP_MAX, LR_MAP_MAX = 1.5, 3.0


@dataclass(frozen=True)
class VariantView(KeepsDerived):
    """Everything the page shows for one variant: its conditioning, run and contour figure.

    Views are cached and shared by the sessions; what the page derives from one (its path
    facts, its theory row) is kept with it (:class:`ui.theme.KeepsDerived`).
    """

    cond: T.Conditioning
    result: R.RunResult
    figure: object
    _derived: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def path_facts(self, data: tuple, variant: str, tol: float) -> dict:
        """:func:`path_facts` of this view, computed once per tolerance and kept with the view.

        Views are cached and shared by the sessions, so a class moving the step size through
        the slider's values computes each view's facts once, not on every rerun. Treat the
        returned dict as read-only.
        """
        return self.derived(("path_facts", data, variant, tol),
                            lambda: path_facts(data, variant, self.result, self.figure.spec, tol))

    def theory_row(self, variant: str, lr: float, tol: float) -> dict:
        """:func:`theory_row` of this view's run (``lr``: the step it ran with), kept with the view."""
        return self.derived(("theory_row", variant, lr, tol),
                            lambda: theory_row(variant, self.cond, lr, self.result, tol))


@per_rerun_cache(160)
def variant_view(data: tuple, seed: int, variant: str, lr: float, batch: int, epochs: int,
                 optimizer: str, mom: float, beta1: float, beta2: float) -> VariantView:
    """:func:`problem`, :func:`run` and :func:`landscape` of one variant in ONE cached call."""
    p, cond = problem(data, variant)
    res = run(data, seed, variant, lr, batch, epochs, optimizer, mom, beta1, beta2)
    return VariantView(cond, res, landscape(data, variant, p, res))


_LOG = logging.getLogger(__name__)

#: Settings whose step-size slider :func:`warm_step_sizes` has computed, most recent last.
_WARMED: collections.OrderedDict = collections.OrderedDict()
#: The sessions whose full runs showed each setting (most recent setting last).
_SEEN: collections.OrderedDict = collections.OrderedDict()
#: Whether a warming thread is running (one at a time in the process).
_WARM_STATE = {"busy": False}
_WARM_LOCK = threading.Lock()
#: A setting is warmed once this many sessions have shown it in a full run: a teacher's link
#: that the class opens, not one student's exploration.
WARM_AFTER_SESSIONS = 2
#: Only settings whose runs are short are warmed: at most this many steps per run (the
#: default is 100; each option of the slider then costs ~7 ms for two variants).
WARM_MAX_STEPS = 2_000
#: ... and whose views fill at most half of :func:`variant_view`'s cache, so that a warm pass
#: never pushes out its own first options or most of what other sessions use.
WARM_MAX_VIEWS = 80
#: Two options in a row that take more CPU time than this end the warming (a large upload,
#: many variants and steps): each holds the sessions' turn while it computes.
WARM_MAX_OPTION_S = 0.05
_WARM_KEEP = 64
#: Seconds the warming thread pauses between options (after giving up its turn).
WARM_PAUSE_S = 0.005


@dataclass(frozen=True)
class StepSetting:
    """What chapter 1 shows at every step size: the page's settings except the step itself.

    Made once per full run (:func:`ui.valley_controls.step_setting`); the step-size fragment
    and :func:`warm_step_sizes` both compute a step's results with :func:`step_views`, so the
    warming fills exactly the cache entries the fragment asks for. ``lr`` is the learning rate
    that a variant with a flat loss uses in fraction mode (:func:`variant_lr`; 0 in "same"
    mode, where the step is the learning rate); ``speed`` and ``big`` (lecture mode) are how
    the charts are sent; ``map_variants`` the stability map's variants (None: no map).
    """

    data: tuple
    seed: int
    variants: tuple
    mode: str
    lr: float
    batch: int
    epochs: int
    optimizer: str
    hyper: tuple
    tol: float
    speed: str
    big: bool
    map_variants: tuple | None

    def options(self) -> tuple:
        """The step-size slider's options: fractions of 2/lambda_max, or learning rates."""
        return FRACTION_OPTIONS if self.mode == "fraction" else LR_OPTIONS


@dataclass(frozen=True)
class StepViews:
    """One step size's results, everything chapter 1's fragment shows: each variant's step,
    view, landscape (at the setting's animation speed), path facts and theory row, the
    convergence chart and the stability map with the step's star (None without a map). All
    are cached and shared; :meth:`figures` lists the charts the page draws."""

    lrs: dict
    views: dict
    landscapes: dict
    path_facts: dict
    theory_rows: dict
    convergence: object
    stability_map: object | None

    def figures(self) -> list:
        """The charts drawn at this step: the landscapes, the convergence chart, the map."""
        return [*self.landscapes.values(), self.convergence] + ([self.stability_map] if self.stability_map else [])


def step_views(s: StepSetting, x: float) -> StepViews:
    """The results of setting ``s`` at step-size option ``x`` (a fraction, or a learning rate)."""
    lrs = {v: variant_lr(problem(s.data, v)[1], s.mode, x if s.mode == "same" else s.lr, x) for v in s.variants}
    views = {v: variant_view(s.data, s.seed, v, lrs[v], s.batch, s.epochs, s.optimizer, *s.hyper)
             for v in s.variants}
    conv = convergence_figure(s.data, s.seed, s.variants, tuple(lrs.values()), s.batch, s.epochs, s.optimizer,
                              *s.hyper, s.tol)
    stab = (None if s.map_variants is None else
            stability_figure_at(s.data, s.seed, s.map_variants, s.mode, s.epochs, s.optimizer, *s.hyper, (x, s.batch)))
    return StepViews(lrs, views,
                     landscapes={v: vf.with_speed(view.figure, s.speed) for v, view in views.items()},
                     path_facts={v: view.path_facts(s.data, v, s.tol) for v, view in views.items()},
                     theory_rows={v: view.theory_row(v, lrs[v], s.tol) for v, view in views.items()},
                     convergence=conv, stability_map=stab)


def warm_step_sizes(setting: StepSetting, session: str | None = None) -> bool:
    """Compute, in one background thread, what every option of the step-size slider shows.

    Called by chapter 1's full run. A class that opens the teacher's link and then moves the
    step size all at once used to ask for most of the slider's 20 (fraction) or 40 (learning
    rate) options together, uncomputed, each ~7 ms of CPU for two variants (views,
    convergence chart, stability map with its star, their JSON) on top of a rerun's ~6 ms, all
    on the one core the server's Python runs on. Warmed ahead, while the teacher talks, the
    class's moves find them computed.

    Only settings that :data:`WARM_AFTER_SESSIONS` sessions showed are warmed (``session``:
    the calling session's id, by default the script run's), only short runs
    (:data:`WARM_MAX_STEPS`, :data:`WARM_MAX_OPTION_S`) whose views fit the cache
    (:data:`WARM_MAX_VIEWS`), one setting at a time in the process, each once (the latest
    :data:`_WARM_KEEP` are remembered), one option per turn of :func:`ui.page.in_turn`, so
    that it never runs inside a session's step-size rerun (an option whose turn does not come
    within the turn's wait is skipped). The thread takes the script run's context, so the
    caches it fills behave as in that run; it draws nothing. Returns whether a warming thread
    was started.
    """
    ctx = get_script_run_ctx()
    session = session if session is not None else (ctx.session_id if ctx is not None else "")
    n = len(problem(setting.data, setting.variants[0])[0].y) if setting.variants else 0
    steps = setting.epochs * R.steps_per_epoch(n, setting.batch) if n else 0
    if (not n or steps > WARM_MAX_STEPS
            or len(setting.options()) * len(setting.variants) > WARM_MAX_VIEWS):
        return False
    with _WARM_LOCK:
        seen = _SEEN.pop(setting, set())
        seen.add(session)
        _SEEN[setting] = seen
        while len(_SEEN) > 4 * _WARM_KEEP:
            _SEEN.popitem(last=False)
        if len(seen) < WARM_AFTER_SESSIONS or setting in _WARMED or _WARM_STATE["busy"]:
            return False
        _WARM_STATE["busy"] = True
    try:
        thread = threading.Thread(target=_warm, args=(setting,), name="bnlab-warm-step-sizes", daemon=True)
        add_script_run_ctx(thread, ctx)
        thread.start()
    except Exception:  # noqa: BLE001 - no thread: the page computes each option when asked
        _LOG.debug("no warming thread", exc_info=True)
        with _WARM_LOCK:
            _WARM_STATE["busy"] = False
        return False
    return True


def _warm(s: StepSetting) -> None:
    slow = 0  # options in a row over the CPU budget (one can be a garbage collection)
    try:
        for x in s.options():
            # One option per turn (ui.page.in_turn): a session's step-size rerun waits for at most
            # one option, and the pause lets a waiting session take the next turn.
            with page.in_turn() as got, np.errstate(all="ignore"):  # no numpy warnings in the log
                if not got:  # the sessions were busy for the turn's whole wait: skip this option
                    continue
                start = time.thread_time()  # CPU time: waiting for the interpreter does not count
                _warm_option(s, x)
            slow = slow + 1 if time.thread_time() - start > WARM_MAX_OPTION_S else 0
            if slow == 2:
                break
            time.sleep(WARM_PAUSE_S)
    except Exception:  # noqa: BLE001 - the page computes (and reports) what is missing itself
        _LOG.debug("warming the step-size slider stopped", exc_info=True)
    finally:
        with _WARM_LOCK:
            _WARMED[s] = None
            while len(_WARMED) > _WARM_KEEP:
                _WARMED.popitem(last=False)
            _WARM_STATE["busy"] = False


def _warm_option(s: StepSetting, x: float) -> None:
    """What the page's fragment derives at step-size option ``x``: :func:`step_views`, and
    every chart's JSON as :func:`ui.page.chart` sends it."""
    for fig in step_views(s, x).figures():
        page.chart_json(fig, s.big)


def map_x_values(mode: str) -> tuple[np.ndarray, str]:
    """The stability map's 40 step sizes: fractions of 2/lambda_max, or learning rates 1e-6..3."""
    if mode == "fraction":
        return np.geomspace(0.01, FRACTION_MAP_MAX, 40), "fraction"
    return np.geomspace(1e-6, LR_MAP_MAX, 40), "lr"


@st.cache_resource(max_entries=128, show_spinner=False)
def stability_row(data: tuple, seed: int, variants: tuple, mode: str, epochs: int, optimizer: str,
                  mom: float, beta1: float, beta2: float, batch: int) -> R.StabilityMap:
    """One batch size of the stability map: all variants x 40 step sizes in one vectorized loop."""
    d = dataset(data)
    xs, kind = map_x_values(mode)
    return R.stability_map(d.X, d.y, variants, xs, kind, np.array([batch]), epochs, optimizer, seed,
                           R.Hyper(mom, beta1, beta2))


def map_batch_sizes(data: tuple) -> np.ndarray:
    return R.default_batch_sizes(data_facts(data).n)


def sweep_stability(data: tuple, seed: int, variants: tuple, mode: str, epochs: int, optimizer: str,
                    mom: float, beta1: float, beta2: float) -> None:
    """Compute the stability map's rows (40 step sizes x up to 8 batch sizes) with a progress bar.

    Each row is cached; the progress bar lives outside the cached functions, so a cache hit
    replays nothing (an element created inside a cached function is replayed on every hit).
    A map this process has swept already returns at once (its rows are cache hits for
    :func:`stability_figure`; a row evicted since is recomputed there, without a bar): a class
    opening the same link does not each get eight progress messages for a map that takes no
    time.
    """
    args = (data, seed, variants, mode, epochs, optimizer, mom, beta1, beta2)
    if args in _SWEPT:
        return
    sizes = map_batch_sizes(data)
    bar = st.progress(0.0, text="Sweeping 40 step sizes × batch sizes for every variant…")
    for i, b in enumerate(sizes):
        stability_row(*args, int(b))
        bar.progress((i + 1) / len(sizes), text=f"Swept batch size {int(b)} ({i + 1}/{len(sizes)})")
    bar.empty()
    with _SWEPT_LOCK:
        _SWEPT[args] = True
        while len(_SWEPT) > _SWEPT_MAX:
            _SWEPT.pop(next(iter(_SWEPT)))


#: Maps swept by this process (insertion-ordered, oldest dropped first): at most as many as
#: ``stability_row``'s cache holds in full (128 rows, up to 8 per map).
_SWEPT: dict = {}
_SWEPT_MAX = 16
_SWEPT_LOCK = threading.Lock()


@per_rerun_cache(16)
def stability_figure(data: tuple, seed: int, variants: tuple, mode: str, epochs: int, optimizer: str,
                     mom: float, beta1: float, beta2: float):
    """The stability map's figure (without the current-setting star; see ``with_current_setting``).

    Call :func:`sweep_stability` first in the same run: its rows are then cache hits here.
    """
    rows = [stability_row(data, seed, variants, mode, epochs, optimizer, mom, beta1, beta2, int(b))
            for b in map_batch_sizes(data)]
    m = R.concat_stability_maps(rows)
    return m, vf.stability_figure(m.variants, m.x_values, m.x_kind, m.batch_sizes, m.final_loss, m.diverged,
                                  m.undefined)


@per_rerun_cache(96)
def convergence_figure(data: tuple, seed: int, variants: tuple, lrs: tuple, batch: int, epochs: int,
                       optimizer: str, mom: float, beta1: float, beta2: float, tol: float):
    """The convergence chart of the runs ``variants`` x ``lrs`` (cache hits of :func:`variant_view`),
    built once per setting instead of on every rerun."""
    curves = {}
    for v, lr in zip(variants, lrs, strict=True):
        r = variant_view(data, seed, v, lr, batch, epochs, optimizer, mom, beta1, beta2).result
        curves[v] = (r.history["step"], relative_suboptimality(r), r.diverged_at)
    return vf.convergence_figure(curves, tol)


@per_rerun_cache(96)
def stability_figure_at(data: tuple, seed: int, variants: tuple, mode: str, epochs: int, optimizer: str,
                        mom: float, beta1: float, beta2: float, current: tuple):
    """The stability map's figure with a star at ``current = (step size, batch size)``.

    The star is drawn only when the batch size is one of the map's rows (the page says so
    otherwise).
    """
    m, fig = stability_figure(data, seed, variants, mode, epochs, optimizer, mom, beta1, beta2)
    return vf.with_current_setting(fig, len(m.variants), current)


def relative_suboptimality(res: R.RunResult) -> np.ndarray:
    """``(L_k - L*) / (L_0 - L*)`` of a run (zeros when the start is optimal)."""
    sub = res.history["suboptimality"]
    if not (math.isfinite(sub[0]) and sub[0] > 0):  # optimal start, or a start whose loss overflowed
        return np.zeros_like(sub) if sub[0] == 0 else np.full_like(sub, np.nan)
    return sub / sub[0]


def measured_steps_text(res: R.RunResult, tol: float) -> str:
    """'k' steps to the tolerance, 'diverged at step k', or 'not within K steps'."""
    if res.diverged:
        return f"diverged at step {res.diverged_at}"
    k = R.steps_to_tolerance(res.history["loss"], res.loss_star, tol)
    return f"not within {res.n_steps} steps" if k is None else str(k)


def markdown_table(rows: list[dict], number_format: str = "{:.4f}") -> str:
    """A GitHub-style markdown table of ``rows`` (dicts with the same keys); floats formatted.

    Used instead of ``st.dataframe`` for the chapter's small tables: it needs no pandas/Arrow
    round trip on every rerun (~10 ms saved) and reads well at a glance.
    """
    if not rows:
        return ""
    cols = list(rows[0])

    def cell(v) -> str:
        text = number_format.format(v) if isinstance(v, float) else str(v)
        return text.replace("|", "\\|")

    head = "| " + " | ".join(cols) + " |\n|" + "|".join(" --- " for _ in cols) + "|\n"
    return head + "\n".join("| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows)


def optimizer_source() -> tuple[str, str, str]:
    """Source of the core loop, the update rules and the per-batch quadratics (read once, ui.code)."""
    rules = ("\n\n".join(code.source(f) for f in R.OPTIMIZERS.values())
             + "\n\nOPTIMIZERS = {'gd': _gd_step, 'momentum': _momentum_step, 'adam': _adam_step}")
    return code.source(R.descend), rules, code.source(R.batch_quadratics)


def theory_table(rows: dict) -> list[dict]:
    """One row per variant: Hessian eigenvalues, kappa, step sizes, predicted vs measured steps.

    ``rows`` maps variant -> ``(Conditioning, lr used, RunResult or None, tol)``.
    """
    return [theory_row(v, cond, lr, res, tol) for v, (cond, lr, res, tol) in rows.items()]


def theory_row(v: str, cond: T.Conditioning, lr: float, res: R.RunResult | None, tol: float) -> dict:
    """The theory table's row of variant ``v`` (see :func:`theory_table`)."""
    pred = T.predicted_steps(cond.eigenvalues, lr, tol)
    pred_opt = T.predicted_steps(cond.eigenvalues, cond.optimal_lr, tol)
    measured_text = measured_steps_text(res, tol) if res is not None else "not run"
    opt_lr, rate = fmt_num(cond.optimal_lr), fmt_num(cond.optimal_rate)
    if not math.isfinite(cond.max_stable_lr):  # a zero Hessian: nothing moves
        opt_lr, rate = "— (flat loss)", "— (flat loss)"
    elif math.isinf(cond.kappa):  # computed with the smallest NON-zero eigenvalue
        opt_lr += " (over identifiable directions)"
        rate += " (over identifiable directions)"
    return {
        "variant": vf.VARIANT_LABELS[v],
        "Hessian eigenvalues": ", ".join(fmt_num(float(e)) for e in cond.eigenvalues),
        "κ = λmax/λmin": fmt_num(cond.kappa),
        "2/λmax (largest stable step)": fmt_num(cond.max_stable_lr),
        "2/(λmin+λmax) (optimal step)": opt_lr,
        "rate (κ−1)/(κ+1)": rate,
        "step used α": fmt_num(lr),
        "predicted steps at α": "never (α ≥ 2/λmax or 0)" if math.isinf(pred) else str(int(pred)),
        "predicted steps at optimal step": "never" if math.isinf(pred_opt) else str(int(pred_opt)),
        "measured steps": measured_text,
    }


def coefficient_table(results: dict, true_weights: np.ndarray | None,
                      names: tuple = ("A", "B")) -> list[dict]:
    """Learned coefficients mapped back to original units, beside the truth (if known) and
    each variant's least-squares solution. Columns: model, w_<name 1>, w_<name 2>, intercept."""
    c1, c2 = f"w_{names[0]}", f"w_{names[1]}"
    rows = []
    if true_weights is not None:
        rows.append({"model": "true (data recipe)", c1: float(true_weights[0]), c2: float(true_weights[1]),
                     "intercept": 0.0})
    for v, res in results.items():
        (w, b), (ws, bs) = res.coef_original, res.star_original
        what = "evaluation mode (running statistics)" if v == "batchnorm" else "learned"
        rows.append({"model": f"{vf.VARIANT_LABELS[v]}: {what}", c1: float(w[0]), c2: float(w[1]),
                     "intercept": float(b)})
        rows.append({"model": f"{vf.VARIANT_LABELS[v]}: least squares", c1: float(ws[0]), c2: float(ws[1]),
                     "intercept": float(bs)})
    return rows


def history_csv(results: dict) -> str:
    """All paths and losses in one long CSV: variant, step, w1, w2, b, loss, relative suboptimality."""
    frames = []
    for v, res in results.items():
        h = res.history
        frames.append(pd.DataFrame({
            "variant": v, "step": h["step"], "w1": h["w1"], "w2": h["w2"],
            "b": h.get("b", np.zeros_like(h["w1"])), "loss": h["loss"],
            "relative_suboptimality": relative_suboptimality(res),
        }))
    buf = io.StringIO()
    pd.concat(frames, ignore_index=True).to_csv(buf, index=False)
    return buf.getvalue()


def constant_features(names, constant_flags) -> list:
    """Names of the constant (zero-spread) features, in ``names`` order.

    A feature counts if a variant's problem flags it (``constant_flags``: one bool array of
    shape (2,) per variant); the problems use the scalers' rule, like the CSV reader's note.
    """
    flat = np.zeros(len(names), dtype=bool)
    for c in constant_flags:
        flat |= np.asarray(c, dtype=bool)
    return [f for f, c in zip(names, flat, strict=True) if c]


# ---- Sentences computed from the charts' data ------------------------------------------------
# Every sentence that describes a chart is written by one of these functions from the same
# record the chart is drawn from (issue 10: "every caption true"); tests run them over the grid
# of settings the page allows.

def raw_shape(facts: DataFacts) -> str:
    """What the raw loss looks like, from its kappa (a valley, a flat-floored valley, or a bowl)."""
    k = facts.conds["raw"].kappa
    return ("a valley with a perfectly flat floor (κ = ∞)" if math.isinf(k) else
            f"a long, narrow **valley** (κ = {fmt_num(k)})" if k >= 10 else f"a bowl (κ = {fmt_num(k)})")


def standardized_shape(facts: DataFacts) -> str:
    """What standardizing makes of it, from the standardized kappa (scale and centering only:
    what remains is the features' correlation r, kappa = (1 + |r|)/(1 - |r|))."""
    k = facts.conds["standardized"].kappa
    if math.isinf(k):
        return ("still has a flat direction (κ = ∞): standardizing rescales and centers each feature but cannot "
                "separate two features that carry the same information")
    if k >= 10:
        return (f"is still a valley (κ = {fmt_num(k)}): standardizing removes the features' scales and offsets, "
                "not their correlation")
    return f"is a round **bowl** (κ = {fmt_num(k)}) where the same number of steps reaches the bottom"


def intro_text(data: tuple, source: str, facts: DataFacts) -> str:
    """The chapter's introduction, describing the data actually shown (issue 10, item 7)."""
    d = dataset(data)
    a, b = facts.names
    if source == "seed" or data[0] == "seed":
        what = ("the classic data set $y = 2A + 3B + \\text{noise}$ with $A \\sim U[1, 10]$ and "
                "$B \\sim U[1, 200]$")
    else:
        label = "the example CSV" if source == "example" else "your CSV"
        what = f"{label} ({facts.n} rows, target **{d.target_name}**)"
    X = np.asarray(d.X, float)
    lo, hi = X.min(axis=0), X.max(axis=0)
    spans = (f"{a} spans {lo[0]:.4g} … {hi[0]:.4g} and {b} spans {lo[1]:.4g} … {hi[1]:.4g}")
    h1, h2 = facts.diag
    ratio = max(h1, h2) / max(min(h1, h2), 1e-300)
    why = ("the curvature along a weight grows with the *square* of its feature's size, so any step small enough "
           "not to blow up along the steep direction crawls along the flat one" if ratio >= 10 else
           "the features are not centered, so w₁ and w₂ are coupled and one combination of them is much steeper "
           "than the other" if facts.conds["raw"].kappa >= 10 else
           "neither the features' sizes nor their coupling stretch it much")
    return (f"Fit $\\hat y = w_1 {_tex_name(a)} + w_2 {_tex_name(b)}\\,(+\\,\\text{{intercept}})$ to {what}, by "
            f"gradient descent. On the **raw** inputs ({spans}) the loss is {raw_shape(facts)}: {why}. "
            f"**Standardized**, it {standardized_shape(facts)}. Batch normalization does the standardizing inside "
            "a network, one mini-batch at a time.")


def _tex_name(name: str) -> str:
    """A feature name for inline LaTeX (``\\text{area\\_m2}``; single letters stay italic)."""
    if len(name) == 1 and name.isalpha():
        return name
    safe = "".join("\\_" if c == "_" else c for c in name if c.isalnum() or c in "_ -")
    return f"\\text{{{safe}}}"


def slice_note(variant: str, data: tuple) -> str:
    """What the landscape of ``variant`` draws (exact or a slice), true for the data shown."""
    if variant == "raw":
        if data[0] == "seed":
            return ("The seed recipe has no intercept and the raw variant fits none, so the (w₁, w₂) contour "
                    "**is** the loss being descended: exact.")
        raw_star = problem(data, "raw")[0]
        p_raw, p_std = raw_star, problem(data, "standardized")[0]
        l_raw = float(R.mse_loss(p_raw.design, p_raw.y, R.least_squares(p_raw.design, p_raw.y)))
        l_std = float(R.mse_loss(p_std.design, p_std.y, R.least_squares(p_std.design, p_std.y)))
        return ("The raw variant fits no intercept, so the (w₁, w₂) contour **is** the loss it descends: exact. "
                f"On this data its best loss is {fmt_num(l_raw)} against {fmt_num(l_std)} with an intercept"
                + (" (the data needs one)." if l_raw > 1.01 * l_std + 1e-12 else "."))
    return {
        "minmax": "With an intercept b trained too. The contour is the slice b = b_LS; min-max scales but does not "
                  "center, so b couples with the weights and the drawn path is the **projection** of a 3-D path "
                  "onto that slice: approximate.",
        "standardized": "Features are centered, so ∇_w L does not depend on b: the w-path is **exactly** gradient "
                        "descent on the slice b = ȳ drawn here.",
        "batchnorm": "Drawn: the full-batch loss (the standardized landscape up to ε), which is what the optimizer "
                     "descends when batch = n. With smaller batches every step descends **its own batch's "
                     "landscape**, so the path wanders around this one.",
    }[variant]


def _w_hessian_direction(p: R.Problem) -> np.ndarray:
    """Unit eigenvector of the steepest direction of the (w1, w2) block of the Hessian."""
    H = p.hessian[:2, :2]
    return np.linalg.eigh((H + H.T) / 2)[1][:, -1]


def path_facts(data: tuple, variant: str, res: R.RunResult, spec: dict, tol: float) -> dict:
    """Numbers that the landscape of one run shows: progress, zigzag, divergence, leaving the chart.

    Returns a dict: ``kappa``, ``steps`` (run), ``diverged_at``, ``to_tol`` (steps to the
    tolerance or None), ``left`` (the remaining fraction of the start's distance to the optimum
    in the drawn (w1, w2) plane), ``reversals`` (sign changes of the offset from the optimum
    along the steepest direction, over the drawn path: a zigzag across the valley) and
    ``leaves_at`` (first step drawn outside the axes, or None).
    """
    p, cond = problem(data, variant)
    h = res.history
    path = np.column_stack([h["w1"], h["w2"]])
    star = res.theta_star[:2]
    d0 = float(np.linalg.norm(path[0] - star))
    left = float(np.linalg.norm(path[-1] - star)) / d0 if d0 > 0 else 0.0
    along = (path - star) @ _w_hessian_direction(p)
    scale = max(float(np.max(np.abs(along))), 1e-300)
    sig = along[np.abs(along) > 1e-6 * scale]  # below that the path sits on the optimum (rounding noise)
    reversals = int(np.sum(np.sign(sig[1:]) != np.sign(sig[:-1]))) if len(sig) > 1 else 0
    xr, yr = spec["layout"]["xaxis"]["range"], spec["layout"]["yaxis"]["range"]
    inside = (path[:, 0] >= xr[0]) & (path[:, 0] <= xr[1]) & (path[:, 1] >= yr[0]) & (path[:, 1] <= yr[1])
    leaves_at = None if inside.all() else int(h["step"][int(np.argmin(inside))])
    return {"kappa": cond.kappa, "steps": res.n_steps, "diverged_at": res.diverged_at,
            "to_tol": None if res.diverged else R.steps_to_tolerance(h["loss"], res.loss_star, tol),
            "left": left, "reversals": reversals, "leaves_at": leaves_at}


def describe_path(label: str, f: dict, tol: float) -> str:
    """One clause on one landscape, from :func:`path_facts`."""
    head = f"**{label}** (κ = {fmt_num(f['kappa'])})"
    if f["diverged_at"] is not None:
        return f"{head} diverges at step {f['diverged_at']}" + (
            f" and leaves the chart at step {f['leaves_at']}" if f["leaves_at"] is not None else "")
    bits = []
    if f["reversals"] >= 3:
        across = "across the valley" if f["kappa"] >= 10 else "along its steepest direction"
        bits.append(f"zigzags {across} ({f['reversals']} reversals)")
    if f["to_tol"] is not None:
        bits.append(f"first gets within tolerance (suboptimality below {tol:g}) at step {f['to_tol']}")
    elif f["left"] > 1:
        bits.append(f"ends {f['left']:.3g} times as far from the star as it started, after {f['steps']} steps")
    elif f["left"] >= 0.001:
        bits.append(f"after {f['steps']} steps is still {100 * f['left']:.3g}% of the start's distance from the star")
    else:
        bits.append(f"ends next to the star after {f['steps']} steps but not within tolerance {tol:g}")
    if f["leaves_at"] is not None:
        bits.append(f"leaves the chart at step {f['leaves_at']}")
    return f"{head} " + ", ".join(bits[:-1]) + (" and " if len(bits) > 1 else "") + bits[-1]


def describe_landscapes(facts_by_label: dict, tol: float) -> str:
    """The landscapes' "what to see" line: one clause per variant, from :func:`path_facts`."""
    return "; ".join(describe_path(label, f, tol) for label, f in facts_by_label.items()) + "."


def describe_convergence(results: dict, tol: float) -> str:
    """The convergence chart's "what to see" line: steps to the tolerance, per variant."""
    parts = []
    for v, r in results.items():
        parts.append(f"{vf.VARIANT_LABELS[v]}: {measured_steps_text(r, tol)}")
    return (f"where each curve crosses the dotted tolerance {tol:g} (steps to tolerance: " + "; ".join(parts) + ").")


def map_edges(m: R.StabilityMap) -> dict:
    """Per variant: the smallest step size at which the full-batch row (the largest batch) diverged."""
    out = {}
    top = int(np.argmax(m.batch_sizes))
    for i, v in enumerate(m.variants):
        div = np.nonzero(m.diverged[i, top])[0]
        out[v] = float(m.x_values[div[0]]) if len(div) else None
    return out


def describe_stability(m: R.StabilityMap, spec: dict) -> str:
    """The stability map's "what to see" line: where its full-batch row diverges, and its markers."""
    unit = "a fraction of " if m.x_kind == "fraction" else "α = "
    edges = map_edges(m)
    parts = [f"{vf.VARIANT_LABELS[v]} from {unit}{fmt_num(e)} on" if e is not None else
             f"{vf.VARIANT_LABELS[v]} nowhere" for v, e in edges.items()]
    marks = vf.describe_markers(spec)
    return (f"in the full-batch row (batch {int(np.max(m.batch_sizes))}) the map marks divergence for "
            + "; ".join(parts) + "."
            + (f" Markers: {marks}." if marks else ""))


def bn_modes_facts(data: tuple, res: R.RunResult) -> dict:
    """Why batch norm's evaluation loss differs from its training loss, decomposed.

    Evaluation mode standardizes with the running mean and variance instead of the data's own.
    The gap has two possible sources: the running mean (an average of batch means that started
    at 0) and the running variance (an average of *unbiased* batch variances, whose expectation
    for batches drawn without replacement from n samples is ``n/(n-1)`` times
    the biased variance training mode uses, started at 1). Recomputing the evaluation loss
    with each one replaced by the data's own statistic tells how much each contributes.
    """
    p, _ = problem(data, "batchnorm")
    theta = res.final_theta
    w, b = theta[:2], float(theta[2])
    mean, var = p.shift, p.scale ** 2 - p.eps  # the full data's mean and (biased) variance

    def eval_loss(mu, v):
        wo, bo = R.to_original_units(w, b, mu, np.sqrt(v + p.eps))
        with np.errstate(all="ignore"):
            return float(np.mean((p.X @ wo + bo - p.y) ** 2))

    rm, rv = res.running_mean, res.running_var
    std = np.sqrt(np.maximum(var, 1e-300))
    sizes = np.diff(R.batch_plan(len(p.y), res.batch_size, res.epochs, 0)[1])  # sizes do not depend on the seed
    k = int(np.sum(sizes > 1))  # batches that updated the running statistics
    return {"train": float(res.history["loss"][-1]), "eval": float(res.eval_loss),
            "mean_gap": float(np.max(np.abs(rm - mean) / std)),
            "var_ratio": [float(x) for x in rv / np.maximum(var, 1e-300)],
            "unbiased": len(p.y) / (len(p.y) - 1), "start_weight": 0.9 ** k,
            "eval_true_mean": eval_loss(mean, rv), "eval_true_var": eval_loss(rm, var),
            "batch": res.batch_size, "n": len(p.y), "diverged_at": res.diverged_at}


def describe_bn_modes(f: dict) -> str:
    """The caption under the coefficient table for batch norm, from :func:`bn_modes_facts`."""
    with_own = ("training mode (the full batch's own statistics)" if f["batch"] >= f["n"] else
                "normalized with the whole data set's own statistics (as the landscape is drawn)")
    if f.get("diverged_at") is not None:
        return (f"Batch norm diverged at step {f['diverged_at']}: its weights blew up, so its training- and "
                "evaluation-mode losses (both huge) say nothing about the running statistics; lower the step size "
                "to compare the two modes.")
    head = (f"Batch norm, {with_own}: loss {fmt_num(f['train'])}. Evaluation mode (running mean and variance, "
            f"momentum 0.1): loss {fmt_num(f['eval'])}. ")
    if abs(f["eval"] - f["train"]) <= 0.01 * max(f["train"], 1e-12):
        return head + "The two modes agree to within 1%."
    ratio = ", ".join(f"{r:.4g}" for r in f["var_ratio"])
    mean_part = (f"The running mean matches the data's mean to {f['mean_gap']:.1g} standard deviations"
                 if f["mean_gap"] < 0.01 else
                 f"The running mean is off the data's mean by up to {f['mean_gap']:.2g} standard deviations")
    if f["start_weight"] > 1e-3:
        mean_part += f" (its starting value still weighs {f['start_weight']:.2g}: it has not caught up yet)"
    var_part = (f"; the running variance is {ratio} × the data's variance"
                + (f", close to n/(n − 1) = {f['unbiased']:.4g}, the expected unbiased variance of batches drawn "
                   "without replacement from the n samples"
                   if f["batch"] > 1 and all(abs(r - f["unbiased"]) < 0.25 * (f["unbiased"] - 1) + 1e-3
                                             for r in f["var_ratio"]) else ""))
    gap_mean = abs(f["eval_true_var"] - f["train"])  # what is left when only the mean is the running one
    gap_var = abs(f["eval_true_mean"] - f["train"])  # ... when only the variance is the running one
    cause = ("the running **variance**" if gap_var > gap_mean else "the running **mean**")
    return (head + mean_part + var_part + ". With the data's own mean the evaluation loss would be "
            f"{fmt_num(f['eval_true_mean'])}, with its own variance {fmt_num(f['eval_true_var'])}: most of the gap "
            f"comes from {cause}.")


def lead_text(facts: DataFacts) -> str:
    """The chapter's one sentence under its title, from the raw and standardized kappas."""
    return (f"On raw inputs the loss is {raw_shape(facts).replace('**', '')}; standardized it "
            f"{standardized_shape(facts).split(':')[0].split(' where')[0].replace('**', '')}. Move the step size in the sidebar and "
            "watch the same gradient descent on both.")


def adam_note(data: tuple, mode: str = "fraction") -> str:
    """Why Adam's learning rate is compared in weight units (issue 10, item 10), from the optima."""
    raw = problem(data, "raw")[0]
    std = problem(data, "standardized")[0]
    t_raw = R.least_squares(raw.design, raw.y)
    t_std = R.least_squares(std.design, std.y)
    fmt = lambda t: "(" + ", ".join(f"{x:.3g}" for x in t) + ")"  # noqa: E731
    first = ("2/λ_max is the stability limit of plain gradient descent; Adam has none: it moves every weight by "
             "about α per step whatever the curvature, so α is a step **in weight units**. Compare variants with "
             "*same learning rate for all*, and mind the distance" if mode == "fraction" else
             "Adam moves every weight by about α per step whatever the curvature: α is a step **in weight units**, "
             "so a fair comparison minds the distance")
    return (first + ": from the start at 0, the standardized optimum "
            f"(w₁, w₂, b) = {fmt(t_std)} is {np.linalg.norm(t_std) / max(np.linalg.norm(t_raw), 1e-300):.3g} times "
            f"farther away than the raw one {fmt(t_raw)}, so at the same α it needs more steps. The guided experiment "
            "*Adam at one learning rate* gives both enough steps.")


def _experiment_rows():
    from ui.page import Experiment

    return [
        Experiment("The valley at 0.9 of 2/λ_max",
                   "The raw path zigzags across the narrow valley while it creeps along it and is still far from the "
                   "star after 100 steps; the standardized path, with the same fraction of its own limit, gets there "
                   "in under 30 steps.",
                   {"c1_frac": 0.9}),
        Experiment("Past the edge: 1.01 of 2/λ_max",
                   "Just above 2/λ_max every bounce is larger than the one before (|1 − αλ_max| = 1.02), so both "
                   "paths end farther from the star than they started and the raw one leaves the chart.",
                   {"c1_frac": 1.01}),
        Experiment("Adam at one learning rate",
                   "Adam moves each weight by about α = 3 per step whatever the curvature, so the raw valley no "
                   "longer slows it, and with 200 steps the standardized run, whose weights lie about 100 times "
                   "farther from the start, ends next to the star too.",
                   {"c1_opt": "adam", "c1_mode": "same", "c1_lr": 3.0, "c1_epochs": 200}),
        Experiment("Mini-batches of 10",
                   "With 10 samples per step the standardized path still gets near the star within a few steps and "
                   "then jitters around it, because every step follows its own batch's gradient, while the raw path "
                   "stays far away.",
                   {"c1_batch": 10}),
        Experiment("Batch norm: training vs evaluation",
                   "Batch norm follows the standardized path (up to its ε), yet its evaluation-mode loss is far above its "
                   "training loss: its running variance is n/(n − 1) times the data's (PyTorch's unbiased running "
                   "estimate), as the caption under the coefficient table computes.",
                   {"c1_variants": ("standardized", "batchnorm")}),
    ]


#: Chapter 1's guided experiments ("Try this" buttons and the home page's lesson links).
EXPERIMENTS = _experiment_rows()

#: A page-level script (``st.html(..., unsafe_allow_javascript=True)``) for the landscapes'
#: play/pause buttons. "pause" (or "play" while playing) interrupts the running Plotly
#: animation, and Plotly.js then rejects that animation's promise with no reason; its own
#: buttons do not catch the rejection, so the browser reported an uncaught page error on every
#: pause (issue 9). This handler marks rejections *without a reason* as handled on a page that
#: shows a Plotly chart (an interrupted animation is the only source of those here); any
#: rejection with a reason, an Error included, is left alone. The flag keeps a rerun from adding
#: a second listener.
ANIMATION_GUARD = """<script>
(function () {
  const w = window.parent && window.parent !== window ? window.parent : window;
  if (w.__c1AnimationGuard) return;
  w.__c1AnimationGuard = true;
  w.addEventListener("unhandledrejection", function (e) {
    if (e.reason === undefined && w.document.querySelector(".js-plotly-plot")) e.preventDefault();
  });
})();
</script>"""
