"""Chapter 4 (the curse of batch norm): URL params, guided experiments, cached core calls,
records and the "what to see" sentences.

A section's journey: widget values (``PARAMS``, mirrored in the URL) -> :class:`Settings`
-> a cached wrapper around one :mod:`bn_core.experiments` call (primitive arguments, shared
by every session) -> a *record* (a dict of arrays, shapes in :mod:`ui.curse_figures`) ->
``fig_*(record)`` and ``describe_*(record)``, so a caption is computed from the very arrays
its chart draws.
"""

from __future__ import annotations

import io
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import streamlit as st

from ui import curse_figures as cf
from ui import state
from ui.page import Experiment
from ui.progress import progress_bar
from ui.theme import FigureSpec

# --------------------------------------------------------------------------- settings

BATCH_SIZES = (2, 4, 8, 16, 32, 64, 128)
LR_OPTIONS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
WIDTH_OPTIONS = (16, 32, 64, 128)
SORT_BATCHES = (4, 8, 16, 32, 64, 128)
SORT_LR_OPTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05)
RMAX_OPTIONS = (1.0, 1.5, 2.0, 3.0, 5.0, 10.0)
DMAX_OPTIONS = (0.0, 0.5, 1.0, 2.0, 5.0, 10.0)
ORDERS = ("shuffled", "by_class")
ORDER_LABEL = {"shuffled": "shuffled batches", "by_class": "class-sorted batches"}
AX_METHODS = ("batch", "layer", "instance", "group")
AX_LABEL = {"batch": "BatchNorm", "layer": "LayerNorm", "instance": "InstanceNorm", "group": "GroupNorm"}
AX_CHANNELS = 6  # bn_core.axes.feature_maps: six fixed 3x3 filters
AX_SAMPLES = 4
AX_GROUPS = tuple(g for g in range(1, AX_CHANNELS + 1) if AX_CHANNELS % g == 0)
SEEDS = (0, 1)
EPOCHS = 8
BASE_BATCH = 32
DEPTH = 2
MOMENTA = (0.01, 0.1, 0.5)  # running-statistics momenta of section 3
NORMS = cf.NORMS
BATCH_STAT_NORMS = ("bn_before", "brn")


@dataclass(frozen=True)
class IntChoiceParam(state.FloatParam):
    """A whole number that must be one of ``options`` (snapped on a log scale, reported)."""

    def parse(self, raw: str) -> tuple[object, str | None]:
        value, msg = super().parse(raw)
        return int(round(float(value))), msg

    def encode(self, value: object) -> str:
        return str(int(round(float(value))))


def _ichoice(key, default, options, label):
    return IntChoiceParam(key, default, float(min(options)), float(max(options)),
                          options=tuple(float(o) for o in options), label=label)


def _fchoice(key, default, options, label):
    return state.FloatParam(key, default, float(min(options)), float(max(options)), options=tuple(options),
                            label=label)


PARAMS: list[state.Param] = [
    _ichoice("c4_batch", 32, BATCH_SIZES, "batch size"),
    state.BoolParam("c4_scale", True, label="linear learning-rate scaling"),
    _fchoice("c4_lr", 0.05, LR_OPTIONS, "learning rate at batch 32"),
    _ichoice("c4_width", 64, WIDTH_OPTIONS, "units per hidden layer"),
    state.IntParam("c4_groups", 4, label="GroupNorm groups", lo=1, hi=max(WIDTH_OPTIONS)),
    _ichoice("c4_sbatch", 32, SORT_BATCHES, "class-sorted batch size"),
    _fchoice("c4_slr", 0.005, SORT_LR_OPTIONS, "learning rate of the batch-order runs"),
    _fchoice("c4_rmax", 3.0, RMAX_OPTIONS, "r_max"),
    state.FloatParam("c4_dmax", 5.0, 0.0, max(DMAX_OPTIONS), options=DMAX_OPTIONS, label="d_max"),
    state.ChoiceParam("c4_rorder", "shuffled", label="Batch Renorm's batches", choices=ORDERS),
    state.ChoiceParam("c4_axm", "batch", label="normalization in the picture", choices=AX_METHODS),
    _ichoice("c4_axg", 2, AX_GROUPS, "groups in the picture"),
    state.IntParam("c4_axn", 0, label="highlighted sample", lo=0, hi=AX_SAMPLES - 1),
    state.IntParam("c4_axc", 0, label="highlighted channel", lo=0, hi=AX_CHANNELS - 1),
]
PARAM = {p.key: p for p in PARAMS}

EXPERIMENTS = [
    Experiment("Batch size 2",
               "At batch 2 BatchNorm's test error is several times that of LayerNorm and GroupNorm, "
               "which barely change from batch 128 to batch 2.",
               {"c4_batch": 2}),
    Experiment("Fixed learning rate",
               "With one learning rate for every batch size, the small batches take steps far too large "
               "for them: at batch 2 every network, even the one without normalization, loses most of "
               "its accuracy, so the batch size is no longer the only thing that changes.",
               {"c4_scale": False, "c4_batch": 2}),
    Experiment("Class-sorted batches",
               "Every batch holds one class: BatchNorm's test accuracy collapses to a fraction of its "
               "shuffled value, LayerNorm and GroupNorm keep most of theirs, and Batch Renorm, on the same "
               "batches, recovers only part of BatchNorm's loss.",
               {"c4_sbatch": 32, "c4_rorder": "by_class"}),
    Experiment("Batch Renorm at batch 2",
               "At batch 2, with r_max 5 and d_max 10, Batch Renorm's test accuracy is more than 10 points "
               "above BatchNorm's, yet below its own accuracy at batch 128: it corrects the noisy batch "
               "statistics, it cannot remove the noise.",
               {"c4_batch": 2, "c4_rmax": 5.0, "c4_dmax": 10.0}),
    Experiment("GroupNorm's axes",
               "GroupNorm with 2 groups: each sample's channels split into two sets of three, each "
               "normalized by its own mean and variance, whatever the batch holds.",
               {"c4_axm": "group", "c4_axg": 2}),
]


def divisors(n: int) -> tuple[int, ...]:
    """The divisors of ``n`` (the GroupNorm group counts a width allows), ascending."""
    n = int(n)
    return tuple(g for g in range(1, n + 1) if n % g == 0)


def nearest_divisor(groups: int, width: int) -> int:
    """The divisor of ``width`` nearest to ``groups`` on a log scale (ties: the smaller)."""
    g = max(int(groups), 1)
    return min(divisors(width), key=lambda d: (abs(math.log(d) - math.log(g)), d))


def reconcile(ss) -> list[str]:
    """Fix the combinations that single params cannot check; return a message per change.

    GroupNorm's groups must divide the width: a value that does not becomes the nearest
    divisor (and the page says so).
    """
    notices = []
    width = int(ss["c4_width"])
    g = int(ss["c4_groups"])
    if width % g:
        new = nearest_divisor(g, width)
        ss["c4_groups"] = new
        notices.append(f"GroupNorm groups: {g} does not divide the width {width}; using {new} "
                       f"(the allowed values are {', '.join(map(str, divisors(width)))}).")
    return notices


@dataclass(frozen=True)
class Settings:
    """The values every section uses (primitive, hashable)."""

    batch: int = 32
    scale_lr: bool = True
    base_lr: float = 0.05
    width: int = 64
    groups: int = 4
    sort_batch: int = 32
    sort_lr: float = 0.005
    r_max: float = 3.0
    d_max: float = 5.0
    r_order: str = "shuffled"
    ax_method: str = "batch"
    ax_groups: int = 2
    ax_n: int = 0
    ax_c: int = 0

    @property
    def renorm_lr(self) -> float:
        """Batch Renorm's section trains class-sorted batches at the batch-order runs' rate."""
        return self.sort_lr if self.r_order == "by_class" else self.base_lr


def settings(ss) -> Settings:
    """:class:`Settings` from the session state (after :func:`ui.state.restore`)."""
    return Settings(
        batch=int(ss["c4_batch"]), scale_lr=bool(ss["c4_scale"]), base_lr=float(ss["c4_lr"]),
        width=int(ss["c4_width"]), groups=int(ss["c4_groups"]), sort_batch=int(ss["c4_sbatch"]),
        sort_lr=float(ss["c4_slr"]),
        r_max=float(ss["c4_rmax"]), d_max=float(ss["c4_dmax"]), r_order=str(ss["c4_rorder"]),
        ax_method=str(ss["c4_axm"]), ax_groups=int(ss["c4_axg"]), ax_n=int(ss["c4_axn"]),
        ax_c=int(ss["c4_axc"]),
    )


# --------------------------------------------------------------------------- widgets


def key_controls() -> None:
    """The chapter's key controls (first in the sidebar)."""
    st.select_slider("Batch size", options=BATCH_SIZES, key="c4_batch",
                     help="The batch size of the sections below the sweep; marked on the main chart.")
    st.toggle("Scale the learning rate with the batch size", key="c4_scale",
              help="Linear scaling rule (Goyal et al. 2017, used by Wu & He): lr = base lr × batch / 32. "
                   "Off: the same learning rate for every batch size.")


def other_controls(ss) -> None:
    """The remaining controls, in expander groups."""
    with st.expander("Network and learning rate"):
        st.select_slider("Learning rate at batch 32", options=LR_OPTIONS, key="c4_lr",
                         help="SGD with momentum 0.9. Large values make some runs diverge: the page says which.")
        st.select_slider("Units per hidden layer", options=WIDTH_OPTIONS, key="c4_width",
                         help="Two hidden layers of ReLU units.")
        allowed = divisors(int(ss["c4_width"]))
        old = int(ss["c4_groups"])
        if old not in allowed:  # the width just changed: keep a valid divisor, and say so
            ss["c4_groups"] = nearest_divisor(old, int(ss["c4_width"]))
        st.select_slider("GroupNorm groups", options=allowed, key="c4_groups",
                         help="Only divisors of the width: each group holds width / groups units.")
        if old not in allowed:
            st.caption(f"{old} groups do not divide {ss['c4_width']} units: GroupNorm now uses {ss['c4_groups']}.")
    with st.expander("Class-sorted batches"):
        st.select_slider("Batch size of the class-sorted runs", options=SORT_BATCHES, key="c4_sbatch")
        st.select_slider("Their learning rate at batch 32", options=SORT_LR_OPTIONS, key="c4_slr",
                         help="A tenth of the sweep's by default: at 0.05 with momentum 0.9, class-pure batches "
                              "kill every ReLU network, normalized or not (all units dead; PyTorch agrees)."),
    with st.expander("Batch Renorm"):
        st.select_slider("r_max", options=RMAX_OPTIONS, key="c4_rmax",
                         help="r is clipped to [1/r_max, r_max]; r_max = 1 and d_max = 0 is BatchNorm.")
        st.select_slider("d_max", options=DMAX_OPTIONS, key="c4_dmax", help="d is clipped to [-d_max, d_max].")
        st.radio("Batch Renorm's batches", ORDERS, key="c4_rorder", format_func=ORDER_LABEL.get, horizontal=True)
    with st.expander("The axes picture"):
        st.radio("Normalization", AX_METHODS, key="c4_axm", format_func=AX_LABEL.get, horizontal=True)
        st.select_slider("Groups (GroupNorm)", options=AX_GROUPS, key="c4_axg",
                         help=f"Divisors of the {AX_CHANNELS} channels.")
        st.slider("Highlighted sample", 0, AX_SAMPLES - 1, key="c4_axn")
        st.slider("Highlighted channel", 0, AX_CHANNELS - 1, key="c4_axc")


# --------------------------------------------------------------------------- cached core calls


def _net_kwargs(width: int, groups: int | None = None) -> dict:
    out = {"width": int(width), "depth": DEPTH}
    if groups is not None:
        out["groups"] = int(groups)
    return out


@st.cache_data(max_entries=64, show_spinner=False)
def sweep_chunk(batch: int, scale_lr: bool, base_lr: float, width: int, groups: int) -> dict:
    """:func:`bn_core.experiments.batch_size_sweep` for one batch size, every norm and seed."""
    from bn_core.experiments import batch_size_sweep

    label = f"Training all five networks × {len(SEEDS)} seeds at batch {batch}…"
    with progress_bar(label) as update, np.errstate(all="ignore"):
        return batch_size_sweep(norms=NORMS, batch_sizes=(int(batch),), seeds=SEEDS, epochs=EPOCHS,
                                base_lr=float(base_lr), base_batch=BASE_BATCH, scale_lr=bool(scale_lr),
                                progress=update, **_net_kwargs(width, groups))


@st.cache_data(max_entries=8, show_spinner=False)
def batch_stats_cached(n_batches: int = 1000) -> dict:
    """:func:`bn_core.experiments.batch_statistics` (one real unit, every batch size)."""
    from bn_core.experiments import batch_statistics

    with np.errstate(all="ignore"):
        return batch_statistics(batch_sizes=BATCH_SIZES, n_batches=int(n_batches))


@st.cache_data(max_entries=32, show_spinner=False)
def momentum_cached(batch: int, scale_lr: bool, base_lr: float, width: int) -> dict:
    """:func:`bn_core.experiments.momentum_effect` at one batch size."""
    from bn_core.experiments import momentum_effect

    label = f"Training BatchNorm with three running-statistics momenta at batch {batch}…"
    with progress_bar(label) as update, np.errstate(all="ignore"):
        return momentum_effect(batch_size=int(batch), momenta=MOMENTA, seeds=(0,), progress=update,
                               **_lr_kwargs(batch, scale_lr, base_lr), **_net_kwargs(width))


def _lr_kwargs(batch: int, scale_lr: bool, base_lr: float) -> dict:
    """The core scales ``lr = base_lr * batch / base_batch``; a fixed lr is ``base_batch = batch``."""
    return {"base_lr": float(base_lr), "base_batch": BASE_BATCH if scale_lr else int(batch)}


@st.cache_data(max_entries=32, show_spinner=False)
def non_iid_cached(batch: int, scale_lr: bool, base_lr: float, width: int, groups: int) -> dict:
    """:func:`bn_core.experiments.non_iid`: shuffled and class-sorted batches, every norm."""
    from bn_core.experiments import non_iid

    label = f"Training every norm on shuffled and class-sorted batches of {batch}…"
    with progress_bar(label) as update, np.errstate(all="ignore"):
        return non_iid(norms=NORMS, batch_size=int(batch), seeds=SEEDS, progress=update,
                       **_lr_kwargs(batch, scale_lr, base_lr), **_net_kwargs(width, groups))


@st.cache_data(max_entries=16, show_spinner=False)
def online_cached(scale_lr: bool, base_lr: float, width: int, groups: int) -> dict:
    """:func:`bn_core.experiments.online_learning`: batch of one, one pass."""
    from bn_core.experiments import online_learning

    label = "Training on one sample at a time…"
    with progress_bar(label) as update, np.errstate(all="ignore"):
        return online_learning(norms=NORMS, seeds=SEEDS, lr=lr_for(1, scale_lr, base_lr), progress=update,
                               **_net_kwargs(width, groups))


@st.cache_data(max_entries=32, show_spinner=False)
def renorm_cached(batch: int, r_max: float, d_max: float, order: str, scale_lr: bool, base_lr: float,
                  width: int) -> dict:
    """:func:`bn_core.experiments.renorm_dynamics`: BN and BRN, same seed."""
    from bn_core.experiments import renorm_dynamics

    label = f"Training BatchNorm and Batch Renorm at batch {batch}…"
    with progress_bar(label) as update, np.errstate(all="ignore"):
        return renorm_dynamics(batch_size=int(batch), r_max=float(r_max), d_max=float(d_max),
                               batch_order=order, progress=update, **_lr_kwargs(batch, scale_lr, base_lr),
                               **_net_kwargs(width))


@st.cache_data(max_entries=32, show_spinner=False, ttl=600)
def cost_cached(width: int, batch: int, groups: int) -> dict:
    """:func:`bn_core.experiments.step_cost` (measured now, on this machine; kept 10 min)."""
    from bn_core.experiments import step_cost

    with np.errstate(all="ignore"):
        return step_cost(norms=NORMS, width=int(width), batch_size=int(batch), groups=int(groups))


@st.cache_data(max_entries=64, show_spinner=False)
def axes_cached(method: str, groups: int, n: int, c: int) -> dict:
    """:func:`bn_core.axes.highlight` on :func:`bn_core.axes.feature_maps` (the real tensor)."""
    from bn_core import axes

    fm = axes.feature_maps(n_images=AX_SAMPLES, seed=0)
    h = axes.highlight(fm["x"], method, (int(n), int(c), 0, 0), groups=int(groups))
    return {"x": fm["x"], "mask": h["mask"], "count": int(h["count"]), "mean": float(h["mean"]),
            "var": float(h["var"]), "n_sets": int(h["n_sets"]), "method": method, "groups": int(groups),
            "n": int(n), "c": int(c), "filter_names": tuple(fm["filter_names"]),
            "labels": np.asarray(fm["labels"]), "normalized": h["normalized"]}


def lr_for(batch: int, scale_lr: bool, base_lr: float) -> float:
    """The learning rate a run at ``batch`` uses: ``base_lr * batch / 32`` with scaling
    (:func:`bn_core.experiments.scaled_lr`, the rule the core's sweeps apply)."""
    from bn_core.experiments import scaled_lr

    return scaled_lr(batch, base_lr, BASE_BATCH, bool(scale_lr))


def run_sweep(s: Settings, on_partial: Callable[[dict, int, int], None] | None = None) -> dict:
    """The batch-size sweep at ``s``, one cached batch size at a time, largest (fastest) first.

    ``on_partial(record, done, total)`` is called after each batch size that had to be
    computed (not after cache hits), so the page can draw the chart as it fills in.
    """
    chunks = []
    order = sorted(BATCH_SIZES, reverse=True)
    keys = [(b, s.scale_lr, s.base_lr, s.width, s.groups) for b in order]
    if on_partial is not None and not all(k in _SWEEP_SEEN for k in keys):
        on_partial(sweep_record([]), 0, len(order))  # the published panel at once, before any training
    for i, key in enumerate(keys):
        t0 = time.perf_counter()
        chunks.append(sweep_chunk(*key))
        _SWEEP_SEEN.add(key)
        if on_partial is not None and i < len(order) - 1 and time.perf_counter() - t0 > 0.2:
            on_partial(sweep_record(chunks), i + 1, len(order))
    return sweep_record(chunks)


#: Sweep chunks this process has computed or read (a hint only: whether to draw a preview).
_SWEEP_SEEN: set[tuple] = set()


@st.cache_resource(max_entries=256, show_spinner=False)
def _cached_figure(kind: str, key: tuple, _build: Callable[[], object]) -> FigureSpec:
    return FigureSpec(_build().to_dict())


def figure(kind: str, key: tuple, build: Callable[[], object]) -> FigureSpec:
    """``build()`` frozen into a read-only :class:`ui.theme.FigureSpec`, shared by every session.

    Building a validated Plotly figure costs 15-150 ms here (about 0.4 s for the whole page);
    ``key`` must name everything the figure's record depends on (the primitive settings of a
    seeded, deterministic core call, or the measured values themselves for timings).
    """
    return _cached_figure(kind, tuple(key), build)


# --------------------------------------------------------------------------- records


def sweep_record(chunks: Sequence[Mapping]) -> dict:
    """Merge one-batch-size results of ``batch_size_sweep`` into the figures' sweep record.

    The core's arrays are (sizes, seeds); the record's are (seeds, sizes), ascending sizes.
    Error = 1 - accuracy.
    """
    chunks = sorted(chunks, key=lambda c: int(np.asarray(c["batch_sizes"])[0]))
    rec: dict = {"norms": tuple(n for n in NORMS if all(f"{n}/test_acc" in c for c in chunks)) if chunks else (),
                 "batch_sizes": np.array([int(s) for c in chunks for s in np.asarray(c["batch_sizes"])], dtype=int),
                 "lr": np.array([float(v) for c in chunks for v in np.asarray(c["lr"])], dtype=float),
                 "steps": np.array([int(v) for c in chunks for v in np.asarray(c["steps"])], dtype=int)}
    for n in rec["norms"]:
        acc = np.concatenate([np.asarray(c[f"{n}/test_acc"], dtype=float) for c in chunks], axis=0).T
        accb = np.concatenate([np.asarray(c[f"{n}/test_acc_batch_stats"], dtype=float) for c in chunks], axis=0).T
        div = np.concatenate([np.asarray(c[f"{n}/diverged_at"]) for c in chunks], axis=0).T
        rec[f"{n}/test_err"] = 1.0 - acc
        rec[f"{n}/test_err_batch"] = 1.0 - accb
        rec[f"{n}/diverged"] = div >= 0
        rec[f"{n}/diverged_at"] = div
    return rec


def sweep_csv(rec: Mapping) -> str:
    """The sweep as long CSV: one row per norm, batch size and seed."""
    rows = []
    sizes = np.asarray(rec["batch_sizes"])
    for n in rec["norms"]:
        err, errb, div = rec[f"{n}/test_err"], rec[f"{n}/test_err_batch"], rec[f"{n}/diverged_at"]
        for s in range(err.shape[0]):
            for j, b in enumerate(sizes):
                rows.append({"norm": n, "batch_size": int(b), "seed": SEEDS[s] if s < len(SEEDS) else s,
                             "learning_rate": float(rec["lr"][j]), "steps": int(rec["steps"][j]),
                             "test_acc_eval_mode": 1.0 - float(err[s, j]),
                             "test_acc_batch_stats": 1.0 - float(errb[s, j]),
                             "diverged_at": int(div[s, j])})
    return pd.DataFrame(rows).to_csv(index=False)


def stats_record(core: Mapping) -> dict:
    """``batch_statistics`` -> the figures' stats record."""
    pop_var = float(core["pop_var"])
    return {"batch_sizes": np.asarray(core["batch_sizes"], dtype=int),
            "means": np.asarray(core["batch_means"], dtype=float), "vars": np.asarray(core["batch_vars"], dtype=float),
            "pop_mean": float(core["pop_mean"]), "pop_var": pop_var,
            "se_mean": np.asarray(core["se_mean"], dtype=float),
            # the exact central 68.27 % intervals for Gaussian data (chi-square quantiles for the variance)
            **{k: np.asarray(core[k], dtype=float)
               for k in ("mean_band_lo", "mean_band_hi", "var_band_lo", "var_band_hi")},
            "band_level": float(core["band_level"]),
            "sd_mean_measured": np.asarray(core["sd_mean_measured"], dtype=float),
            "var_rel_sd_measured": np.asarray(core["var_rel_sd_measured"], dtype=float),
            "var_rel_sd_gaussian": np.asarray(core["var_rel_sd_gaussian"], dtype=float),
            "var_rel_sd_kurtosis": np.asarray(core["var_rel_sd_kurtosis"], dtype=float),
            "pop_kurtosis": float(core.get("pop_kurtosis", np.nan)),
            "layer": int(core.get("layer", 0)) + 1, "unit": int(core.get("unit", 0))}


def stats_csv(rec: Mapping) -> str:
    out = io.StringIO()
    sizes = rec["batch_sizes"]
    frame = pd.DataFrame({f"batch_{int(m)}_{k}": rec[key][i]
                          for i, m in enumerate(sizes) for k, key in (("mean", "means"), ("var", "vars"))})
    frame.to_csv(out, index_label="mini_batch")
    return out.getvalue()


def momentum_record(core: Mapping, batch: int) -> dict:
    """``momentum_effect`` -> the figures' momentum record (mean over seeds)."""
    acc = np.asarray(core["test_acc"], dtype=float)  # (M, R, n_rec)
    accb = np.asarray(core["test_acc_batch_stats"], dtype=float)
    return {"momenta": np.asarray(core["momenta"], dtype=float), "step": np.asarray(core["step"], dtype=float),
            "test_acc": np.stack([cf.seed_summary(a)[0] for a in acc]) if acc.size else acc.reshape(len(acc), 0),
            "test_acc_batch": np.stack([cf.seed_summary(a)[0] for a in accb]) if accb.size else accb.reshape(len(accb), 0),
            "batch": int(batch)}


def runs_record(core: Mapping, order: str) -> dict:
    """``non_iid`` -> a runs record for one batch order (mean over seeds)."""
    step = np.asarray(core[f"{order}/step"], dtype=float)
    runs = {}
    for n in NORMS:
        k = f"{order}/{n}/test_acc_curve"
        if k not in core:
            continue
        curve = np.asarray(core[k], dtype=float)
        loss = np.asarray(core[f"{order}/{n}/batch_loss"], dtype=float)
        runs[n] = {"step": step, "test_acc": cf.seed_summary(curve)[0],
                   "batch_loss": cf.seed_summary(loss)[0],
                   "final_acc": float(np.mean(np.asarray(core[f"{order}/{n}/test_acc"], dtype=float))),
                   "final_acc_batch": float(np.mean(np.asarray(core[f"{order}/{n}/test_acc_batch_stats"], dtype=float))),
                   "diverged": bool(np.any(np.asarray(core[f"{order}/{n}/diverged_at"]) >= 0))}
    return {"runs": runs, "errors": {}, "order": order}


def non_iid_csv(core: Mapping) -> str:
    rows = []
    for o in ORDERS:
        for n in NORMS:
            k = f"{o}/{n}/test_acc"
            if k in core:
                for s, (a, b) in enumerate(zip(np.asarray(core[k]), np.asarray(core[f"{o}/{n}/test_acc_batch_stats"]),
                                               strict=False)):
                    rows.append({"batch_order": o, "norm": n, "seed": s, "test_acc_eval_mode": float(a),
                                 "test_acc_batch_stats": float(b)})
    return pd.DataFrame(rows).to_csv(index=False)


def online_record(core: Mapping) -> dict:
    """``online_learning`` -> a runs record: accuracy against samples seen."""
    seen = np.asarray(core["samples_seen"], dtype=float)
    runs, errors = {}, {}
    for n in NORMS:
        if f"{n}/test_acc" in core:
            runs[n] = {"samples": seen, "test_acc": cf.seed_summary(np.asarray(core[f"{n}/test_acc"], dtype=float))[0]}
        elif f"{n}/message" in core:
            errors[n] = str(np.asarray(core[f"{n}/message"]).item())
    return {"runs": runs, "errors": errors, "n_train": int(seen[-1]) if seen.size else 0}


def online_csv(rec: Mapping) -> str:
    rows = []
    for n, h in rec["runs"].items():
        for s, a in zip(h["samples"], h["test_acc"], strict=False):
            rows.append({"norm": n, "samples_seen": int(s), "test_acc_mean_over_seeds": float(a)})
    return pd.DataFrame(rows).to_csv(index=False)


def renorm_record(core: Mapping, r_max: float, d_max: float) -> dict:
    """``renorm_dynamics`` -> the figures' renorm record (layer 1, min/mean/max over units)."""
    r, d = np.asarray(core["r"], dtype=float), np.asarray(core["d"], dtype=float)
    rec = {"step": np.asarray(core["step"], dtype=float), "r_max": float(r_max), "d_max": float(d_max)}
    for name, arr in (("r", r), ("d", d)):
        layer = arr[:, 0, :] if arr.ndim == 3 and arr.shape[0] else np.zeros((0, 3))
        rec[f"{name}_lo"], rec[f"{name}_mid"], rec[f"{name}_hi"] = layer[:, 0], layer[:, 1], layer[:, 2]
    for k in ("bn/test_acc", "brn/test_acc", "bn/test_acc_batch_stats", "brn/test_acc_batch_stats"):
        rec[k] = float(np.asarray(core[k], dtype=float))
    for k in ("bn/diverged_at", "brn/diverged_at"):
        rec[k] = int(np.asarray(core.get(k, -1)))
    return rec


def renorm_csv(rec: Mapping) -> str:
    cols = {k: rec[k] for k in ("step", "r_lo", "r_mid", "r_hi", "d_lo", "d_mid", "d_hi")}
    return pd.DataFrame(cols).to_csv(index=False)


def cost_record(core: Mapping, width: int, batch: int) -> dict:
    """``step_cost`` -> the figures' cost record (ms per step, KiB kept for backward)."""
    norms = tuple(n for n in core["norms"] if n in cf.NORM_STYLE)
    ms = np.array([1e3 * sum(float(core[f"{n}/{p}_s"]) for p in ("forward", "backward", "update")) for n in norms])
    lo = np.array([1e3 * float(core.get(f"{n}/step_s_q25", np.nan)) for n in norms])
    hi = np.array([1e3 * float(core.get(f"{n}/step_s_q75", np.nan)) for n in norms])
    kib = np.array([float(core[f"{n}/cache_bytes"]) / 1024.0 for n in norms])
    arrays = {n: str(np.asarray(core.get(f"{n}/cache_arrays", "")).item()) for n in norms}
    return {"norms": norms, "ms": ms, "ms_lo": lo, "ms_hi": hi, "kept_kib": kib, "arrays": arrays,
            "width": int(width), "batch": int(batch)}


def cost_csv(rec: Mapping) -> str:
    return pd.DataFrame({"norm": rec["norms"], "ms_per_step": rec["ms"], "kept_for_backward_kib": rec["kept_kib"],
                         "arrays_kept": [rec["arrays"][n] for n in rec["norms"]]}).to_csv(index=False)


# --------------------------------------------------------------------------- what to see


def _num(x: float) -> str:
    """Two decimals, never "-0.00"."""
    return f"{round(float(x), 2) + 0.0:.2f}"


def _pct(x: float) -> str:
    return f"{100.0 * x:.1f} %"


def _names(norms: Sequence[str]) -> str:
    labels = [cf.NORM_LABEL[n] for n in norms]
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]


def _mean_err(rec: Mapping, norm: str) -> np.ndarray:
    return cf.seed_summary(rec[f"{norm}/test_err"])[0]


def describe_small_batches(rec: Mapping) -> str:
    """The small-batches chart in one or two sentences, from its record."""
    sizes = np.asarray(rec.get("batch_sizes", []), dtype=int)
    norms = [n for n in rec.get("norms", ()) if np.any(np.isfinite(_mean_err(rec, n)))]
    if len(sizes) < 2 or not norms:
        return "The sweep has not finished enough batch sizes to compare yet."
    lo_b, hi_b = int(sizes[0]), int(sizes[-1])
    err = {n: _mean_err(rec, n) for n in norms}
    rise = {n: float(err[n][0] - err[n][-1]) for n in norms if np.isfinite(err[n][0]) and np.isfinite(err[n][-1])}
    parts = []
    best = min(float(np.nanmin(err[n])) for n in norms)
    if best > 0.5:
        parts.append(f"At these settings no network learns: the lowest test error on the chart is {_pct(best)}")
    elif rise:
        worst = max(rise, key=rise.get)
        parts.append(f"From batch {hi_b} down to batch {lo_b}, {cf.NORM_LABEL[worst]}'s test error "
                     f"{'rises' if rise[worst] > 0 else 'changes'} from {_pct(err[worst][-1])} to "
                     f"{_pct(err[worst][0])}" + (" (mean over seeds)" if rec[f"{worst}/test_err"].shape[0] > 1 else ""))
    flat = [n for n in norms if np.all(np.isfinite(err[n])) and np.nanmax(err[n]) - np.nanmin(err[n]) <= 0.02]
    if best > 0.5:
        pass
    elif flat:
        verb = "stays" if len(flat) == 1 else "stay"
        parts.append(f"{_names(flat)} {verb} within 2 points of {'its' if len(flat) == 1 else 'their'} best "
                     "at every batch size")
    else:
        spread = {n: float(np.nanmax(err[n]) - np.nanmin(err[n])) for n in norms}
        steady = min(spread, key=spread.get)
        if spread[steady] > 0.10:
            parts.append(f"no normalizer is steady here: even the least variable, "
                         f"{cf.NORM_LABEL[steady]}, varies by {100 * spread[steady]:.1f} points over "
                         "the batch sizes")
        else:
            parts.append(f"the steadiest is {cf.NORM_LABEL[steady]}, whose error varies by "
                         f"{100 * spread[steady]:.1f} points over the batch sizes")
    text = "; ".join(parts) + "."
    n_div = sum(int(np.sum(rec[f"{n}/diverged"])) for n in norms)
    if n_div:
        where = []
        for n in norms:
            at = np.asarray(rec.get(f"{n}/diverged_at", np.full_like(rec[f"{n}/diverged"], -1, dtype=int)))
            for seed, j in zip(*np.nonzero(rec[f"{n}/diverged"]), strict=True):
                where.append(f"{cf.NORM_LABEL[n]} at batch {int(sizes[j])} (seed {seed}) at step {int(at[seed, j])}")
        listed = "; ".join(where[:3]) + ("; …" if len(where) > 3 else "")
        text += (f" {n_div} run{'s' if n_div > 1 else ''} diverged and stopped ({listed}; ✕ on the chart, "
                 "drawn at the last evaluation before it stopped).")
    lr = np.asarray(rec.get("lr", []), dtype=float)
    if len(lr) and np.allclose(lr, lr[0]):
        text += (f" The learning rate is {lr[0]:g} at every batch size, so batch {lo_b} takes "
                 f"{hi_b // lo_b}× as many updates per epoch as batch {hi_b}, each as large: the curves "
                 "mix the batch statistics with the number and size of the steps")
        if "none" in err and np.any(np.isfinite(err["none"])):
            e = err["none"]
            text += (f" (even without normalization the error ranges from {_pct(np.nanmin(e))} to "
                     f"{_pct(np.nanmax(e))} over the batch sizes)")
        text += "."
    return text


def describe_batch_stats(rec: Mapping) -> str:
    """The noisy-statistics chart: measured spreads against the closed forms, smallest vs largest batch."""
    sizes = np.asarray(rec["batch_sizes"], dtype=int)
    if len(sizes) < 2:
        return "Too few batch sizes to compare."
    sd = np.asarray(rec["sd_mean_measured"], dtype=float)
    se = np.asarray(rec["se_mean"], dtype=float)
    rv = np.asarray(rec["var_rel_sd_measured"], dtype=float)
    rg = np.asarray(rec["var_rel_sd_gaussian"], dtype=float)
    rk = np.asarray(rec["var_rel_sd_kurtosis"], dtype=float)
    k = np.asarray(rec["means"]).shape[1]
    lo, hi = 0, len(sizes) - 1
    ratio = sd[lo] / sd[hi] if sd[hi] > 0 else math.inf
    text = (f"Over {k} mini-batches, the batch mean of this unit spreads by {sd[lo]:.3g} (standard deviation) at "
            f"batch {sizes[lo]} and by {sd[hi]:.3g} at batch {sizes[hi]}, {ratio:.1f}× less; σ/√m predicts "
            f"{se[lo]:.3g} and {se[hi]:.3g}. The batch variance scatters by {100 * rv[lo]:.0f} % of its mean at "
            f"batch {sizes[lo]} and {100 * rv[hi]:.0f} % at batch {sizes[hi]}; the Gaussian formula √(2/(m−1)) "
            f"says {100 * rg[lo]:.0f} % and {100 * rg[hi]:.0f} %")
    kurt = float(rec.get("pop_kurtosis", np.nan))
    if np.isfinite(rk[lo]) and np.isfinite(kurt):
        text += (f", and with this unit's measured kurtosis ({kurt:.2f}; 3 for Gaussian data) "
                 f"{100 * rk[lo]:.0f} % and {100 * rk[hi]:.0f} %")
    v_lo, v_hi = np.asarray(rec["var_band_lo"], dtype=float), np.asarray(rec["var_band_hi"], dtype=float)
    inside = {key: [f"{100 * c:.0f} %" for c in band_coverage(rec, key)] for key in ("vars", "means")}
    text += (f". The dashed lines hold the central {100 * float(rec['band_level']):.0f} % of the values for "
             f"independent Gaussian draws; for the variance they run from {v_lo[lo]:.3g} to {v_hi[lo]:.3g} at batch "
             f"{sizes[lo]} and from {v_lo[hi]:.3g} to {v_hi[hi]:.3g} at batch {sizes[hi]}. This unit's batch "
             f"variances fall inside them in {inside['vars'][lo]} and {inside['vars'][hi]} of the "
             f"mini-batches, its batch means in {inside['means'][lo]} and {inside['means'][hi]}")
    return text + "."


def band_coverage(rec: Mapping, key: str) -> np.ndarray:
    """Per batch size (B,), the fraction of the finite sampled ``rec[key]`` inside the drawn band, ends
    included: ``"means"`` between ``"mean_band_lo"`` and ``"mean_band_hi"``, ``"vars"`` between
    ``"var_band_lo"`` and ``"var_band_hi"``."""
    band = {"means": "mean", "vars": "var"}[key]
    values = np.asarray(rec[key], dtype=float)
    lo = np.asarray(rec[f"{band}_band_lo"], dtype=float)[:, None]
    hi = np.asarray(rec[f"{band}_band_hi"], dtype=float)[:, None]
    finite = np.isfinite(values)
    inside = finite & (values >= lo) & (values <= hi)
    with np.errstate(invalid="ignore", divide="ignore"):
        return inside.sum(axis=1) / finite.sum(axis=1)


def describe_train_vs_inference(rec: Mapping, momentum: Mapping | None) -> str:
    """Running vs batch statistics per batch size, and the momentum runs at ``batch``."""
    sizes = np.asarray(rec.get("batch_sizes", []), dtype=int)
    if "bn_before/test_err" not in rec or not len(sizes):
        return "The sweep has not finished yet."
    run = 1.0 - _mean_err(rec, "bn_before")
    bat = 1.0 - cf.seed_summary(rec["bn_before/test_err_batch"])[0]
    gap = np.abs(run - bat)
    j = int(np.nanargmax(np.where(np.isfinite(gap), gap, -1.0)))
    better = "running" if run[j] >= bat[j] else "batch"
    text = (f"The largest gap is at batch {sizes[j]}: BatchNorm scores {_pct(run[j])} with its running statistics "
            f"and {_pct(bat[j])} when each test batch of {sizes[j]} is normalized with its own statistics "
            f"(the {better} statistics do better there). A deployed model uses the running statistics "
            "(evaluation mode), which is what the main chart shows.")
    if momentum:
        acc = np.asarray(momentum["test_acc"], dtype=float)  # (M, n_rec)
        mom = np.asarray(momentum["momenta"], dtype=float)
        finals = []
        for i, m in enumerate(mom):
            row = acc[i][np.isfinite(acc[i])] if i < acc.shape[0] else np.array([])
            if row.size:
                finals.append(f"{_pct(float(row[-1]))} at momentum {m:g}")
        if finals:
            text += (f" At batch {momentum['batch']}, BatchNorm's final evaluation-mode accuracy is "
                     + ", ".join(finals) + ".")
    return text


def describe_non_iid(sorted_rec: Mapping, shuffled_rec: Mapping, batch: int) -> str:
    """Class-sorted batches: BN's loss vs its accuracy, and the others beside it."""
    runs, ref = sorted_rec["runs"], shuffled_rec["runs"]
    if "bn_before" not in runs:
        return "No BatchNorm run to show."
    bn = runs["bn_before"]
    bl = cf.smooth(bn["batch_loss"])
    bl = bl[np.isfinite(bl)]
    end_loss = float(bl[-1]) if bl.size else math.nan
    ref_bl = cf.smooth(ref["bn_before"]["batch_loss"]) if "bn_before" in ref else np.array([])
    ref_bl = ref_bl[np.isfinite(ref_bl)]
    text = (f"With class-sorted batches of {batch}, BatchNorm's training-mode mini-batch loss ends at "
            f"{end_loss:.3g}")
    if ref_bl.size:
        text += f" (shuffled: {float(ref_bl[-1]):.3g})"
    text += (f", while its test accuracy in evaluation mode is {_pct(bn['final_acc'])}"
             + (f" (shuffled: {_pct(ref['bn_before']['final_acc'])})" if "bn_before" in ref else "") + ". ")
    others = [n for n in ("ln", "gn", "brn") if n in runs]
    if others:
        text += "Beside it: " + ", ".join(f"{cf.NORM_LABEL[n]} {_pct(runs[n]['final_acc'])}" for n in others) + ". "
    if "none" in runs:
        a, r = runs["none"]["final_acc"], ref.get("none", {}).get("final_acc", math.nan)
        hurt = "hurt" if np.isfinite(r) and a < r - 0.02 else "do not hurt much"
        text += (f"Class-pure batches {hurt} the network without normalization too: {_pct(a)} against "
                 f"{_pct(r)} with shuffled batches (each step pulls toward one class).")
    return text.strip()


def describe_online(rec: Mapping) -> str:
    """Online learning: who learned how much in one pass, and who refused."""
    runs, errors = rec["runs"], rec["errors"]
    parts = []
    if runs:
        finals = {n: float(h["test_acc"][np.isfinite(h["test_acc"])][-1]) for n, h in runs.items()
                  if np.any(np.isfinite(h["test_acc"]))}
        parts.append(f"After one pass over {rec['n_train']} training samples, one at a time, "
                     + ", ".join(f"{cf.NORM_LABEL[n]} reaches {_pct(a)}" for n, a in finals.items()))
    if errors:
        parts.append(f"{_names(list(errors))} cannot take a single step: a batch of one sample has no batch variance")
    return "; ".join(parts) + "." if parts else "Nothing trained."


def describe_renorm(rec: Mapping, batch: int, order: str, lr: float | None = None, scaled: bool = True) -> str:
    """Batch Renorm vs BN at ``batch``, and how often r and d hit their limits."""
    bn, brn = rec["bn/test_acc"], rec["brn/test_acc"]
    verdict = ("better than" if brn > bn + 0.01 else "worse than" if brn < bn - 0.01 else "about the same as")
    at_lr = "" if lr is None else (f" (learning rate {lr:g} at batch 32, scaled)" if scaled else
                                   f" (learning rate {lr:g} at every batch size)")
    # One seeded run of its own (renorm_dynamics), so BatchNorm's number here differs a little from
    # the seed means of the sections above: say so, or a student sees two values for one setting.
    text = (f"On {ORDER_LABEL[order]} of {batch}{at_lr}, in this section's own run (one seed, where the "
            f"sections above average {len(SEEDS)}), Batch Renorm's test accuracy in evaluation mode is "
            f"{_pct(brn)}, {verdict} BatchNorm's {_pct(bn)}.")
    for arm, label in (("bn", "BatchNorm"), ("brn", "Batch Renorm")):
        k = int(rec.get(f"{arm}/diverged_at", -1))
        if k >= 0:
            text += f" {label} diverged at step {k} and stopped there (its accuracy is the last one before)."
    r_lo, r_hi = np.asarray(rec["r_lo"], dtype=float), np.asarray(rec["r_hi"], dtype=float)
    d_lo, d_hi = np.asarray(rec["d_lo"], dtype=float), np.asarray(rec["d_hi"], dtype=float)
    ok = np.isfinite(r_lo) & np.isfinite(r_hi) & np.isfinite(d_lo) & np.isfinite(d_hi)
    if ok.any():
        r_max, d_max = rec["r_max"], rec["d_max"]
        text += (f" Over training, r ranged over [{_num(np.min(r_lo[ok]))}, {_num(np.max(r_hi[ok]))}] and d over "
                 f"[{_num(np.min(d_lo[ok]))}, {_num(np.max(d_hi[ok]))}] across layer 1's units")
        tol = 1e-6
        r_clip = np.mean((r_hi[ok] >= r_max - tol) | (r_lo[ok] <= 1.0 / r_max + tol))
        d_clip = np.mean((d_hi[ok] >= d_max - tol) | (d_lo[ok] <= -d_max + tol))
        text += (f"; some unit's r sat on its limit in {100 * r_clip:.0f} % of the steps and some unit's d in "
                 f"{100 * d_clip:.0f} %.")
        if r_max == 1.0 and d_max == 0.0:
            text += " With r_max = 1 and d_max = 0, Batch Renorm is BatchNorm exactly."
    return text


def describe_cost(rec: Mapping) -> str:
    """Measured time per step and memory, relative to no normalization."""
    norms, ms, kib = list(rec["norms"]), np.asarray(rec["ms"]), np.asarray(rec["kept_kib"])
    if not norms or "none" not in norms:
        return "No timing to compare."
    base = ms[norms.index("none")]
    rel = ", ".join(f"{cf.NORM_LABEL[n]} {ms[i]:.2g} ms ({ms[i] / base:.2f}×)" for i, n in enumerate(norms)
                    if n != "none" and base > 0)
    slow = norms[int(np.argmax(ms))]
    text = (f"At width {rec['width']} and batch {rec['batch']}, a step without normalization takes {base:.2g} ms; "
            f"{rel}. The slowest here is {cf.NORM_LABEL[slow]}.")
    big = norms[int(np.argmax(kib))]
    text += f" The normalization layers keep the most for backward with {cf.NORM_LABEL[big]}: {kib.max():.1f} KiB."
    return text


def describe_axes(rec: Mapping) -> str:
    """The highlighted set of the axes picture: its size, mean, variance and the number of sets."""
    n, c, h, w = np.asarray(rec["x"]).shape
    method = AX_LABEL[rec["method"]] + (f" with {rec['groups']} groups" if rec["method"] == "group" else "")
    return (f"{method}: the value at sample {rec['n']}, channel {rec['c']} shares its mean and variance with "
            f"{rec['count'] - 1} others ({rec['count']} values of {n * c * h * w}); that set has mean "
            f"{rec['mean']:.3g} and variance {rec['var']:.3g}, and the method uses {rec['n_sets']} separate "
            f"mean/variance pairs for this {n}×{c}×{h}×{w} tensor"
            + (" (one per channel: they mix the samples of the batch)." if rec["method"] == "batch" else
               " (none of them mixes samples: a batch of one works)."))


# --------------------------------------------------------------------------- closing table


def which_normalizer_table(sweep: Mapping | None, non_iid_sorted: Mapping | None, online: Mapping | None,
                           cost: Mapping | None) -> pd.DataFrame:
    """One row per norm, every number measured on this page (a dash where nothing was measured)."""
    rows = []
    sizes = np.asarray(sweep["batch_sizes"]) if sweep else np.array([])
    for n in NORMS:
        row = {"normalizer": cf.NORM_LABEL[n]}
        if sweep is not None and n in sweep.get("norms", ()) and len(sizes):
            err = _mean_err(sweep, n)
            row[f"test error at batch {int(sizes[0])}"] = _pct(err[0]) if np.isfinite(err[0]) else "–"
            row[f"test error at batch {int(sizes[-1])}"] = _pct(err[-1]) if np.isfinite(err[-1]) else "–"
        if non_iid_sorted is not None:
            r = non_iid_sorted["runs"].get(n)
            row["accuracy, class-sorted batches"] = _pct(r["final_acc"]) if r else "–"
        if online is not None:
            r = online["runs"].get(n)
            if r is not None and np.any(np.isfinite(r["test_acc"])):
                row["accuracy after one online pass"] = _pct(r["test_acc"][np.isfinite(r["test_acc"])][-1])
            else:
                row["accuracy after one online pass"] = "cannot train" if n in online["errors"] else "–"
        if cost is not None and n in cost["norms"]:
            row["time per step"] = f"{cost['ms'][list(cost['norms']).index(n)]:.2g} ms"
        row["same in training and inference"] = "no" if n in BATCH_STAT_NORMS else "yes"
        rows.append(row)
    return pd.DataFrame(rows)


def _leaders(values: Mapping[str, float], lowest: bool) -> tuple[list[str], float]:
    """The norms holding the best value (ties within 0.05 points share it) and that value."""
    best = min(values.values()) if lowest else max(values.values())
    return [n for n in NORMS if n in values and abs(values[n] - best) < 5e-4], best


def _lead_phrase(names: list[str], what: str) -> str:
    if len(names) == 1:
        return f"{cf.NORM_LABEL[names[0]]} has the {what}"
    return f"{_names(names)} share the {what}"


def describe_table(sweep: Mapping, non_iid_sorted: Mapping, online: Mapping) -> str:
    """The closing table's verdicts, each computed from the table's own numbers."""
    parts = []
    sizes = np.asarray(sweep.get("batch_sizes", []))
    norms = [n for n in sweep.get("norms", ()) if np.isfinite(_mean_err(sweep, n)[0])] if len(sizes) else []
    if norms:
        names, best = _leaders({n: float(_mean_err(sweep, n)[0]) for n in norms}, lowest=True)
        parts.append(f"at batch {int(sizes[0])} {_lead_phrase(names, 'lowest test error')} ({_pct(best)})")
    runs = non_iid_sorted.get("runs", {})
    if runs:
        names, best = _leaders({n: float(r["final_acc"]) for n, r in runs.items()}, lowest=False)
        parts.append(f"with class-sorted batches {_lead_phrase(names, 'highest accuracy')} ({_pct(best)})")
    if online.get("runs"):
        parts.append(f"online, only {_names([n for n in NORMS if n in online['runs']])} can train")
    if not parts:
        return "Nothing measured yet."
    text = "Measured on this page: " + "; ".join(parts) + "."
    return text[0].upper() + text[1:]


def cost_table(cost: Mapping) -> pd.DataFrame:
    """What each network's normalization layers keep for the backward pass."""
    return pd.DataFrame({"normalization": [cf.NORM_LABEL[n] for n in cost["norms"]],
                         "arrays kept for backward": [cost["arrays"][n] or "–" for n in cost["norms"]],
                         "memory [KiB]": [f"{k:.1f}" for k in cost["kept_kib"]]})


__all__ = [
    "BATCH_SIZES", "EXPERIMENTS", "PARAMS", "Settings", "describe_axes", "describe_batch_stats", "describe_cost",
    "describe_non_iid", "describe_online", "describe_renorm", "describe_small_batches",
    "band_coverage", "describe_train_vs_inference", "divisors", "key_controls", "nearest_divisor", "other_controls",
    "reconcile", "settings", "sweep_record", "which_normalizer_table",
]


# --------------------------------------------------------------------------- formulas and prose

LATEX = {
    "small": r"""
\mu_\mathcal{B} = \frac1m\sum_{i=1}^m x_i,\quad
\sigma_\mathcal{B}^2 = \frac1m\sum_{i=1}^m (x_i-\mu_\mathcal{B})^2,\quad
\hat x_i = \frac{x_i-\mu_\mathcal{B}}{\sqrt{\sigma_\mathcal{B}^2+\epsilon}},\qquad
\eta(m) = \eta_{32}\,\frac{m}{32}\ \text{(linear scaling)},\quad \text{updates per epoch} = \Big\lfloor\frac{n}{m}\Big\rfloor
""",
    "noise": r"""
\begin{gathered}
\operatorname{sd}(\mu_\mathcal{B}) = \frac{\sigma}{\sqrt m},\qquad
\operatorname{E}[\sigma_\mathcal{B}^2] = \frac{m-1}{m}\,\sigma^2,\qquad
\frac{\operatorname{sd}(\sigma_\mathcal{B}^2)}{\operatorname{E}[\sigma_\mathcal{B}^2]} \approx \sqrt{\frac{2}{m-1}}
\ \text{(Gaussian data)},\quad \approx\sqrt{\frac{2}{m-1}+\frac{\kappa-3}{m}}\ \text{(kurtosis } \kappa\text{)}
\\[4pt]
\text{Gaussian data: }\ \frac{m\,\sigma_\mathcal{B}^2}{\sigma^2}\sim\chi^2_{m-1}
\ \Rightarrow\ P\!\left(\frac{\sigma^2}{m}\,\chi^2_{m-1}(0.1587) \le \sigma_\mathcal{B}^2 \le
\frac{\sigma^2}{m}\,\chi^2_{m-1}(0.8413)\right) = 0.6827
= P\!\left(|\mu_\mathcal{B}-\mu| \le \frac{\sigma}{\sqrt m}\right)
\\
\chi^2_{m-1}(q):\ \text{the } q\text{-quantile of the chi-square distribution with } m-1 \text{ degrees of freedom}
\end{gathered}
""",
    "inference": r"""
\hat\mu \leftarrow (1-\alpha)\,\hat\mu + \alpha\,\mu_\mathcal{B},\quad
\hat\sigma^2 \leftarrow (1-\alpha)\,\hat\sigma^2 + \alpha\,\tfrac{m}{m-1}\,\sigma_\mathcal{B}^2,\qquad
y_{\text{eval}} = \gamma\,\frac{x-\hat\mu}{\sqrt{\hat\sigma^2+\epsilon}}+\beta,\qquad
\operatorname{Var}(\hat\mu) \approx \frac{\alpha}{2-\alpha}\,\frac{\sigma^2}{m}
""",
    "non_iid": r"""
\text{batch of class } c:\ \mu_\mathcal{B}\approx\mu_c,\ \sigma_\mathcal{B}\approx\sigma_c
\ \Rightarrow\ \hat x = \frac{x-\mu_c}{\sigma_c}\ \text{in training},\qquad
\hat x = \frac{x-\hat\mu}{\hat\sigma},\ \ \hat\mu \approx \textstyle\sum_c p_c\,\mu_c\ \text{in evaluation}
""",
    "online": r"""
m = 1:\ \ \mu_\mathcal{B} = x,\ \ \sigma_\mathcal{B}^2 = 0\ \Rightarrow\ \hat x = 0;\qquad
\text{LN: } \mu_i = \frac1C\sum_{j=1}^{C} x_{ij},\ \ \sigma_i^2 = \frac1C\sum_{j=1}^{C}(x_{ij}-\mu_i)^2;\qquad
\text{GN: the same over each group of } C/G \text{ units}
""",
    "renorm": r"""
\sigma_\mathcal{B}=\sqrt{\sigma_\mathcal{B}^2+\epsilon},\ \ \sigma=\sqrt{\hat\sigma^2+\epsilon},\quad
r=\operatorname{clip}_{[1/r_{\max},\,r_{\max}]}\Big(\frac{\sigma_\mathcal{B}}{\sigma}\Big),\quad
d=\operatorname{clip}_{[-d_{\max},\,d_{\max}]}\Big(\frac{\mu_\mathcal{B}-\hat\mu}{\sigma}\Big),\quad
\hat x=\frac{x-\mu_\mathcal{B}}{\sigma_\mathcal{B}}\,r+d
""",
    "cost": r"""
\text{BN forward: } 2\ \text{reductions over the batch} + 1\ \text{scale per unit};\quad
\text{kept for backward: } x-\mu_\mathcal{B}\ (m\times C),\ 1/\sigma_\mathcal{B}\ (C);\quad
\text{LN/GN: } 1/\sigma\ \text{per sample (and group)}
""",
    "axes": r"""
\mu_{S} = \frac{1}{|S|}\sum_{k\in S} x_k,\ \ \sigma_{S}^2 = \frac{1}{|S|}\sum_{k\in S}(x_k-\mu_S)^2:\quad
S_{\text{BN}} = \{(\cdot, c, \cdot, \cdot)\},\ S_{\text{LN}} = \{(n, \cdot, \cdot, \cdot)\},\
S_{\text{IN}} = \{(n, c, \cdot, \cdot)\},\ S_{\text{GN}} = \{(n, g\text{'s } C/G \text{ channels}, \cdot, \cdot)\}
""",
}

PROSE = {
    "small": (
        "Every run trains a 2 × {width} ReLU network on 8×8 digits for the same {epochs} epochs, so a batch of 2 "
        "takes 64 times as many updates as a batch of 128. With the linear scaling rule (the default, as in Wu & He "
        "and Goyal et al.) the learning rate grows with the batch, so each epoch moves the weights about as far "
        "whatever the batch size, and what is left to differ is how noisy the batch statistics are. Turn the switch "
        "off and one learning rate serves every batch size: a batch of 2 then takes 64 times as many steps of the "
        "same size per epoch as a batch of 128, so the small batches take steps too large for them or the large "
        "ones too few, depending on the rate you pick, and the curves no longer isolate the normalization (watch "
        "the curve without normalization). "
        "The right panel is published context, not measured here: Wu & He (2018), Figure 1, ResNet-50 on ImageNet, "
        "validation error against images per GPU."
    ),
    "noise": (
        "A BatchNorm layer in training divides by the statistics of the batch it is given, not of the data. These "
        "are estimates from m samples: the smaller the batch, the more every sample's normalized value depends on "
        "which other samples happened to share its batch. The unit is a real one: the pre-activation of unit 0 of "
        "the first hidden layer of a ReLU network trained for 300 steps without normalization, over the training "
        "set; batches are drawn the way training draws them. The dashed lines are closed forms for Gaussian "
        "data: the interval that holds the central 68 % of the batch means (μ ± σ/√m) and of the (biased) batch "
        "variances. For the variance, m σ²_B/σ² follows a chi-square distribution with m−1 degrees of freedom, "
        "so the lines are its 15.9 % and 84.1 % quantiles times σ²/m: never below zero, and reaching further above the "
        "median than below it, the more so the smaller m (the chi-square's skew). The batch variance's own mean is "
        "(m−1)/m σ², below the population value. This unit's distribution need not be Gaussian: the sentence above says "
        "how many of its sampled batch statistics the lines actually hold, and compares the measured spread of "
        "the variance with the Gaussian formula √(2/(m−1)) and with the formula corrected for the unit's "
        "measured kurtosis."
    ),
    "inference": (
        "In evaluation mode BatchNorm uses running averages of the batch statistics collected in training, so a "
        "prediction does not depend on the other test samples. Evaluated instead with each test batch's own "
        "statistics (training mode, in batches of the training size), the same network gives different answers. "
        "The momentum α sets how many recent batches the running averages remember (about 2/α): a small α "
        "averages out the batch noise but lags behind the changing weights; a large α follows the last few, noisy "
        "batches. A deployed model, predicting one sample at a time, can only use the running statistics."
    ),
    "non_iid": (
        "Sort the training set by class and cut it into batches: every batch holds one digit (the batches are "
        "visited in a new random order each epoch; a class's leftover samples that do not fill a batch sit "
        "out that epoch, a different random few each epoch). In training, BatchNorm then normalizes each class by that class's own statistics, and "
        "subtracting the class mean hides exactly the information the network needs. The running statistics average over all classes, so evaluation mode feeds the next layer "
        "inputs it never saw in training. LayerNorm and GroupNorm normalize each sample by itself and are "
        "unaffected by what else is in the batch; the network without normalization is not immune either: "
        "a run of steps on one class pulls the output toward that class. These runs use a learning rate of "
        "{lr:g} at batch 32, a tenth of the sweep's by default: at 0.05 with momentum 0.9, class-pure batches "
        "drive every ReLU network here, normalized or not, into dead units and chance accuracy (PyTorch gives "
        "the same numbers from the same weights and batches); try it in the sidebar."
    ),
    "online": (
        "Online learning updates the model after every single sample (a stream, a robot, a user's clicks). With a "
        "batch of one, the batch mean is the sample itself and the batch variance is 0: BatchNorm would map every "
        "input to 0, so it refuses (PyTorch: \"Expected more than 1 value per channel when training\"). LayerNorm "
        "and GroupNorm compute their statistics over the units of one sample and train as usual. One pass over "
        "the training set, learning rate {lr:g} per sample ({rule}), 2 seeds."
    ),
    "renorm": (
        "Batch Renormalization (Ioffe 2017) keeps BatchNorm's batch statistics for the gradient but corrects each "
        "batch's output toward what the running statistics would give: r and d are treated as constants in the "
        "backward pass and clipped to the limits; r_max = 1 and d_max = 0 make it exactly BatchNorm. (Ioffe relaxes "
        "the limits step by step during training; here they are fixed.) Where the batch is merely small, the "
        "corrections pull training toward what inference will do. Where the batches are class-sorted, the running "
        "statistics themselves average over the classes, and the clipped r and d may do only part of the work. Try "
        "both orders and several limits: the sentence under the chart says what happened."
    ),
    "cost": (
        "Each normalization layer adds reductions and element-wise work to every step, forward and backward, and "
        "keeps arrays for the backward pass. Measured on this machine, now, at the current width and batch size "
        "(the median of repeated steps; on a shared server the figures move with the load). At inference BatchNorm's "
        "fixed statistics can be folded into the neighbouring linear layer and cost nothing; LayerNorm and GroupNorm "
        "cannot be folded, because their statistics depend on each input."
    ),
    "axes": (
        "Convolutional activations have four axes: samples N, channels C, height H and width W. The four "
        "normalizers differ only in the set of values that share one mean and variance (Wu & He 2018, Figure 2). "
        "The tensor is real: {n} digits, each filtered by six fixed 3×3 filters ({filters}). Pick a method and a "
        "value; the outlined maps are its set, computed by bn_core.axes."
    ),
}
