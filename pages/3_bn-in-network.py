"""Chapter 3 · Batch norm in a network: the benefits of batch normalization, measured live.

Two copies of the same multilayer perceptron (same seed, same initial weights) train on
scikit-learn's digits, one plain and one with batch normalization; every chart compares them.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import numpy as np
import streamlit as st

from bn_core import train as train_module
from bn_core.layers import BatchNorm1d
from bn_core.train import TrainConfig
from ui import code, page, state
from ui import network as net

LR_OPTIONS, INIT_OPTIONS, MAX_DEPTH = net.LR_OPTIONS, net.INIT_OPTIONS, net.MAX_DEPTH
SWEEP_MAX_STEPS, DEEP_MAX_STEPS, RECORDS_PER_RUN = net.SWEEP_MAX_STEPS, net.DEEP_MAX_STEPS, net.RECORDS_PER_RUN
# session-state keys (not URL params) remembering that the user asked to run an expensive config
APPROVED_TRAIN = "_c3_approved_train"
APPROVED_SWEEPS = "_c3_approved_sweeps"
APPROVED_DEEP = "_c3_approved_deep"


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


def _settings_widgets() -> None:
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


def _base_config(ss) -> TrainConfig:
    steps = int(ss["c3_steps"])
    return TrainConfig(
        depth=int(ss["c3_depth"]), width=int(ss["c3_width"]), activation=ss["c3_act"], norm="none",
        init_scale=float(ss["c3_init"]), lr=float(ss["c3_lr"]), batch_size=int(ss["c3_batch"]),
        steps=steps, optimizer=ss["c3_opt"], seed=int(ss["c3_seed"]),
        eval_every=max(1, steps // RECORDS_PER_RUN),
    )


def _cost_guard(what: str, seconds: float, threshold: float, drivers: str, approved_key: str,
                approval: object, button: str) -> bool:
    """True if the run may start: cheap enough, or the user pressed "… anyway" for this config.

    An expensive config (e.g. from a crafted link, which clamps to the largest network) shows a
    warning with the estimate and a button instead of training for minutes unannounced.
    """
    ss = st.session_state
    if seconds <= threshold or ss.get(approved_key) == approval:
        return True
    box = st.empty()
    with box.container():
        st.warning(f"**{what} would take {net.format_seconds(seconds)}** on this machine, so it has not "
                   f"started. What makes it expensive: {drivers}. Lower the steps, the batch size, the "
                   "width or the depth, or start it anyway.", icon=":material/hourglass_top:")
        clicked = st.button(f"{button} (about {seconds:.0f} s)", key=f"{approved_key}_button")
    if clicked:
        ss[approved_key] = approval
        box.empty()  # the run starts now: the warning and the button go
        return True
    return False


def _report_runs(results: dict, errors: dict, base: TrainConfig, outcome: dict) -> None:
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


def _section_curves(results: dict, errors: dict, base: TrainConfig) -> None:
    outcome = net.describe_outcome(results, base.batch_size)
    page.chart(net.training_curves_chart(results), key="c3_fig_curves")
    page.see(outcome["text"])
    _report_runs(results, errors, base, outcome)
    page.prose(
        "Both networks start from the *same* weights and see the same mini-batches; only the "
        "normalization differs: the experiment of Figure 1(a) of Ioffe & Szegedy (2015), here on 8×8 "
        "digits. The *Try this* buttons in the sidebar set up the telling cases: a large learning rate, "
        "a batch of two, large ReLU weights.")
    with page.more("What the curves are: evaluations, and when a run counts as diverged"):
        st.markdown(
            "Whether a run diverged is judged on the loss it trains on, the mini-batch loss in training "
            "mode. The curves are evaluations in evaluation mode, where BN uses its running statistics; "
            "at step 0 these are still mean 0 and variance 1, so a BN network with large initial weights "
            "can start from a huge evaluation loss that says nothing about how it trains. An evaluation "
            f"that is not even a finite number is left out of the chart. Each run is evaluated at step 0, every "
            f"{base.eval_every} steps and at the end, on the whole training and test sets.")


def _section_percentiles(results: dict, base: TrainConfig, placement: str) -> None:
    st.subheader("Stable inputs to the nonlinearity")
    layer = min(int(st.session_state["c3_layer"]), base.depth)
    page.chart(net.activation_percentiles_chart(results, layer, base.activation, base.probe_unit, placement),
               key="c3_fig_pct")
    page.see(net.describe_percentiles(net.arms_of(results), layer))
    with page.more("How to read the bands, and why it matters for a sigmoid"):
        st.markdown(
            "Each band is the middle 70 % (15th to 85th percentile) of one unit's input to the nonlinearity "
            "over the test images (evaluation mode); the line is the median. Without BN the band drifts and "
            "changes width as the weights below change, and every layer above chases a moving target (what "
            "Ioffe & Szegedy called *internal covariate shift*). With BN before the activation the unit sees "
            "inputs with a learned mean $\\beta$ and spread $\\gamma$, whatever happens below. (At step 0 "
            "the BN network is evaluated with its initial running statistics, mean 0 and variance 1, so its "
            "first point is not normalized yet.) A sigmoid only passes gradient where its input is small:")
        st.latex(SIGMOID_LATEX)
        st.markdown(
            "so keeping the input in a range of a few units around 0 keeps the gradient alive. "
            + ("*You chose BN after the activation: the input to the nonlinearity is then not "
               "normalized, and its band can drift in both networks.*" if placement == "bn_after" else ""))


def _sweep_values(field: str) -> tuple[float, ...]:
    return LR_OPTIONS if field == "lr" else INIT_OPTIONS


def _section_robustness(results: dict, base: TrainConfig, placement: str) -> None:
    st.subheader("Robustness to the learning rate and the initialization")
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
    page.prose(
        "One run is one data point. Here both networks train for every learning rate on the "
        "slider's log grid (other settings as above), and again for every initial weight std. "
        "BN before the activation makes the network's output invariant to the scale of the weights "
        "feeding each normalized layer, so it can tolerate learning rates and initial scales that stall "
        "or blow up the plain network.")
    if not st.session_state["c3_sweeps"]:
        st.caption(f"Off: switch on *Run the robustness sweeps* in the sidebar ({runs} training runs of "
                   f"{sweep_steps} steps each{capped}{estimate}; cached afterwards).")
        return
    st.caption(f"{runs} training runs of {sweep_steps} steps each{capped}{estimate}; cached afterwards.")
    norms = ("none", placement)  # one per arm, in the order of net.ARMS
    if base.batch_size < 2:
        st.info("With a batch of one sample only the plain network can train: the sweeps show it alone.")
        norms = ("none",)
    if not _cost_guard("The sweeps", modelled * len(norms) / 2, net.SWEEP_THRESHOLD_S,
                       f"{runs // 2 * len(norms)} runs of " + net.cost_drivers(sweep_base),
                       APPROVED_SWEEPS, (sweep_base, norms), "Run the sweeps anyway"):
        return
    c1, c2 = st.columns(2)
    for col, field, title, x_title, what in (
        (c1, "lr", "Final test accuracy vs learning rate", "learning rate [per step], log scale", "learning rate"),
        (c2, "init_scale", "Final test accuracy vs initial weight std",
         "initial weight std [weight units], log scale", "initial weight std"),
    ):
        with col:
            try:
                result = net.sweep_cached(sweep_base, field, _sweep_values(field), norms,
                                          f"Sweeping the {what}…")
            except ValueError as exc:
                st.info(f"This sweep cannot run with these settings: {exc}")
                continue
            current = base.lr if field == "lr" else base.init_scale
            page.chart(net.sweep_chart(sweep_base, field, _sweep_values(field), norms, result,
                                       title=title, x_title=x_title, current=current),
                       key=f"c3_fig_sweep_{field}")
            page.see(net.describe_sweep(result, dict(zip(net.ARMS, norms, strict=False)), what))
    with page.more("How to read the sweeps"):
        st.markdown(
            "A ✕ marks a run that diverged, drawn at its last accuracy before it blew up (at chance level if "
            "its loss exploded before the first update); hover for the step. The dashed vertical line is "
            "the current setting of the main run.")


def _section_gradient_flow(base: TrainConfig, placement: str) -> None:
    st.subheader("Gradient flow through a deep network")
    ss = st.session_state
    deep_steps = min(base.steps, DEEP_MAX_STEPS)
    deep = replace(base, depth=int(ss["c3_gdepth"]), activation=ss["c3_gact"], steps=deep_steps,
                   eval_every=max(1, deep_steps // RECORDS_PER_RUN))
    norms = ("none", placement) if base.batch_size >= 2 else ("none",)  # BN needs a batch of 2+
    # The gradient at initialization does not depend on the learning rate, the steps or the
    # optimizer: one key for all of them, so moving the learning rate does not recompute it.
    at_init = replace(deep, lr=net.DEFAULT_LR, steps=1, eval_every=1, optimizer="sgd")
    try:
        g = net.init_grad_norms_cached(at_init, norms)
    except ValueError as exc:
        st.info(f"Gradient norms cannot be computed with these settings: {exc}")
        g = {}
    page.chart(net.grad_norms_init_chart(at_init, norms, g), key="c3_fig_ginit")
    page.see(net.describe_grad_init({arm: g[n] for arm, n in zip(net.ARMS, norms, strict=False) if n in g}))
    with page.more("Why gradients vanish, and what to try"):
        st.markdown(
            "Backpropagation multiplies by the activation's slope once per layer. A sigmoid's slope is "
            "at most ¼, so with small weights the gradient shrinks geometrically on its way down to the "
            "first layers (it *vanishes*):")
        st.latex(CHAIN_LATEX)
        st.markdown("Batch norm rescales each layer's input to unit spread, which keeps every factor near "
                    "one. The deep network's depth and activation are in the sidebar (other settings as "
                    "above).\n\n" + GRAD_FLOW_TEXT[deep.activation])
    if not ss["c3_gtrain"]:
        st.caption("Switch on *Also train the deep networks* in the sidebar to see the gradient norms during "
                   "training.")
    elif _cost_guard(
            "Training the deep networks", net.estimate_seconds(deep, arms=len(norms)), net.COST_THRESHOLD_S,
            net.cost_drivers(deep), APPROVED_DEEP, (deep, placement), "Train the deep networks anyway"):
        results, errors = net.train_arms(deep, placement, prefetch=False)
        for arm, msg in errors.items():
            if arm == "bn" and deep.batch_size < 2:
                st.info("Only the plain deep network trains on a batch of one sample (see above).")
            else:
                st.info(f"The deep network {net.ARM_LABEL[arm]} cannot train: {msg}")
        for arm, res in results.items():
            if res.diverged_at is not None:
                st.error(f"The deep network {net.ARM_LABEL[arm]} diverged at step {res.diverged_at}. "
                         + net.divergence_advice(res.diverged_at))
        page.chart(net.grad_norms_training_chart(results), key="c3_fig_gtrain")
        page.see(net.describe_grad_training(net.arms_of(results))
                 + " Dark lines are layers near the input, light ones near the output.")


def _section_gap(results: dict) -> None:
    st.subheader("A regularizer, as a side effect")
    page.chart(net.generalization_gap_chart(results), key="c3_fig_gap")
    page.see(net.describe_gap(net.arms_of(results)))
    page.prose(
        "During training each example is normalized with the statistics of the *other* examples in its "
        "batch, a little noise that changes from step to step, somewhat like dropout; Ioffe & Szegedy could "
        "drop dropout and reduce weight decay. A network that has not yet fitted the training set has a "
        "small gap for the wrong reason, so the right panel compares the gaps against training accuracy.")


def _section_cost(results: dict) -> None:
    st.subheader("The cost")
    stats = {arm: net.step_time_stats_ms(res.history) for arm, res in results.items()}
    page.chart(net.step_time_chart(results), key="c3_fig_time")
    page.see(net.describe_cost(stats))
    page.prose(
        "Each BN layer adds a mean, a variance and a rescale per feature on the forward pass and two more "
        "per-feature sums on the backward pass, so a step costs more; the time to reach a given accuracy "
        "is what matters. At evaluation time BN uses fixed statistics, so it can be folded into the "
        "neighbouring linear layer and then costs nothing.")


def _section_downloads_and_code(results: dict) -> None:
    st.subheader("Data and code")
    if results:
        # the CSV text is built only when a button is clicked (a callable as data), not every rerun
        c1, c2 = st.columns(2)
        c1.download_button("Download the recorded histories (CSV)",
                           functools.partial(net.histories_csv, results, "records"),
                           file_name="bn_in_network_histories.csv", mime="text/csv", key="c3_dl_records")
        c2.download_button("Download per-step batch loss and time (CSV)",
                           functools.partial(net.histories_csv, results, "steps"),
                           file_name="bn_in_network_steps.csv", mime="text/csv", key="c3_dl_steps")
    with page.more("Show the code: the training loop and the batch-norm layer behind these curves"):
        loop, bn_forward, bn_backward = st.tabs(["training loop (bn_core.train.train)",
                                                 "BatchNorm1d.forward", "BatchNorm1d.backward"])
        loop.code(code.source(train_module.train), language="python")
        bn_forward.code(code.source(BatchNorm1d.forward), language="python")
        bn_backward.code(code.source(BatchNorm1d.backward), language="python")


def main() -> None:
    page.setup(3)
    notices = state.restore(net.PARAMS)
    _settings_widgets()
    page.guided(net.EXPERIMENTS, net.PARAMS)
    state.publish(net.PARAMS)
    state.show_notices(notices)  # before any training: a changed link is announced at once
    page.lead("Two copies of one network, with the same initial weights and the same mini-batches, "
              "learn to read handwritten digits: one plain, one with batch normalization.")
    ss = st.session_state
    base = _base_config(ss)
    placement = ss["c3_place"]

    arms = 2 if base.batch_size >= 2 else 1  # BN cannot train on a batch of one
    if not _cost_guard("Training both networks", net.estimate_seconds(base, arms=arms), net.COST_THRESHOLD_S,
                       net.cost_drivers(base), APPROVED_TRAIN, (base, placement), "Train anyway"):
        _section_downloads_and_code({})
        return
    results, errors = net.train_arms(base, placement)
    _section_curves(results, errors, base)
    with page.more("The batch-norm transform"):
        st.latex(BN_LATEX)
        st.caption("Evaluation uses running averages of μ and σ² collected during training instead of the "
                   "batch's, so a prediction does not depend on the other examples.")
    _section_percentiles(results, base, placement)
    _section_robustness(results, base, placement)
    _section_gradient_flow(base, placement)
    _section_gap(results)
    _section_cost(results)
    _section_downloads_and_code(results)


PARAM = {p.key: p for p in net.PARAMS}
main()
