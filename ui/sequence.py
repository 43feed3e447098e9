"""Chapter 5 (normalization in sequence models): URL params, guided experiments, cached
training, and the "what to see" captions, each computed from the record its chart draws.

A slider's journey here: a widget (``key=`` a :data:`PARAMS` key) -> :func:`settings_from`
(one frozen :class:`Settings`) -> :func:`comparison` (six cached runs of
:func:`bn_core.recurrent.train`, a progress bar each) -> a figure of :mod:`ui.sequence_figures`
and the ``describe_*`` sentence next to it, both from the same record.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
import streamlit as st

from bn_core import recurrent as rec
from bn_core.recurrent import EVAL_POLICIES, RNNConfig, RNNResult
from ui import page, state
from ui import sequence_figures as sf
from ui.progress import progress_bar
from ui.sequence_figures import NORM_LABEL, NORM_ORDER, POLICY_LABEL, Comparison
from ui.theme import FigureSpec

LR_OPTIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
CLIP_OPTIONS = (0.0, 0.25, 0.5, 1.0, 2.0, 5.0)
SWEEP_BATCHES = (2, 4, 8, 16, 32, 64)
MAX_BATCH = 256
MAX_LENGTH = 32
MAX_STEPS = 2000
RECORDS_PER_RUN = 20
#: A comparison estimated to take longer than this does not start by itself [s].
COST_THRESHOLD_S = 25.0

PARAMS: list[state.Param] = [
    state.IntParam("c5_batch", 32, label="batch size", lo=1, hi=MAX_BATCH),
    state.IntParam("c5_len", 8, label="training length T", lo=1, hi=MAX_LENGTH),
    state.ChoiceParam("c5_policy", "last", label="BN beyond T", choices=tuple(EVAL_POLICIES)),
    state.IntParam("c5_steps", 400, label="training steps", lo=10, hi=MAX_STEPS),
    state.FloatParam("c5_lr", 0.05, label="learning rate", lo=LR_OPTIONS[0], hi=LR_OPTIONS[-1],
                     options=LR_OPTIONS),
    state.FloatParam("c5_clip", 1.0, label="gradient clipping", lo=0.0, hi=CLIP_OPTIONS[-1],
                     options=CLIP_OPTIONS),
    state.IntParam("c5_hidden", 64, label="hidden units", lo=4, hi=128),
    state.IntParam("c5_seed", 0, label="seed", lo=0, hi=10_000),
    state.BoolParam("c5_var", False, label="variable-length batches"),
    state.IntParam("c5_minlen", 1, label="shortest training length", lo=1, hi=MAX_LENGTH),
    state.BoolParam("c5_sweep", False, label="batch-size sweep"),
]
DEFAULTS = {p.key: p.default for p in PARAMS}

EXPERIMENTS = [
    page.Experiment(
        "Batch of 2 sequences",
        "With only 2 sequences per batch each step's batch statistics are noisy, and BN per "
        "time step ends below LayerNorm on the digits.",
        {"c5_batch": 2}),
    page.Experiment(
        "A batch of one",
        "One sequence has no batch variance, so BN per time step cannot train at all, while "
        "the plain and the LayerNorm network still learn the digits, slowly: 400 steps of one "
        "sequence each leave them well above chance (10 %) but far below the 90 % and more "
        "they reach with batches of 32.",
        {"c5_batch": 1}),
    page.Experiment(
        "Variable lengths, batch 8",
        "With lengths from 1 to T in batches of 8, BN's last time step averages over fewer than "
        "2 sequences on average, and beyond T its accuracy falls while LayerNorm's rises.",
        {"c5_batch": 8, "c5_var": True}),
    page.Experiment(
        "Fresh statistics beyond T",
        "BN now normalizes steps 9 to 24 with mean 0 and variance 1, which no batch produced "
        "(its running means drop to 0 beyond T), yet on this task its accuracy at 3T stays "
        "within 5 points of LayerNorm's.",
        {"c5_policy": "fresh"}),
]


@dataclass(frozen=True)
class Settings:
    """What the page trains, from the controls (hashable: it keys the caches)."""

    batch: int = 32
    length: int = 8
    policy: str = "last"
    steps: int = 400
    lr: float = 0.05
    clip: float = 1.0
    hidden: int = 64
    seed: int = 0
    variable: bool = False
    min_length: int = 1
    sweep: bool = False

    def config(self, task: str, norm: str, **extra) -> RNNConfig:
        """The :class:`RNNConfig` of one run of the page."""
        return RNNConfig(task=task, norm=norm, hidden=self.hidden, batch_size=self.batch,
                         steps=self.steps, lr=self.lr, clip=self.clip,
                         train_length=self.length, max_test_length=3 * self.length,
                         eval_policy=self.policy, seed=self.seed,
                         eval_every=max(1, self.steps // RECORDS_PER_RUN), **extra)


def settings_from(values: Mapping[str, object]) -> Settings:
    """:class:`Settings` from the session's values (``c5_*`` keys), within the trainer's limits.

    The shortest training length is capped at ``T`` for the run (the control keeps what the
    user asked for; :func:`min_length_note` says so).
    """
    v = {**DEFAULTS, **{k: values[k] for k in DEFAULTS if k in values}}
    T = int(v["c5_len"])
    return Settings(batch=int(v["c5_batch"]), length=T, policy=str(v["c5_policy"]),
                    steps=int(v["c5_steps"]), lr=float(v["c5_lr"]), clip=float(v["c5_clip"]),
                    hidden=int(v["c5_hidden"]), seed=int(v["c5_seed"]),
                    variable=bool(v["c5_var"]), min_length=min(int(v["c5_minlen"]), T),
                    sweep=bool(v["c5_sweep"]))


def min_length_note(values: Mapping[str, object], s: Settings) -> str | None:
    """A sentence when the asked-for shortest length was capped at ``T``."""
    asked = int(values.get("c5_minlen", 1))
    if s.variable and asked > s.length:
        return (f"The shortest training length ({asked}) is longer than T = {s.length}; the run "
                f"uses {s.min_length}, i.e. every sequence has length T.")
    return None


# --------------------------------------------------------------------------- cost estimate
# Calibration: bn_core.recurrent.train, median time per training step, measured 2026-12-01
# 13:12 UTC on this 2-core machine at load average ~6 (benchmarks/bench_recurrent.py):
#   batch 32, hidden 64, T 8:     0.28 / 0.53 / 0.57 ms per step (none / bn / ln)
#   batch 128, hidden 128, T 16: 12.2 / 12.7 / 16.9 ms
#   batch 256, hidden 128, T 32: 40.7 / 65.2 / 66.1 ms
# i.e. per step and time step about 35 / 66 / 72 us of Python and small-array overhead plus,
# for large products, 0.27-0.44 ns per batch x hidden x (hidden + 10).
US_PER_TIME_STEP = {"none": 40.0, "bn": 70.0, "ln": 75.0}
NS_PER_UNIT = 0.45


def estimate_seconds(s: Settings) -> float:
    """Estimated wall time [s] of the page's six runs (digits and length task, three norms)."""
    total = 0.0
    for T in (8, s.length):
        units = s.batch * s.hidden * (s.hidden + 10)
        for norm in NORM_ORDER:
            per_step = T * (US_PER_TIME_STEP[norm] * 1e-6 + NS_PER_UNIT * 1e-9 * units)
            total += s.steps * per_step * 1.3  # evaluations add about 30 %
    return total


# --------------------------------------------------------------------------- cached training


@st.cache_data(max_entries=96, show_spinner=False)
def train_cached(config: RNNConfig, label: str) -> RNNResult:
    """:func:`bn_core.recurrent.train` with a progress bar, cached per config (model dropped).

    A ``ValueError`` (a config that cannot train, e.g. batch norm on a batch of one) propagates
    before any bar is drawn, and is not cached.
    """
    rec.validate_config(config)
    with progress_bar(label, min_step=0.04) as update:
        start = time.perf_counter()
        result = rec.train(config, progress=update)
        wall = time.perf_counter() - start
    result = replace(result, model=None)
    result.history["wall_time_s"] = np.array([wall])
    return result


@st.cache_data(max_entries=16, show_spinner=False)
def optimal_cached(max_length: int) -> np.ndarray:
    """Bayes-optimal accuracy of the length task at lengths 1..max_length."""
    return np.array([rec.optimal_length_accuracy(L) for L in range(1, max_length + 1)])


def _runs(s: Settings, task: str, extra: dict, what: str) -> tuple[dict, dict]:
    results, errors = {}, {}
    for norm in NORM_ORDER:
        cfg = s.config(task, norm, **extra)
        try:
            results[norm] = train_cached(cfg, f"Training {what}, {NORM_LABEL[norm]}…")
        except ValueError as exc:
            errors[norm] = str(exc)
    return results, errors


def comparison(s: Settings) -> Comparison:
    """The two experiments for the three norms (six cached runs)."""
    digits, err_d = _runs(s, "digits", {}, "on sequential digits")
    length, err_l = _runs(s, "length", {}, f"on length {s.length}")
    return Comparison(digits=digits, length=length, errors={**err_l, **err_d},
                      train_length=s.length, policy=s.policy, optimal=optimal_cached(3 * s.length))


def variable_runs(s: Settings) -> tuple[dict, dict]:
    """The length task trained on lengths ``min_length .. T`` (padded, masked), three norms."""
    return _runs(s, "length", {"min_length": s.min_length}, "on variable lengths")


@st.cache_data(max_entries=8, show_spinner=False)
def sweep_cached(base: RNNConfig, batches: tuple[int, ...]) -> dict[str, np.ndarray]:
    """:func:`bn_core.recurrent.batch_sweep` on sequential digits with a progress bar."""
    label = "Batch-size sweep (18 runs)…"
    with progress_bar(label, min_step=0.04) as update:
        return rec.batch_sweep(base, batches, progress=update)


def runs_key(results: Mapping[str, RNNResult]) -> tuple:
    """A hashable name of the runs behind a chart (configs and measured times)."""
    return tuple((n, r.config, float(np.sum(r.history["step_time"]))) for n, r in sorted(results.items()))


@st.cache_resource(max_entries=64, show_spinner=False)
def _cached_figure(kind: str, key: tuple, _build: Callable) -> FigureSpec:
    return FigureSpec(_build().to_dict())


def comparison_chart(cmp: Comparison) -> FigureSpec:
    key = (runs_key(cmp.digits), runs_key(cmp.length), tuple(sorted(cmp.errors)), cmp.policy)
    return _cached_figure("comparison", key, lambda: sf.fig_comparison(cmp))


def unrolled_chart(T: int, policy: str) -> FigureSpec:
    return _cached_figure("unrolled", (T, policy), lambda: sf.fig_unrolled(T, policy))


def running_means_chart(cmp: Comparison) -> FigureSpec:
    d, L = cmp.digits.get("bn"), cmp.length.get("bn")
    key = (runs_key({"d": d} if d else {}), runs_key({"l": L} if L else {}), cmp.train_length)
    return _cached_figure("running", key, lambda: sf.fig_running_means(d, L, cmp.train_length))


def step_spread_chart(cmp: Comparison) -> FigureSpec:
    key = (runs_key(cmp.digits), runs_key(cmp.length))
    return _cached_figure("spread", key, lambda: sf.fig_step_spread(cmp))


def active_chart(results: Mapping[str, RNNResult]) -> FigureSpec:
    return _cached_figure("active", runs_key(results), lambda: sf.fig_active(results))


def active_accuracy_chart(results: Mapping[str, RNNResult], T: int) -> FigureSpec:
    return _cached_figure("active_acc", (runs_key(results), T),
                          lambda: sf.fig_active_accuracy(results, T))


def sweep_chart(base: RNNConfig, batches: tuple[int, ...], sweep: Mapping[str, np.ndarray]) -> FigureSpec:
    return _cached_figure("sweep", (base, batches), lambda: sf.fig_batch_sweep(sweep))


# --------------------------------------------------------------------------- captions


def _final(res: RNNResult | None, key: str = "test_acc") -> float | None:
    if res is None:
        return None
    v = np.asarray(res.history.get(key, []), dtype=float)
    v = v[np.isfinite(v)]
    return float(v[-1]) if v.size else None


def _acc_at(res: RNNResult | None, L: int) -> float | None:
    if res is None:
        return None
    lengths = np.asarray(res.history["length"])
    acc = np.asarray(res.history["acc_by_length"], dtype=float)
    hit = np.flatnonzero(lengths == L)
    if not hit.size or not np.isfinite(acc[hit[0]]):
        return None
    return float(acc[hit[0]])


def _pct(v: float) -> str:
    return f"{100 * v:.1f} %"


def describe_comparison(cmp: Comparison) -> str:
    """The main chart in one or two sentences, from its runs."""
    parts = []
    finals = {n: _final(cmp.digits.get(n)) for n in NORM_ORDER}
    have = {n: v for n, v in finals.items() if v is not None}
    if have:
        best = max(have, key=have.get)
        if have[best] <= 0.15:  # chance on ten digits is 10 %
            verdict = " (none learned: chance is 10 %)"
        elif sum(v >= have[best] - 0.0005 for v in have.values()) > 1:
            verdict = " (a tie at the top)"
        else:
            verdict = f" (best: {NORM_LABEL[best]})"
        parts.append("On the digits, final test accuracy: " + ", ".join(
            f"{NORM_LABEL[n]} {_pct(v)}" for n, v in have.items()) + verdict)
    T = cmp.train_length
    moves = []
    for n in NORM_ORDER:
        a, b = _acc_at(cmp.length.get(n), T), _acc_at(cmp.length.get(n), 3 * T)
        if a is not None and b is not None:
            d = b - a
            verb = "rises" if d > 0.005 else "falls" if d < -0.005 else "stays"
            moves.append(f"{NORM_LABEL[n]} {verb} from {_pct(a)} at T = {T} to {_pct(b)} at 3T = {3 * T}")
    if moves:
        parts.append("on sequences longer than in training " + "; ".join(moves))
    for n in NORM_ORDER:
        for res in (cmp.digits.get(n), cmp.length.get(n)):
            if res is not None and res.diverged_at is not None:
                parts.append(f"{NORM_LABEL[n]} diverged at step {res.diverged_at} (its line ends there)")
                break
    if "bn" in cmp.errors:
        parts.append("BN per time step could not train with this batch size (see the message above)")
    if not parts:
        return "No run produced a finite result with these settings."
    return "; ".join(parts) + "."


def describe_unrolled(T: int, policy: str) -> str:
    """What the diagram shows, for ``T`` and the policy."""
    beyond = {"last": f"reuse the statistics of step {T}",
              "fresh": "use fresh statistics (mean 0, variance 1) that no batch ever set",
              "batch": "use the statistics of whatever test batch they are in"}[policy]
    return (f"BN keeps {T} set{'s' if T != 1 else ''} of statistics (mean and variance of every "
            f"hidden unit over the batch, one set per time step); at steps {T + 1} to {3 * T} it has "
            f"none of its own and, with this setting, they {beyond}. LN computes a mean and a "
            "variance for each sample at each step, over its own hidden units, so it stores nothing "
            "and every length is treated alike.")


def running_mean_spread(res: RNNResult) -> tuple[float, int, int, float, int] | None:
    """(largest per-unit range over steps, its unit (1-based), steps, smallest range, T), or None.

    Over the first 4 units, finite values only (the chart draws only those): how much each
    unit's running mean varies between time steps. None when no unit has a finite value.
    """
    rm = np.asarray(res.history["running_mean"], dtype=float)[:, :sf.N_UNITS_SHOWN]
    ranges = {}
    for j in range(rm.shape[1]):
        col = rm[:, j][np.isfinite(rm[:, j])]
        if col.size:
            ranges[j + 1] = float(col.max() - col.min())
    if not ranges:
        return None
    unit = max(ranges, key=ranges.get)
    return ranges[unit], unit, rm.shape[0], min(ranges.values()), rm.shape[0]


def describe_running_means(cmp: Comparison) -> str:
    """The running-means chart, from the BN runs' stored statistics."""
    d, L = cmp.digits.get("bn"), cmp.length.get("bn")
    parts = []
    for name, res in (("digits", d), ("loudest-channel task", L)):
        if res is None or np.asarray(res.history["running_mean"]).size == 0:
            continue
        spread = running_mean_spread(res)
        if spread is None:
            continue
        rng_max, unit, steps, rng_min, _ = spread
        parts.append(f"on the {name} unit {unit}'s running mean differs by {rng_max:.2f} between "
                     f"its {steps} time steps (the least-varying of units 1-4 by {rng_min:.2f})")
    if not parts:
        return "BN did not train here, so there are no per-step statistics to show."
    text = "; ".join(parts)
    tail = {"last": f"beyond T = {cmp.train_length} the dotted continuation is step "
                    f"{cmp.train_length}'s set, reused",
            "fresh": "beyond T the dotted continuation is 0, the fresh running mean",
            "batch": "beyond T nothing is stored: each test batch brings its own statistics"}[cmp.policy]
    return text[0].upper() + text[1:] + f"; one shared set would be wrong wherever they differ; {tail}."


def step_spread(res: RNNResult) -> tuple[float, int, float, int] | None:
    """(smallest spread, its step, largest spread, its step) of the last record's ``act_std``."""
    if not len(res.history["act_std"]):
        return None
    std = np.asarray(res.history["act_std"], dtype=float)[-1]
    ok = np.flatnonzero(np.isfinite(std))
    if not ok.size:
        return None
    lo, hi = ok[np.argmin(std[ok])], ok[np.argmax(std[ok])]
    return float(std[lo]), int(lo) + 1, float(std[hi]), int(hi) + 1


def describe_step_spread(cmp: Comparison) -> str:
    """The spread chart's digits panel: the range of a_t's spread over the 8 rows, per norm."""
    parts = []
    for n in NORM_ORDER:
        res = cmp.digits.get(n)
        sp = step_spread(res) if res is not None else None
        if sp is not None:
            lo, t_lo, hi, t_hi = sp
            parts.append(f"{NORM_LABEL[n]} from {lo:.2f} (row {t_lo}) to {hi:.2f} (row {t_hi})")
    if not parts:
        return "No run has a finite record to show."
    return ("On the digits the spread of a_t, what N_t has to normalize, varies over the rows: "
            + "; ".join(parts) + ". Where it varies, one shared set of statistics would normalize some "
            "rows too much and others too little.")


def describe_active(results: Mapping[str, RNNResult], s: Settings) -> str:
    """The variable-length chart, from the BN run's counts (else any run's)."""
    res = results.get("bn") or next(iter(results.values()), None)
    if res is None:
        return "No run trained with these settings."
    h = res.history
    am, amin, fb = (np.asarray(h[k]) for k in ("active_mean", "active_min", "fallback"))
    T = len(am)
    below = np.flatnonzero(am < 2) + 1
    text = (f"With lengths drawn from {s.min_length} to {T} and batches of {s.batch}, step 1 "
            f"averages over {am[0]:.1f} sequences and step {T} over {am[-1]:.1f} on average "
            f"(fewest in any batch: {int(amin[-1])})")
    if below.size:
        text += f"; from step {below[0]} on the average is below 2"
    if "bn" in results and fb.sum():
        text += (f"; {int(fb.sum())} times a step had fewer than 2 sequences left and BN had to use "
                 "its running statistics instead of batch statistics")
    return text + "."


def describe_length_accuracy(results: Mapping[str, RNNResult], T: int) -> str:
    """Accuracy at T and at 3T per norm (the variable-length accuracy chart)."""
    moves = []
    for n in NORM_ORDER:
        a, b = _acc_at(results.get(n), T), _acc_at(results.get(n), 3 * T)
        if a is not None and b is not None:
            d = b - a
            verb = "rises" if d > 0.005 else "falls" if d < -0.005 else "stays"
            moves.append(f"{NORM_LABEL[n]} {verb} from {_pct(a)} at T = {T} to {_pct(b)} at 3T = {3 * T}")
    if not moves:
        return "No run has finite accuracies at T and 3T."
    return "After training on variable lengths, accuracy " + "; ".join(moves) + "."


def describe_sweep(sweep: Mapping[str, np.ndarray]) -> str:
    """The batch-size sweep, from its arrays."""
    b = np.asarray(sweep["batch"])
    parts = []
    for n in NORM_ORDER:
        acc = np.asarray(sweep.get(n, []), dtype=float)
        ok = np.isfinite(acc)
        if ok.any():
            parts.append(f"{NORM_LABEL[n]} {_pct(acc[ok][0])} at batch {b[ok][0]} and "
                         f"{_pct(acc[ok][-1])} at batch {b[ok][-1]}")
    if not parts:
        return "No run of the sweep produced an accuracy."
    return "Final test accuracy: " + "; ".join(parts) + " (same steps and learning rate for all)."


def step_time_line(cmp: Comparison) -> str:
    """Median measured time per training step on the digits, per norm."""
    parts = []
    for n in NORM_ORDER:
        res = cmp.digits.get(n)
        if res is not None and len(res.history["step_time"]):
            parts.append(f"{NORM_LABEL[n]} {1e3 * float(np.median(res.history['step_time'])):.2f} ms")
    return ("Measured time per training step on the digits (median): " + ", ".join(parts) + "."
            if parts else "")


# --------------------------------------------------------------------------- page glue

APPROVED = "_c5_approved_cost"


def cost_ok(s: Settings) -> bool:
    """True if the six runs may start: cheap, cached, or approved with the "Train anyway" button."""
    seconds = estimate_seconds(s)
    return page.cost_gate(seconds, COST_THRESHOLD_S,
                          f"**Training the six networks would take about {seconds:.0f} s** on this machine, "
                          f"so it has not started: {s.steps} steps × batch {s.batch} × {s.hidden} hidden "
                          f"units × up to {max(8, s.length)} time steps. Lower the steps, the batch, the "
                          "hidden units or T, or start it anyway.",
                          APPROVED, s, "Train anyway", "c5_train_anyway")


def report_problems(cmp: Comparison) -> None:
    """Say which norm could not train (the core's message) and which run diverged where."""
    for norm, msg in cmp.errors.items():
        if norm == "bn":
            st.warning(f"**BN per time step cannot train on this batch.** {msg.rstrip('.')}. The other two "
                       "norms are shown; choose a batch of 2 or more to see it.", icon=":material/block:")
        else:
            st.error(f"{NORM_LABEL[norm]} cannot train with these settings: {msg}")
    for task, results in (("the digits", cmp.digits), ("the length task", cmp.length)):
        for norm, res in results.items():
            if res.diverged_at is not None:
                reason = res.message.split(": ", 1)[-1]
                st.error(f"{NORM_LABEL[norm]} on {task} **diverged at step {res.diverged_at}** and "
                         f"stopped ({reason}); its line ends at its last finite evaluation. Try a "
                         "smaller learning rate or switch gradient clipping on.",
                         icon=":material/warning:")


RNN_LATEX = r"""
a_t = x_t W_x + h_{t-1} W_h,\qquad h_t = \tanh\bigl(N_t(a_t) + b\bigr),\qquad h_0 = 0,\qquad
\text{logits} = h_T W_o + b_o
"""
BN_LATEX = r"""
\text{BN at step } t:\quad \mu_{t,j} = \frac1m\sum_{i=1}^m a_{t,ij},\quad
\sigma^2_{t,j} = \frac1m\sum_{i=1}^m (a_{t,ij}-\mu_{t,j})^2,\quad
N_t(a_t)_{ij} = \gamma_j\,\frac{a_{t,ij}-\mu_{t,j}}{\sqrt{\sigma^2_{t,j}+\epsilon}} + \beta_j
"""
LN_LATEX = r"""
\text{LN at every step:}\quad \mu_{t,i} = \frac1H\sum_{j=1}^H a_{t,ij},\quad
\sigma^2_{t,i} = \frac1H\sum_{j=1}^H (a_{t,ij}-\mu_{t,i})^2,\quad
N(a_t)_{ij} = \gamma_j\,\frac{a_{t,ij}-\mu_{t,i}}{\sqrt{\sigma^2_{t,i}+\epsilon}} + \beta_j
"""
TASKS_TEXT = (
    "BN's mean and variance run over the $m$ sequences of the batch (index $i$), separately for "
    "every hidden unit $j$ **and every time step $t$**; LN's run over the $H$ hidden units of one "
    "sequence at one step, so they need no batch and store nothing. $\\gamma, \\beta$ are shared "
    "by all steps in both.\n\n"
    "**Sequential digits:** each 8×8 image of scikit-learn's digits is read row by row, $T = 8$ "
    "steps of 8 pixels; 1347 training and 450 test images. **Loudest channel:** 4 channels of "
    "Gaussian noise $\\mathcal N(0,1)$, one of which carries $+1$ at every step; the class is that "
    "channel, at every length, so a longer sequence only holds more evidence (the grey dotted line "
    "is the best possible accuracy, the rule *largest channel sum*). Training uses length $T$; the "
    "test accuracy at length $L$ is measured on the first $L$ steps of 512 test sequences of "
    "length $3T$. All runs: the same seed and initial weights for the three norms, SGD with "
    "momentum 0.9, the gradient clipped to the chosen norm, evaluation mode for every accuracy."
)
POLICY_TEXT = (
    "A training batch of length $T$ gives BN statistics for steps $1..T$ and no more. At a test "
    "step $t > T$ the layer for step $t$ has never seen a batch. This lab never raises there; it "
    "follows the chosen policy:\n\n"
    "- **reuse step T's statistics** (the default): the population statistics of the last trained "
    "step serve every later step, as Cooijmans et al. (2016, *Recurrent Batch Normalization*) do. "
    "It works when the hidden activations have settled into a steady state by step $T$; the "
    "running-means chart below shows whether they have.\n"
    "- **fresh statistics (mean 0, variance 1):** what a new BatchNorm1d layer holds before any "
    "training, i.e. no normalization fitted to the data. Shown for contrast.\n"
    "- **the test batch's own statistics:** batch statistics as in training; then a test sequence's "
    "prediction depends on the other sequences in its batch (a batch of one falls back to reuse).\n\n"
    "Layer norm needs no policy: its statistics come from the sample at hand, at every step."
)
RUNNING_LATEX = r"""
\text{running\_mean}_t \leftarrow 0.9\,\text{running\_mean}_t + 0.1\,\mu_t,\qquad
\text{running\_var}_t \leftarrow 0.9\,\text{running\_var}_t + 0.1\,\tfrac{m}{m-1}\sigma_t^2
\qquad (t = 1..T,\ \text{one pair per step})
"""
SWEEP_TEXT = (
    "Each point is one run of the digits with that batch size for that norm: the same seed, "
    "initial weights, number of steps and learning rate for all, so a smaller batch also sees fewer "
    "images in total. Compare the norms at one batch size, not one norm across batch sizes. BN per "
    "time step estimates a mean and a variance per hidden unit and per row (8 × 64 of each with "
    "the default 64 units) from each batch; with 2 sequences each of them comes from 2 numbers."
)
SPREAD_LATEX = r"""
s_t = \frac1H \sum_{j=1}^{H} \sqrt{\frac1n \sum_{i=1}^{n} \bigl(a_{t,ij} - \bar a_{t,j}\bigr)^2}
\qquad (n \text{ test sequences, evaluation mode, after the last training step})
"""
VARIABLE_TEXT = (
    "Each training sequence gets a length drawn uniformly from the shortest training length to "
    "$T$; a batch is padded to $T$, and a mask keeps a finished sequence's state unchanged "
    "($h_t = h_{t-1}$), so its logits come from its own last step. BN at step $t$ then averages "
    "over the sequences still running, which are fewer and fewer at late steps. A step with fewer "
    "than 2 running sequences has no batch variance; there BN normalizes with that step's running "
    "statistics instead (counted in the caption). LN is unaffected: it normalizes each running "
    "sequence by itself."
)
TRANSFORMER_TEXT = (
    "Context, not an experiment of this page: a Transformer normalizes every token's vector by "
    "its own mean and variance over the features, LayerNorm (Vaswani et al. 2017; later models "
    "move it before each sublayer or use its variant RMSNorm). Those statistics depend neither on "
    "the other sequences in the batch nor on the position or the length, so training and "
    "inference compute the same thing, a batch of one works, padding needs no special care, and "
    "text longer than any training text needs no statistics it has never seen. Batch norm per "
    "time step needs help with each of these, as the charts above measure."
)


# --------------------------------------------------------------------------- tables (CSV)


def histories_csv(cmp: Comparison) -> str:
    """One row per run and evaluation: task, norm, step, train loss, test accuracy, per-step
    mean and std of a_t."""
    rows = []
    for task, results in (("digits", cmp.digits), ("length", cmp.length)):
        for norm, res in results.items():
            h = res.history
            for i, step in enumerate(h["step"]):
                row = {"task": task, "norm": norm, "step": int(step),
                       "train_loss": h["train_loss"][i], "test_acc": h["test_acc"][i]}
                for t in range(h["act_mean"].shape[1]):
                    row[f"a_mean_t{t + 1}"] = h["act_mean"][i, t]
                    row[f"a_std_t{t + 1}"] = h["act_std"][i, t]
                rows.append(row)
    return pd.DataFrame(rows).to_csv(index=False)


def lengths_csv(cmp: Comparison) -> str:
    """Accuracy against test length per norm (and the Bayes rule), plus BN's statistics step."""
    T3 = 3 * cmp.train_length
    df = pd.DataFrame({"test_length": np.arange(1, T3 + 1), "bayes_optimal": cmp.optimal[:T3]})
    for norm, res in cmp.length.items():
        df[f"acc_{norm}"] = np.asarray(res.history["acc_by_length"], dtype=float)[:T3]
        if norm == "bn":
            df["bn_statistics_of_step"] = np.asarray(res.history["stat_step"])[:T3]
    return df.to_csv(index=False)


def running_means_csv(cmp: Comparison) -> str:
    """BN's per-step running means and variances (every unit), both tasks."""
    rows = []
    for task, results in (("digits", cmp.digits), ("length", cmp.length)):
        res = results.get("bn")
        if res is None:
            continue
        rm, rv = res.history["running_mean"], res.history["running_var"]
        for t in range(rm.shape[0]):
            for j in range(rm.shape[1]):
                rows.append({"task": task, "time_step": t + 1, "unit": j + 1,
                             "running_mean": rm[t, j], "running_var": rv[t, j]})
    return pd.DataFrame(rows, columns=["task", "time_step", "unit", "running_mean",
                                       "running_var"]).to_csv(index=False)


__all__ = ["PARAMS", "EXPERIMENTS", "Settings", "settings_from", "comparison", "describe_comparison",
           "describe_unrolled", "describe_running_means", "describe_active", "describe_sweep",
           "POLICY_LABEL"]
