"""Chapter 2 · Batch norm, step by step: one mini-batch through the core's BatchNorm1d."""


import numpy as np
import pandas as pd
import streamlit as st

from bn_core import walkthrough
from bn_core.layers import BatchNorm1d
from ui import code, page, state
from ui import stepbystep as sbs

page.setup(2)
st.markdown(
    "Chapter 1 showed that gradient descent is fast when the inputs are standardized. "
    "**Batch normalization** (Ioffe & Szegedy, 2015) does the same *inside* a network, for the "
    "input of every layer, in three steps:\n\n"
    "1. **Divide the data into mini-batches** of $m$ samples.\n"
    "2. **Standardize** each feature with the mean and variance *of the batch*.\n"
    "3. **Scale and shift** the result with two learned numbers per feature, $\\gamma$ and "
    "$\\beta$, so the layer can still represent any mean and spread it needs.\n\n"
    "Below, one mini-batch travels through the layer. Every number and chart is computed by "
    "this app's own `BatchNorm1d` (same semantics as PyTorch's)."
)
notice_box = st.container()
notices = state.restore(sbs.PARAMS)
ss = st.session_state

# ---------------------------------------------------------------- step 1: the mini-batch
st.header("Step 1 · A mini-batch arrives")
c1, c2, c3 = st.columns(3)
with c1:
    st.radio(sbs.SOURCE.name, options=list(sbs.SOURCE_LABELS), key=sbs.SOURCE.key,
             format_func=sbs.SOURCE_LABELS.get,
             help="Synthetic: features with a known mean and spread, and different shapes "
                  "(normal, skewed, bimodal, uniform). Digits: the real pre-activations "
                  "u = x·W + b of a seeded Linear layer (64 pixels -> 4 units) on handwritten digits.")
    st.number_input(sbs.SEED.name, min_value=sbs.SEED.lo, max_value=sbs.SEED.hi, step=1,
                    key=sbs.SEED.key, help="Which samples end up in the batch.")
with c2:
    st.slider("batch size m (samples)", sbs.BATCH.lo, sbs.BATCH.hi, step=1, key=sbs.BATCH.key,
              help="Try 1: batch norm cannot train on a single sample.")
    st.slider("features shown", sbs.FEATURES.lo, sbs.FEATURES.hi, step=1, key=sbs.FEATURES.key)
with c3:
    st.slider("shift of the incoming activations", sbs.SHIFT.lo, sbs.SHIFT.hi, step=0.5,
              key=sbs.SHIFT.key, help="Added to every feature (synthetic: on top of each feature's "
                                      "own offset 0, 4, -3, 8).")
    st.select_slider("scale of the incoming activations", options=list(sbs.SCALE_OPTIONS),
                     key=sbs.SCALE.key, help="Multiplies each feature's spread (log-spaced values).")

source, batch_size, n_features = ss[sbs.SOURCE.key], int(ss[sbs.BATCH.key]), int(ss[sbs.FEATURES.key])
shift, scale, seed = float(ss[sbs.SHIFT.key]), float(ss[sbs.SCALE.key]), int(ss[sbs.SEED.key])
if source == "digits":
    st.caption(f"x = {shift:g} + {scale:g} · u, where u are the real pre-activations of a "
               "mini-batch of digit images. Batch norm removes this shift and scale again.")

# ---------------------------------------------------------------- steps 2 and 3: the layer
st.header("Steps 2 and 3 · Standardize, then scale and shift")
c1, c2, c3, c4 = st.columns(4)
with c1:
    st.slider("gamma γ (scale)", sbs.GAMMA.lo, sbs.GAMMA.hi, step=0.1, key=sbs.GAMMA.key,
              help="Learned in training; here you set it. y = γ·x̂ + β.")
with c2:
    st.slider("beta β (shift)", sbs.BETA.lo, sbs.BETA.hi, step=0.1, key=sbs.BETA.key)
with c3:
    st.select_slider("eps ε", options=list(sbs.EPS_OPTIONS), key=sbs.EPS.key,
                     format_func=lambda v: f"{v:g}",
                     help="Added to the variance before the square root: keeps a constant feature finite. "
                          "A large ε no longer gives x̂ a variance of 1.")
with c4:
    st.radio(sbs.MODE.name, options=list(sbs.MODE_LABELS), key=sbs.MODE.key,
             format_func=sbs.MODE_LABELS.get,
             help="Evaluation mode uses the running statistics learned in the section below.")

gamma, beta, eps = float(ss[sbs.GAMMA.key]), float(ss[sbs.BETA.key]), float(ss[sbs.EPS.key])
mode = ss[sbs.MODE.key]
# The momentum/steps widgets live further down, but eval mode needs their run now: the session
# state already holds their (validated) values.
momentum, n_steps = float(ss[sbs.MOMENTUM.key]), int(ss[sbs.STEPS.key])

batch_args = (source, batch_size, n_features, shift, scale, seed)
run = sbs.cached_running(*batch_args, momentum, n_steps, eps)
final_rm = tuple(float(v) for v in run["running_mean"][-1])
final_rv = tuple(float(v) for v in run["running_var"][-1])

training = mode == "training"
stages = sbs.cached_pass(*batch_args, gamma, beta, eps, training,
                         None if training else final_rm, None if training else final_rv)
if stages["error"]:
    st.warning(
        "**Batch norm cannot train on a batch of one sample.** In training mode the layer "
        "normalizes each feature with the mean and variance of the batch. With one sample the "
        "batch mean *is* the sample (μ_B = x) and the batch variance is 0, so x̂ = 0/√ε = 0 for "
        "every input: the output would always be β, whatever came in, and no gradient could "
        "flow back to the earlier layers. So our layer refuses, and says:\n\n"
        f"> {stages['error']}\n\n"
        "**Evaluation mode still works**: it normalizes with the running statistics learned in "
        f"training, so one sample at a time is fine. Shown below: evaluation mode, with the "
        f"running statistics after {n_steps} training steps on batches of "
        f"{sbs.FALLBACK_TRAIN_BATCH} (the section *Training mode vs evaluation mode*)."
    )
    training = False
    stages = sbs.cached_pass(*batch_args, gamma, beta, eps, False, final_rm, final_rv)
elif not training:
    st.info(f"Evaluation mode: the batch is normalized with the **running** mean and variance "
            f"after {n_steps} training steps with momentum {momentum:g}, not with its own statistics.")

fig = sbs.pipeline_figure(stages)
page.chart(fig, key="c2_pipeline_chart")

used = "μ_B (batch)" if training else "running mean"
used_var = "σ²_B (batch, biased)" if training else "running variance"
table = pd.DataFrame({
    "feature": [sbs.feature_name(j) for j in range(n_features)],
    f"mean used: {used}": stages["mean"],
    f"variance used: {used_var}": stages["var"],
    "batch variance, unbiased (n−1)": stages["var_unbiased"],
    "mean of x̂": sbs.clean_zero(stages["x_hat"].mean(axis=0)),
    "variance of x̂": stages["x_hat"].var(axis=0),
    "mean of y": sbs.clean_zero(stages["y"].mean(axis=0)),
    "std of y": stages["y"].std(axis=0),
})
if batch_size < 2:  # one sample has no unbiased variance (0 / 0): say so instead of a blank
    table = table.drop(columns="batch variance, unbiased (n−1)")
st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.4g") for c in table.columns[1:]})
if training:
    st.caption("In training mode x̂ has mean 0 and variance σ²_B/(σ²_B + ε) ≈ 1 per feature, whatever "
               "came in; y then has mean β and standard deviation |γ|·√(that variance).")

st.subheader("The formulas, with this batch's numbers")
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
    file_name=f"batchnorm_batch_{source}_m{batch_size}_seed{seed}.csv", mime="text/csv",
    help="One row per sample: x, x̂ and y for every feature shown.",
)

# ---------------------------------------------------------------- placement
st.header("Where the layer sits")
PLACEMENTS = {  # bn_after_activation -> what to say about that placement
    False: "**Before the activation** (Ioffe & Szegedy's choice). The linear transform's output "
           "u = W·h + b is roughly Gaussian, so standardizing it is natural; the activation then "
           "sees inputs with a stable mean and spread (a sigmoid is not pushed into saturation). "
           "The bias b becomes redundant: β takes its place.",
    True: "**After the activation** (a common alternative). Normalizes what the next layer "
          "actually receives; in practice it often works as well. Chapter 3 trains both "
          "placements on digits.",
}
for after, text in PLACEMENTS.items():
    c1, c2 = st.columns([3, 2], vertical_alignment="center")
    with c1:
        st.graphviz_chart(sbs.placement_dot(bn_after_activation=after))
    with c2:
        st.markdown(text)

# ---------------------------------------------------------------- train vs eval
st.header("Training mode vs evaluation mode")
st.markdown(
    "At test time there may be a single sample, and a prediction must not depend on which other "
    "samples share its batch. So, while training, the layer keeps **running statistics**, an "
    "exponential moving average over batches, and in evaluation mode it normalizes with those:"
)
st.latex(r"\text{running\_mean} \leftarrow (1-m)\,\text{running\_mean} + m\,\mu_B \qquad "
         r"\text{running\_var} \leftarrow (1-m)\,\text{running\_var} + m\,\frac{n}{n-1}\,\sigma_B^2")
c1, c2 = st.columns(2)
with c1:
    st.select_slider("momentum m of the running statistics", options=list(sbs.MOMENTUM_OPTIONS),
                     key=sbs.MOMENTUM.key, format_func=lambda v: f"{v:g}",
                     help="PyTorch's default is 0.1. Small: smooth but slow; 1: only the last batch counts.")
with c2:
    st.slider("training steps (batches)", sbs.STEPS.lo, sbs.STEPS.hi, step=1, key=sbs.STEPS.key)

train_bs = batch_size if batch_size >= 2 else sbs.FALLBACK_TRAIN_BATCH
forget = walkthrough.steps_to_forget(momentum)
st.caption(f"{n_steps} fresh batches of {train_bs} samples from the same source go through one layer in "
           f"training mode. The initial values (mean 0, variance 1) still weigh (1 − m)^k; below 5 % "
           f"after k = {forget} step{'s' if forget != 1 else ''} for m = {momentum:g}."
           + (f" (Batch size 1 cannot train: this run uses batches of {train_bs}.)" if batch_size < 2 else ""))
page.chart(sbs.running_stats_figure(run, momentum), key="c2_running_chart")

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
        f"variance is {pop_var:.4g}."
    )
else:
    st.markdown(
        f"**PyTorch's convention:** `running_var` averages the *unbiased* batch variance "
        f"(divide by m − 1), while the layer normalizes with the biased one (divide by m). "
        f"After {n_steps} steps running_var = {rv_last:.4g}; the population variance is {pop_var:.4g}."
    )

if "eval_gap" in run:
    both = sbs.cached_train_vs_eval(*batch_args, momentum, n_steps, eps, gamma, beta)
    c1, c2 = st.columns(2)
    with c1:
        page.chart(sbs.eval_gap_figure(run), key="c2_gap_chart")
    with c2:
        page.chart(sbs.train_vs_eval_scatter(both["y_train"], both["y_first"], both["y_last"],
                                                  both["step_first"], both["step_last"]),
                        key="c2_scatter_chart")
    gap = run["eval_gap"]
    st.caption(f"The same batch (the one above) in both modes. After step {both['step_first']} its "
               f"normalized values x̂ differ by {float(gap[both['step_first']].mean()):.3g} on average, "
               f"after step {n_steps} by {float(gap[-1].mean()):.3g}; the outputs y differ by |γ| times "
               "that. What remains is this batch's own deviation from the population: training-mode "
               "outputs depend on which samples share the batch, evaluation-mode outputs do not.")
else:
    st.info("With one sample there is no training-mode output to compare with; its evaluation-mode "
            f"output after step {n_steps} is shown in the chart at the top.")

# ---------------------------------------------------------------- the code
with st.expander("Show the code: the core's BatchNorm1d forward and backward"):
    st.caption("From bn_core/layers.py, the layer that computed every number on this page.")
    st.code(code.source(BatchNorm1d.forward), language="python")
    st.code(code.source(BatchNorm1d._update_running), language="python")
    st.code(code.source(BatchNorm1d.backward), language="python")

state.publish(sbs.PARAMS)
with notice_box:
    state.show_notices(notices)
