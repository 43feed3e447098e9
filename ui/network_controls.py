"""Chapter 3's sidebar, the settings it makes, and the glue between them and the runs.

:func:`controls` draws every control of the chapter into the sidebar (the learning rate first,
the rest in groups) and :func:`settings` turns the session's values into one small
:class:`Settings` record: the main runs' :class:`~bn_core.train.TrainConfig`, where batch norm
sits, the probed layer, and the sweeps' and the deep network's switches. From it,
:func:`sweep_plan` and :func:`deep_plan` derive the configurations of the robustness sweeps and
of the deep network; :func:`cost_guard` (and :func:`may_train`, :func:`sweeps_may_run`,
:func:`deep_may_train`) keep an expensive configuration from training unannounced;
:func:`report_runs` and :func:`report_deep_runs` say what a run could not do. The chapter's
formulas and fixed texts are here as data too, so ``pages/3_bn-in-network.py`` reads as the
chapter's outline. Figures, cached runs and the ``describe_*`` captions stay in
:mod:`ui.network`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import streamlit as st

from bn_core.train import TrainConfig
from ui import network as net
from ui import page, state

LR_OPTIONS, INIT_OPTIONS, MAX_DEPTH = net.LR_OPTIONS, net.INIT_OPTIONS, net.MAX_DEPTH
SWEEP_MAX_STEPS, DEEP_MAX_STEPS, RECORDS_PER_RUN = net.SWEEP_MAX_STEPS, net.DEEP_MAX_STEPS, net.RECORDS_PER_RUN
# session-state keys (not URL params) remembering that the user asked to run an expensive config
APPROVED_TRAIN = "_c3_approved_train"
APPROVED_SWEEPS = "_c3_approved_sweeps"
APPROVED_DEEP = "_c3_approved_deep"
PARAM = {p.key: p for p in net.PARAMS}


# --------------------------------------------------------------------------- formulas and fixed texts

BN_LATEX = r"""
\mu_\mathcal{B} = \frac{1}{m}\sum_{i=1}^{m} x_i,\qquad
\sigma_\mathcal{B}^2 = \frac{1}{m}\sum_{i=1}^{m} (x_i-\mu_\mathcal{B})^2,\qquad
\hat x_i = \frac{x_i-\mu_\mathcal{B}}{\sqrt{\sigma_\mathcal{B}^2+\epsilon}},\qquad
y_i = \gamma\,\hat x_i + \beta
"""

SIGMOID_LATEX = r"""
\sigma'(z) = \sigma(z)\,\bigl(1-\sigma(z)\bigr) \le \tfrac14,\qquad
\sigma'(\pm 2) \approx 0.10,\qquad \sigma'(\pm 5) \approx 0.0066
"""

CHAIN_LATEX = r"""
\frac{\partial \ell}{\partial h_{l-1}} = W_l^{\top}\,\Bigl(\sigma'(z_l)\odot \frac{\partial \ell}{\partial h_l}\Bigr)
\quad\Longrightarrow\quad
\Bigl\|\frac{\partial \ell}{\partial h_{0}}\Bigr\| \le \prod_{l=1}^{L} \tfrac14\,\|W_l\|\;
\Bigl\|\frac{\partial \ell}{\partial h_{L}}\Bigr\|
"""

GRAD_FLOW_TEXT = {
    "sigmoid": (
        "**What to look for.** With sigmoid units and small weights, without BN the gradient norm "
        "falls by orders of magnitude from the output layer (right) to the first layer (left): the "
        "first layers barely learn (with std 0.1 and 10 layers, about a millionfold). Raise the "
        "initial weight std to 1 and the fall nearly disappears, at the price of saturated units. "
        "With BN the norms stay within a small factor of each other at every scale."
    ),
    "tanh": (
        "**What to look for.** tanh has slope 1 at 0 (the sigmoid only ¼), so here the weights "
        "decide. With std 0.1 (times √width = 10, a gain of about 1 per layer) the plain network "
        "passes its gradient on roughly evenly but weakly; with std 0.03 signal and gradient shrink "
        "to almost nothing in every layer; with std 0.3 or 1 the gradient *grows* towards the input "
        "(it explodes: about 3000-fold over 10 layers at std 1). With BN the norms stay within a "
        "small factor of each other at every scale: try it on the initial-weight slider above."
    ),
}

BATCH_ONE_TEXT = (
    "**Batch norm cannot train on a batch of one sample.** With $m = 1$ the batch mean is the "
    "sample itself and the batch variance is $\\sigma_\\mathcal{B}^2 = 0$, so "
    "$\\hat x = (x-\\mu_\\mathcal{B})/\\sqrt{0+\\epsilon} = 0$ for *every* input: the layer erases what "
    "it is given and no gradient reaches the layers below. PyTorch refuses with *\"Expected more than "
    "1 value per channel when training\"*; so does this lab. Only the plain network is shown; choose a "
    "batch size of 2 or more to compare."
)

#: The page's longer explanations, by section (``{name}`` fields are filled in by the page).
PROSE = {
    "lead": (
        "Two copies of one network, with the same initial weights and the same mini-batches, "
        "learn to read handwritten digits: one plain, one with batch normalization."),
    "curves": (
        "Both networks start from the *same* weights and see the same mini-batches; only the "
        "normalization differs: the experiment of Figure 1(a) of Ioffe & Szegedy (2015), here on 8×8 "
        "digits. The *Try this* buttons in the sidebar set up the telling cases: a large learning rate, "
        "a batch of two, large ReLU weights."),
    "curves_more": (
        "Whether a run diverged is judged on the loss it trains on, the mini-batch loss in training "
        "mode. The curves are evaluations in evaluation mode, where BN uses its running statistics; "
        "at step 0 these are still mean 0 and variance 1, so a BN network with large initial weights "
        "can start from a huge evaluation loss that says nothing about how it trains. An evaluation "
        "that is not even a finite number is left out of the chart. Each run is evaluated at step 0, every "
        "{eval_every} steps and at the end, on the whole training and test sets."),
    "bn_transform": (
        "Evaluation uses running averages of μ and σ² collected during training instead of the "
        "batch's, so a prediction does not depend on the other examples."),
    "percentiles_more": (
        "Each band is the middle 70 % (15th to 85th percentile) of one unit's input to the nonlinearity "
        "over the test images (evaluation mode); the line is the median. Without BN the band drifts and "
        "changes width as the weights below change, and every layer above chases a moving target (what "
        "Ioffe & Szegedy called *internal covariate shift*). With BN before the activation the unit sees "
        "inputs with a learned mean $\\beta$ and spread $\\gamma$, whatever happens below. (At step 0 "
        "the BN network is evaluated with its initial running statistics, mean 0 and variance 1, so its "
        "first point is not normalized yet.) A sigmoid only passes gradient where its input is small:"),
    "percentiles_after": (
        "so keeping the input in a range of a few units around 0 keeps the gradient alive. "),
    "percentiles_bn_after": (
        "*You chose BN after the activation: the input to the nonlinearity is then not "
        "normalized, and its band can drift in both networks.*"),
    "sweeps": (
        "One run is one data point. Here both networks train for every learning rate on the "
        "slider's log grid (other settings as above), and again for every initial weight std. "
        "BN before the activation makes the network's output invariant to the scale of the weights "
        "feeding each normalized layer, so it can tolerate learning rates and initial scales that stall "
        "or blow up the plain network."),
    "sweeps_more": (
        "A ✕ marks a run that diverged, drawn at its last accuracy before it blew up (at chance level if "
        "its loss exploded before the first update); hover for the step. The dashed vertical line is "
        "the current setting of the main run."),
    "gradients_more": (
        "Backpropagation multiplies by the activation's slope once per layer. A sigmoid's slope is "
        "at most ¼, so with small weights the gradient shrinks geometrically on its way down to the "
        "first layers (it *vanishes*):"),
    "gradients_after": (
        "Batch norm rescales each layer's input to unit spread, which keeps every factor near "
        "one. The deep network's depth and activation are in the sidebar (other settings as "
        "above).\n\n"),
    "gradients_off": (
        "Switch on *Also train the deep networks* in the sidebar to see the gradient norms during "
        "training."),
    "gap": (
        "During training each example is normalized with the statistics of the *other* examples in its "
        "batch, a little noise that changes from step to step, somewhat like dropout; Ioffe & Szegedy could "
        "drop dropout and reduce weight decay. A network that has not yet fitted the training set has a "
        "small gap for the wrong reason, so the right panel compares the gaps against training accuracy."),
    "cost": (
        "Each BN layer adds a mean, a variance and a rescale per feature on the forward pass and two more "
        "per-feature sums on the backward pass, so a step costs more; the time to reach a given accuracy "
        "is what matters. At evaluation time BN uses fixed statistics, so it can be folded into the "
        "neighbouring linear layer and then costs nothing."),
}

#: The two robustness sweeps, side by side: (field, chart title, x-axis title, what it varies).
SWEEPS = (
    ("lr", "Test accuracy vs learning rate", "learning rate [per step]", "learning rate"),
    ("init_scale", "Test accuracy vs initial std", "initial weight std [weight units]", "initial weight std"),
)


# --------------------------------------------------------------------------- the sidebar

def _probe_layer_widget(ss) -> None:
    """The probed-layer slider: it shows the layer the chart uses; a request deeper than the
    network is kept (for a deeper network later) and shown as the deepest layer, disabled."""
    depth, asked = int(ss["c3_depth"]), int(ss["c3_layer"])
    if depth > 1 and asked <= depth:
        st.slider("Hidden layer to probe", 1, depth, key="c3_layer")
        return
    state.hold([PARAM["c3_layer"]])
    if depth > 1:
        st.slider("Hidden layer to probe", 1, depth, value=depth, disabled=True,
                  help=f"The link asks for layer {asked}; this network has {depth}, so its last one is probed.")
    else:
        st.caption("Probed hidden layer: 1, the network's only one.")


def controls() -> None:
    """The chapter's controls, in the sidebar: the key control first, the rest in groups."""
    ss = st.session_state
    with page.controls():
        st.select_slider(net.LR_LABEL, options=LR_OPTIONS, key="c3_lr",
                         help="Log-spaced: from 0.001 (slow for everyone) to 30 (only a normalized "
                              "network copes).")
        st.number_input("Batch size", min_value=1, max_value=net.N_TRAIN, step=1, key="c3_batch",
                        help=f"1 to {net.N_TRAIN} (the whole training set). Try 2.")
        with st.expander("Network"):
            st.slider("Hidden layers (depth)", 1, MAX_DEPTH, key="c3_depth")
            st.slider("Units per hidden layer (width)", 2, 256, key="c3_width")
            st.selectbox("Activation", net.ACTIVATION_CHOICES, key="c3_act")
            st.select_slider("Initial weight std", options=INIT_OPTIONS, key="c3_init",
                             help="Weights start as N(0, std²); biases at 0. Log-spaced values.")
            st.radio("Where batch norm sits in the BN network", net.PLACEMENTS, key="c3_place",
                     format_func=net.PLACEMENT_LABEL.get)
        with st.expander("Training"):
            st.number_input("Training steps", min_value=1, max_value=net.MAX_STEPS, step=100, key="c3_steps")
            st.radio("Optimizer", net.OPTIMIZER_CHOICES, key="c3_opt", horizontal=True,
                     format_func=net.OPTIMIZER_LABEL.get)
            st.number_input("Seed", min_value=0, max_value=10_000, step=1, key="c3_seed")
        with st.expander("Probe, sweeps and the deep network"):
            _probe_layer_widget(ss)
            st.toggle("Run the robustness sweeps", key="c3_sweeps",
                      help="36 training runs (both networks at every learning rate and initial weight std).")
            st.slider("Hidden layers of the deep network", 2, 12, key="c3_gdepth")
            st.radio("Its activation", ("sigmoid", "tanh"), key="c3_gact", horizontal=True)
            st.toggle("Also train the deep networks", key="c3_gtrain",
                      help=f"Trains both deep networks with the settings above (at most {DEEP_MAX_STEPS} "
                           "steps) and plots every layer's gradient norm during training.")


# --------------------------------------------------------------------------- the settings

@dataclass(frozen=True)
class Settings:
    """The chapter's settings after validation (see ``ui.network.PARAMS`` for ranges)."""

    base: TrainConfig  # the main runs, norm "none": the BN arm is ``replace(base, norm=placement)``
    placement: str  # where batch norm sits in the BN network (a key of ui.network.PLACEMENT_LABEL)
    layer: int  # the probed hidden layer: the one asked for, at most the network's depth
    sweeps: bool  # run the robustness sweeps
    deep_depth: int  # hidden layers of the deep network
    deep_activation: str  # its activation ("sigmoid" or "tanh")
    deep_train: bool  # also train the deep networks


def base_config(ss) -> TrainConfig:
    """The main runs' :class:`TrainConfig` (norm "none") from the session's control values."""
    steps = int(ss["c3_steps"])
    return TrainConfig(
        depth=int(ss["c3_depth"]), width=int(ss["c3_width"]), activation=ss["c3_act"], norm="none",
        init_scale=float(ss["c3_init"]), lr=float(ss["c3_lr"]), batch_size=int(ss["c3_batch"]),
        steps=steps, optimizer=ss["c3_opt"], seed=int(ss["c3_seed"]),
        eval_every=max(1, steps // RECORDS_PER_RUN),
    )


def settings(ss) -> Settings:
    """The :class:`Settings` of the session's (restored, validated) control values."""
    base = base_config(ss)
    return Settings(base=base, placement=ss["c3_place"], layer=min(int(ss["c3_layer"]), base.depth),
                    sweeps=bool(ss["c3_sweeps"]), deep_depth=int(ss["c3_gdepth"]),
                    deep_activation=ss["c3_gact"], deep_train=bool(ss["c3_gtrain"]))


# --------------------------------------------------------------------------- expensive runs

def cost_guard(what: str, seconds: float, threshold: float, drivers: str, approved_key: str,
               approval: object, button: str) -> bool:
    """True if the run may start: cheap enough, or the user pressed "… anyway" for this config
    (:func:`ui.page.cost_gate` with this chapter's warning)."""
    return page.cost_gate(seconds, threshold,
                          f"**{what} would take {net.format_seconds(seconds)}** on this machine, so it has not "
                          f"started. What makes it expensive: {drivers}. Lower the steps, the batch size, the "
                          "width or the depth, or start it anyway.",
                          approved_key, approval, button, f"{approved_key}_button")


def may_train(cfg: Settings) -> bool:
    """:func:`cost_guard` for the main runs (both networks; the plain one alone on a batch of one)."""
    base = cfg.base
    arms = len(net.arm_norms(base.batch_size, cfg.placement))
    return cost_guard("Training both networks", net.estimate_seconds(base, arms=arms), net.COST_THRESHOLD_S,
                      net.cost_drivers(base), APPROVED_TRAIN, (base, cfg.placement), "Train anyway")


# --------------------------------------------------------------------------- the main runs

def report_runs(results: dict, errors: dict, base: TrainConfig, outcome: dict) -> None:
    """What each main run could not do (refused, diverged), then the final accuracies and losses
    as metrics; ``outcome`` is :func:`ui.network.describe_outcome` of the same runs."""
    for arm in net.ARMS:
        label = net.ARM_LABEL[arm]
        if arm in errors:
            if arm == "bn" and base.batch_size == 1:
                st.warning(BATCH_ONE_TEXT, icon=":material/block:")
                st.caption(f"The core's message: {errors[arm]}")
            else:
                st.error(f"The network {label} cannot train with these settings: {errors[arm]}")
        elif results[arm].diverged_at is not None:
            res = results[arm]
            reason = res.message.split(": ", 1)[-1]
            shown = ("It has no record to chart." if res.diverged_at == 0 else
                     "Its charts show the data up to there.")
            st.error(f"The network {label} **diverged at step {res.diverged_at}** and stopped: {reason}. "
                     f"{shown} {net.divergence_advice(res.diverged_at)}", icon=":material/warning:")
    if results:
        cols = st.columns(4)
        for col, arm in zip(cols, net.ARMS, strict=False):
            if arm not in results:
                col.metric(f"Final test accuracy {net.ARM_LABEL[arm]}", "—")
                continue
            acc = net.final_value(results[arm].history, "test_acc")
            if results[arm].diverged_at is not None:
                col.metric(f"Final test accuracy {net.ARM_LABEL[arm]}", "diverged",
                           f"at step {results[arm].diverged_at}", delta_color="off", delta_arrow="off")
                continue
            delta, colour = None, "normal"
            if arm == "bn" and "plain" in results and acc is not None:
                plain = net.final_value(results["plain"].history, "test_acc")
                if plain is not None and outcome["delta_ok"]:
                    delta = f"{100 * (acc - plain):+.1f} points vs plain"
                elif outcome["bn_collapsed"]:  # a collapse never reads as a gain
                    delta, colour = "collapsed: see chapter 4", "inverse"
            col.metric(f"Final test accuracy {net.ARM_LABEL[arm]}", "—" if acc is None else f"{acc:.3f}", delta,
                       delta_color=colour, delta_arrow="off" if outcome["bn_collapsed"] and arm == "bn" else "auto")
        for col, arm in zip(cols[2:], net.ARMS, strict=False):
            if arm in results:
                loss = net.final_value(results[arm].history, "train_loss")
                col.metric(f"Final training loss {net.ARM_LABEL[arm]}",
                           "—" if loss is None else f"{loss:.3g}")


def percentiles_text(placement: str) -> str:
    """The text after the sigmoid's formula, with a note when BN sits after the activation."""
    return PROSE["percentiles_after"] + (PROSE["percentiles_bn_after"] if placement == "bn_after" else "")


# --------------------------------------------------------------------------- the robustness sweeps

def sweep_values(field: str) -> tuple[float, ...]:
    """The values a sweep over ``field`` ("lr" or "init_scale") runs: the slider's log grid."""
    return LR_OPTIONS if field == "lr" else INIT_OPTIONS


@dataclass(frozen=True)
class SweepPlan:
    """The robustness sweeps at the current settings, and what the page says about their cost."""

    base: TrainConfig  # every sweep run's config but the swept field (steps capped, evaluated at the ends)
    norms: tuple[str, ...]  # one per arm, in the order of ui.network.ARMS (the plain one alone on a batch of one)
    runs: int  # training runs of both arms over both sweeps
    modelled: float  # estimated seconds of all ``runs`` from the configuration
    caption: str  # the status line under the section's prose


def sweep_plan(cfg: Settings, results: dict) -> SweepPlan:
    """The sweeps' configuration and cost line; the per-step cost is measured on ``results``
    (the main runs) when there are any, else modelled from the configuration."""
    base = cfg.base
    runs = 2 * (len(LR_OPTIONS) + len(INIT_OPTIONS))
    # Only the final accuracy matters here: evaluate at the start and the end only, and cap the
    # steps so a sweep at the largest settings stays minutes, not a quarter of an hour.
    sweep_steps = min(base.steps, SWEEP_MAX_STEPS)
    sweep_base = replace(base, steps=sweep_steps, eval_every=sweep_steps)
    loops = [float(np.sum(r.history["step_time"])) / max(len(r.history["step_time"]), 1)
             for r in results.values()]
    # estimate from the configuration (a pair of runs per sweep value, evaluations excluded)
    modelled = runs / 2 * net.estimate_seconds(sweep_base)
    if loops:  # per-step cost measured on the main runs (diverging runs stop earlier)
        cores = max(1, net.trainer().workers)  # the runs train in parallel, one per worker
        estimate = (f", up to about {1.2 * runs * sweep_steps * float(np.mean(loops)) / cores:.0f} s the first "
                    f"time on {cores} core{'s' if cores > 1 else ''}")
    else:
        estimate = f", {net.format_seconds(modelled)} the first time"
    capped = f" (capped at {SWEEP_MAX_STEPS})" if sweep_steps < base.steps else ""
    if cfg.sweeps:
        caption = f"{runs} training runs of {sweep_steps} steps each{capped}{estimate}; cached afterwards."
    else:
        caption = (f"Off: switch on *Run the robustness sweeps* in the sidebar ({runs} training runs of "
                   f"{sweep_steps} steps each{capped}{estimate}; cached afterwards).")
    norms = net.arm_norms(base.batch_size, cfg.placement)
    return SweepPlan(base=sweep_base, norms=norms, runs=runs, modelled=modelled, caption=caption)


def sweeps_may_run(plan: SweepPlan) -> bool:
    """Say so when only the plain network can sweep (a batch of one), then :func:`cost_guard`."""
    if plan.norms == ("none",):
        st.info("With a batch of one sample only the plain network can train: the sweeps show it alone.")
    norms = plan.norms
    return cost_guard("The sweeps", plan.modelled * len(norms) / 2, net.SWEEP_THRESHOLD_S,
                      f"{plan.runs // 2 * len(norms)} runs of " + net.cost_drivers(plan.base),
                      APPROVED_SWEEPS, (plan.base, norms), "Run the sweeps anyway")


def sweep(plan: SweepPlan, field: str, what: str) -> dict | None:
    """:func:`ui.network.sweep_cached` over ``field``; None, with a note, if it cannot run."""
    try:
        return net.sweep_cached(plan.base, field, sweep_values(field), plan.norms, f"Sweeping the {what}…")
    except ValueError as exc:
        st.info(f"This sweep cannot run with these settings: {exc}")
        return None


def current(cfg: Settings, field: str) -> float:
    """The main run's value of the swept ``field`` (the sweep chart's dashed line)."""
    return cfg.base.lr if field == "lr" else cfg.base.init_scale


# --------------------------------------------------------------------------- the deep network

@dataclass(frozen=True)
class DeepPlan:
    """The deep network of the gradient-flow section, trained and at initialization."""

    config: TrainConfig  # the deep network's training run (norm "none")
    at_init: TrainConfig  # the same network for the gradient norms at initialization
    norms: tuple[str, ...]  # one per arm, in the order of ui.network.ARMS (BN needs a batch of 2+)


def deep_plan(cfg: Settings) -> DeepPlan:
    """The deep network: the main settings with the deep depth and activation, steps capped."""
    base = cfg.base
    deep_steps = min(base.steps, DEEP_MAX_STEPS)
    deep = replace(base, depth=cfg.deep_depth, activation=cfg.deep_activation, steps=deep_steps,
                   eval_every=max(1, deep_steps // RECORDS_PER_RUN))
    norms = net.arm_norms(base.batch_size, cfg.placement)
    # The gradient at initialization does not depend on the learning rate, the steps or the
    # optimizer: one key for all of them, so moving the learning rate does not recompute it.
    at_init = replace(deep, lr=net.DEFAULT_LR, steps=1, eval_every=1, optimizer="sgd")
    return DeepPlan(config=deep, at_init=at_init, norms=norms)


def init_grad_norms(plan: DeepPlan) -> dict:
    """:func:`ui.network.init_grad_norms_cached` by norm; empty, with a note, if it cannot run."""
    try:
        return net.init_grad_norms_cached(plan.at_init, plan.norms)
    except ValueError as exc:
        st.info(f"Gradient norms cannot be computed with these settings: {exc}")
        return {}


def deep_may_train(cfg: Settings, plan: DeepPlan) -> bool:
    """:func:`cost_guard` for training the deep networks."""
    deep = plan.config
    return cost_guard("Training the deep networks", net.estimate_seconds(deep, arms=len(plan.norms)),
                      net.COST_THRESHOLD_S, net.cost_drivers(deep), APPROVED_DEEP, (deep, cfg.placement),
                      "Train the deep networks anyway")


def report_deep_runs(results: dict, errors: dict, deep: TrainConfig) -> None:
    """What each deep run could not do: refused (a batch of one for BN) or diverged."""
    for arm, msg in errors.items():
        if arm == "bn" and deep.batch_size < 2:
            st.info("Only the plain deep network trains on a batch of one sample (see above).")
        else:
            st.info(f"The deep network {net.ARM_LABEL[arm]} cannot train: {msg}")
    for arm, res in results.items():
        if res.diverged_at is not None:
            st.error(f"The deep network {net.ARM_LABEL[arm]} diverged at step {res.diverged_at}. "
                     + net.divergence_advice(res.diverged_at))
