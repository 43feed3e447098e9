"""Chapter 2 · Batch norm, step by step: one mini-batch through the core's BatchNorm1d."""

import numpy as np
import pandas as pd
import streamlit as st

from bn_core import walkthrough
from bn_core.layers import BatchNorm1d
from ui import code, page, state
from ui import stepbystep as sbs

page.setup(2)
notices = state.restore(sbs.PARAMS)
ss = st.session_state
batch_size = int(ss[sbs.BATCH.key])

# ---------------------------------------------------------------- controls (sidebar)
with page.controls():
    st.slider(sbs.BATCH_LABEL, sbs.BATCH.lo, sbs.BATCH.hi, step=1, key=sbs.BATCH.key,
              help="Try 1: batch norm cannot train on a single sample. Try 2.")
    st.slider(sbs.GAMMA_LABEL, sbs.GAMMA.lo, sbs.GAMMA.hi, step=0.1, key=sbs.GAMMA.key,
              help="Learned in training; here you set it. y = γ·x̂ + β.")
    if batch_size < 2:
        # The widget shows the mode the page uses; the user's own choice is kept for later.
        state.hold([sbs.MODE])
        st.radio(sbs.MODE.name, options=list(sbs.MODE_LABELS), index=1, format_func=sbs.MODE_LABELS.get,
                 disabled=True, key="_c2_mode_forced",
                 help="A batch of one sample cannot be normalized in training mode, so evaluation mode "
                      "is shown. Your choice comes back with a batch of 2 or more.")
    else:
        st.radio(sbs.MODE.name, options=list(sbs.MODE_LABELS), key=sbs.MODE.key,
                 format_func=sbs.MODE_LABELS.get,
                 help="Evaluation mode uses the running statistics (section below).")
    with st.expander("The layer: β and ε"):
        st.slider("beta β (shift)", sbs.BETA.lo, sbs.BETA.hi, step=0.1, key=sbs.BETA.key)
        st.select_slider("eps ε", options=list(sbs.EPS_OPTIONS), key=sbs.EPS.key,
                         format_func=lambda v: f"{v:g}",
                         help="Added to the variance before the square root: keeps a constant feature "
                              "finite. A large ε no longer gives x̂ a variance of 1.")
    with st.expander("The incoming batch"):
        st.radio(sbs.SOURCE.name, options=list(sbs.SOURCE_LABELS), key=sbs.SOURCE.key,
                 format_func=sbs.SOURCE_LABELS.get,
                 help="Synthetic: features with a known mean and spread, and different shapes "
                      "(normal, skewed, bimodal, uniform). Digits: the real pre-activations "
                      "u = x·W + b of a seeded Linear layer (64 pixels -> 4 units) on handwritten digits.")
        st.slider("features shown", sbs.FEATURES.lo, sbs.FEATURES.hi, step=1, key=sbs.FEATURES.key)
        st.slider("shift of the incoming activations", sbs.SHIFT.lo, sbs.SHIFT.hi, step=0.5,
                  key=sbs.SHIFT.key, help="Added to every feature (synthetic: on top of each feature's "
                                          "own offset 0, 4, -3, 8).")
        st.select_slider("scale of the incoming activations", options=list(sbs.SCALE_OPTIONS),
                         key=sbs.SCALE.key, help="Multiplies each feature's spread (log-spaced values).")
        st.number_input(sbs.SEED.name, min_value=sbs.SEED.lo, max_value=sbs.SEED.hi, step=1,
                        key=sbs.SEED.key, help="Which samples end up in the batch.")
    with st.expander("Running statistics"):
        st.select_slider(sbs.MOMENTUM_LABEL, options=list(sbs.MOMENTUM_OPTIONS),
                         key=sbs.MOMENTUM.key, format_func=lambda v: f"{v:g}",
                         help="PyTorch's default is 0.1. Small: smooth but slow; 1: only the last batch counts.")
        st.slider(sbs.STEPS_LABEL, sbs.STEPS.lo, sbs.STEPS.hi, step=1, key=sbs.STEPS.key)
page.guided(sbs.EXPERIMENTS, sbs.PARAMS)
state.publish(sbs.PARAMS)
state.show_notices(notices)

source, n_features = ss[sbs.SOURCE.key], int(ss[sbs.FEATURES.key])
shift, scale, seed = float(ss[sbs.SHIFT.key]), float(ss[sbs.SCALE.key]), int(ss[sbs.SEED.key])
gamma, beta, eps = float(ss[sbs.GAMMA.key]), float(ss[sbs.BETA.key]), float(ss[sbs.EPS.key])
momentum, n_steps = float(ss[sbs.MOMENTUM.key]), int(ss[sbs.STEPS.key])
training = ss[sbs.MODE.key] == "training" and batch_size >= 2

page.lead("One mini-batch goes through batch normalization: each feature is standardized with the "
          "batch's own mean and variance, then scaled by γ and shifted by β.")

batch_args = (source, batch_size, n_features, shift, scale, seed)
run = sbs.cached_running(*batch_args, momentum, n_steps, eps)
final_rm = tuple(float(v) for v in run["running_mean"][-1])
final_rv = tuple(float(v) for v in run["running_var"][-1])
if batch_size < 2:
    refused = sbs.cached_pass(*batch_args, gamma, beta, eps, True)
    st.warning(f"**Batch norm cannot train on a batch of one sample.** The layer says: *{refused['error']}* "
               f"**Evaluation mode still works**: shown with the running statistics after {n_steps} "
               f"training steps on batches of {sbs.FALLBACK_TRAIN_BATCH}.", icon=":material/block:")
stages = sbs.cached_pass(*batch_args, gamma, beta, eps, training,
                         None if training else final_rm, None if training else final_rv)

# ---------------------------------------------------------------- the batch through the layer
page.chart(sbs.pipeline_figure(stages), key="c2_pipeline_chart")
page.see(sbs.describe_pipeline(stages, eps, gamma, beta))
if not training and batch_size >= 2:
    st.info(f"Evaluation mode: the batch is normalized with the **running** mean and variance after "
            f"{n_steps} training steps with momentum ρ = {momentum:g}, not with its own statistics.")
if batch_size < 2:
    with page.more("Why one sample cannot train"):
        st.markdown(
            "In training mode the layer normalizes each feature with the mean and variance of the batch. "
            "With one sample the batch mean *is* the sample (μ_B = x) and the batch variance is 0, so "
            "x̂ = 0/√ε = 0 for every input: the output would always be β, whatever came in, and no "
            "gradient could flow back to the earlier layers. Evaluation mode normalizes with the running "
            "statistics learned in training, so one sample at a time is fine.")
page.prose(
    "Chapter 1 showed that gradient descent is fast when the inputs are standardized. "
    "**Batch normalization** (Ioffe & Szegedy, 2015) does the same *inside* a network, for the "
    "input of every layer: (1) divide the data into mini-batches of $m$ samples; (2) standardize "
    "each feature with the mean and variance *of the batch*; (3) scale and shift the result with two "
    "learned numbers per feature, $\\gamma$ and $\\beta$, so the layer can still represent any mean and "
    "spread it needs. Every number and chart here is computed by this app's own `BatchNorm1d` "
    "(same semantics as PyTorch's)."
    + (f" The input is x = {shift:g} + {scale:g} · u, where u are the real pre-activations of a "
       "mini-batch of digit images." if source == "digits" else "")
)

used = "μ_B (batch)" if training else "running mean"
used_var = "σ²_B (batch, biased)" if training else "running variance"
table = pd.DataFrame({
    "feature": [sbs.feature_name(j) for j in range(n_features)],
    f"mean used: {used}": stages["mean"],
    f"variance used: {used_var}": stages["var"],
    "batch variance, unbiased (m−1)": stages["var_unbiased"],
    "mean of x̂": sbs.clean_zero(stages["x_hat"].mean(axis=0)),
    "variance of x̂": stages["x_hat"].var(axis=0),
    "mean of y": sbs.clean_zero(stages["y"].mean(axis=0)),
    "std of y": stages["y"].std(axis=0),
})
if batch_size < 2:  # one sample has no unbiased variance (0 / 0): say so instead of a blank
    table = table.drop(columns="batch variance, unbiased (m−1)")
st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.4g") for c in table.columns[1:]})

with page.more("The formulas, with this batch's numbers"):
    if training:
        st.latex(r"\mu_B = \frac{1}{m}\sum_{i=1}^{m} x_i \qquad "
                 r"\sigma_B^2 = \frac{1}{m}\sum_{i=1}^{m} (x_i - \mu_B)^2 \qquad "
                 r"\hat x_i = \frac{x_i - \mu_B}{\sqrt{\sigma_B^2 + \epsilon}} \qquad "
                 r"y_i = \gamma\,\hat x_i + \beta")
    else:
        st.latex(r"\hat x_i = \frac{x_i - \text{running\_mean}}{\sqrt{\text{running\_var} + \epsilon}} \qquad "
                 r"y_i = \gamma\,\hat x_i + \beta")
    tabs = st.tabs([sbs.feature_name(j) for j in range(n_features)])
    for j, tab in enumerate(tabs):
        mu, var = float(stages["mean"][j]), float(stages["var"][j])
        x1, xh1, y1 = (float(stages[k][0, j]) for k in ("x", "x_hat", "y"))
        with tab:
            if training:
                st.latex(rf"\mu_B = {sbs.fmt(mu)} \quad (m = {batch_size}) \qquad \sigma_B^2 = {sbs.fmt(var)}")
            else:
                st.latex(rf"\text{{running\_mean}} = {sbs.fmt(mu)} \qquad \text{{running\_var}} = {sbs.fmt(var)}")
            st.latex(rf"\hat x = \frac{{x {sbs.minus(mu)}}}{{\sqrt{{{sbs.fmt(var)} + {sbs.fmt(eps)}}}}}"
                     rf" = \frac{{x {sbs.minus(mu)}}}{{{sbs.fmt(np.sqrt(var + eps))}}}")
            st.latex(rf"\text{{first sample: }} x_1 = {sbs.fmt(x1)} \;\rightarrow\; "
                     rf"\hat x_1 = {sbs.fmt(xh1)} \;\rightarrow\; "
                     rf"y_1 = {sbs.fmt(gamma)} \cdot {sbs.paren(xh1)} {sbs.plus(beta)} = {sbs.fmt(y1)}")

st.download_button(
    "Download this batch, before and after (CSV)", data=sbs.batch_csv(stages),
    file_name=f"batchnorm_batch_{source}_m{batch_size}_seed{seed}.csv", mime="text/csv", on_click="ignore",
    help="One row per sample: x, x̂ and y for every feature shown.",
)

# ---------------------------------------------------------------- placement
st.subheader("Where the layer sits")
for after, text in sbs.PLACEMENTS.items():
    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    with c1:
        st.graphviz_chart(sbs.placement_dot(bn_after_activation=after))
    with c2:
        st.markdown(text)

# ---------------------------------------------------------------- train vs eval
st.subheader("Training mode vs evaluation mode")
page.prose(
    "At test time there may be a single sample, and a prediction must not depend on which other "
    "samples share its batch. So, while training, the layer keeps **running statistics**, an "
    "exponential moving average over batches with momentum ρ, and in evaluation mode it normalizes "
    "with those.")
train_bs = batch_size if batch_size >= 2 else sbs.FALLBACK_TRAIN_BATCH
page.chart(sbs.running_stats_figure(run, momentum), key="c2_running_chart")
page.see(sbs.describe_running(run, momentum))
with page.more("The update rule, and PyTorch's convention"):
    st.latex(r"\text{running\_mean} \leftarrow (1-\rho)\,\text{running\_mean} + \rho\,\mu_B \qquad "
             r"\text{running\_var} \leftarrow (1-\rho)\,\text{running\_var} + \rho\,\frac{m}{m-1}\,\sigma_B^2")
    forget = walkthrough.steps_to_forget(momentum)
    st.markdown(
        f"{n_steps} fresh batches of m = {train_bs} samples from the same source go through one layer in "
        f"training mode. The initial values (mean 0, variance 1) still weigh (1 − ρ)^k; below 5 % after "
        f"k = {forget} step{'s' if forget != 1 else ''} for ρ = {momentum:g}."
        + (f" (Batch size 1 cannot train: this run uses batches of {train_bs}.)" if batch_size < 2 else ""))
    rv_last, pop_var = float(run["running_var"][-1][0]), float(run["pop_var"][0])
    if batch_size >= 2:
        var_b = float(sbs.cached_pass(*batch_args, gamma, beta, eps, True)["var"][0])
        var_u = var_b * batch_size / (batch_size - 1)
        st.markdown(
            f"**PyTorch's convention:** the layer normalizes with the *biased* batch variance "
            f"(divide by m), but `running_var` averages the *unbiased* one (divide by m − 1). For feature 1 "
            f"of this batch: σ²_B = {var_b:.4g} is used to normalize, m/(m−1)·σ²_B = {var_u:.4g} goes into "
            f"the running average. The difference matters for small batches (m = 2 doubles it) and "
            f"vanishes for large ones. After {n_steps} steps running_var = {rv_last:.4g}; the population "
            f"variance is {pop_var:.4g}.")
    else:
        st.markdown(
            f"**PyTorch's convention:** `running_var` averages the *unbiased* batch variance "
            f"(divide by m − 1), while the layer normalizes with the biased one (divide by m). "
            f"After {n_steps} steps running_var = {rv_last:.4g}; the population variance is {pop_var:.4g}.")

if "eval_gap" in run:
    both = sbs.cached_train_vs_eval(*batch_args, momentum, n_steps, eps, gamma, beta)
    c1, c2 = st.columns(2)
    page.chart(sbs.eval_gap_figure(run), key="c2_gap_chart", where=c1)
    page.chart(sbs.train_vs_eval_scatter(both["y_train"], both["y_first"], both["y_last"],
                                         both["step_first"], both["step_last"]),
               key="c2_scatter_chart", where=c2)
    page.see(sbs.describe_eval_gap(run, both, momentum))
else:
    st.info("With one sample there is no training-mode output to compare with; its evaluation-mode "
            f"output after step {n_steps} is shown in the chart at the top.")

# ---------------------------------------------------------------- the code
with page.more("Show the code: the core's BatchNorm1d forward and backward"):
    st.caption("From bn_core/layers.py, the layer that computed every number on this page.")
    st.code(code.source(BatchNorm1d.forward), language="python")
    st.code(code.source(BatchNorm1d._update_running), language="python")
    st.code(code.source(BatchNorm1d.backward), language="python")
