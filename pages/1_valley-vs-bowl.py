"""Chapter 1 · Valley vs bowl: why normalizing inputs makes gradient descent fast.

The page is built in two layers. A full run draws the controls, the prose, the formulas and
everything that does not depend on the step size, and leaves empty containers where the
step-size results go. Those are drawn by one ``st.fragment``, together with the step-size
slider itself: moving the learning rate, the chapter's main interaction, reruns only the
fragment and re-sends only what changed (see ``benchmarks/bench_rerun_server.py``).

Every sentence that describes a chart comes from a ``describe_*`` function of ``ui.valley``
fed with the chart's own data; what stays visible in lecture mode is the title, the lead
sentence, the charts and their "what to see" lines.
"""

import streamlit as st

from bn_core import regression as R
from ui import page
from ui import valley as vs
from ui import valley_controls as vc
from ui import valley_figures as vf

page.setup(1)
page.rerun_when_reconnected()  # else, after a server restart, the step-size slider would not redraw
cfg = vc.controls()  # sidebar widgets (the step size first), URL state and data source
page.guided(vs.EXPERIMENTS, vs.PARAMS)
ds, facts = cfg.dataset, cfg.facts  # facts: numbers quoted in the prose, computed from the data shown
page.lead(vs.lead_text(facts))
# Plotly rejects an interrupted animation's promise (pause, or play while playing): see vs.ANIMATION_GUARD.
st.html(vs.ANIMATION_GUARD, unsafe_allow_javascript=True)

# One warning for a constant feature, not one per variant plus the file's own note (the file
# notices in vc.controls leave it to this one).
flat = vs.constant_features(cfg.names, [vs.problem(cfg.data_key, v)[0].constant for v in cfg.variants])
if flat:
    cond_notes = dict.fromkeys(facts.conds[v].note for v in cfg.variants
                               if vs.problem(cfg.data_key, v)[0].constant.any() and facts.conds[v].note)
    st.warning(f"Feature {', '.join(repr(f) for f in flat)} {'is' if len(flat) == 1 else 'are'} constant "
               "(zero variance): it carries no information and the scalers use scale 1 instead of dividing by "
               "zero. " + (" ".join(cond_notes) or "The condition number is infinite."))
collinear = vs.collinear_note(cfg.data_key)
if collinear:
    st.warning(collinear)

variants = list(cfg.variants)
if not variants:
    st.info("Pick at least one input variant in the sidebar.")
    st.stop()
if "batchnorm" in variants and cfg.batch < 2:
    st.warning("**Batch-normalized inputs need at least 2 samples per batch.** With one sample the batch "
               "mean is the sample itself and the batch variance is 0, so x̂ = (x − μ)/√(0 + ε) = 0: every "
               "input becomes 0 and the weights can never learn (PyTorch refuses such a batch in training). "
               "The batch-normalized variant is skipped; raise the batch size to see it.")
    variants = [v for v in variants if v != "batchnorm"]
    if not variants:
        st.stop()
boxes = {}

# ---- landscapes (the main chart) ------------------------------------------------------------
st.subheader("Loss landscapes and paths")
cols = st.columns(min(len(variants), 2))
for i, v in enumerate(variants):
    boxes[v] = cols[i % len(cols)].container()
boxes["under_landscapes"] = st.container()  # what to see, the run's settings, divergence notes
if cfg.optimizer == "adam":  # below the landscapes, so the first screen still shows them
    st.info(vs.adam_note(cfg.data_key, cfg.mode))
with page.more("What exactly is drawn, and the update rule"):
    st.markdown("Colours: log₁₀(L − L*), the loss above its least-squares minimum. Both axes use the same scale, "
                "so a circle looks like a circle. ▶ *play* animates the path (its speed is under *Display* in the "
                "sidebar); the slider under the chart picks a step.")
    for v in variants:
        st.markdown(f"- **{vf.VARIANT_LABELS[v]}.** " + vs.slice_note(v, cfg.data_key))
    st.latex(r"L(\theta)=\frac1n\lVert D\theta-y\rVert^2,\qquad \nabla L=\frac2n D^\top(D\theta-y),\qquad "
             r"H=\frac2n D^\top D,\qquad \theta_{k+1}=\theta_k-\alpha\nabla L_{\mathcal B_k}(\theta_k)")
page.prose(vs.intro_text(cfg.data_key, cfg.source, facts) + "\n\n"
           f"**On the data shown{'' if ds is None else ' (your file)' if cfg.source == 'upload' else ' (the example CSV)'}:** "
           + vs.steepness_text(facts))

with page.more("The seed article's recipe: batch normalization in three steps"):
    st.markdown("**1. Divide the data into mini-batches** (shuffled without replacement every epoch):")
    st.latex(r"\mathcal{B} = \{x_1, \dots, x_m\}, \qquad \text{steps per epoch} = \lceil n / m \rceil")
    st.markdown("**2. Standardize each feature with the batch's own statistics:**")
    st.latex(r"\mu_\mathcal{B} = \frac1m\sum_i x_i,\quad \sigma^2_\mathcal{B} = \frac1m\sum_i (x_i-\mu_\mathcal{B})^2,"
             r"\quad \hat x_i = \frac{x_i-\mu_\mathcal{B}}{\sqrt{\sigma^2_\mathcal{B}+\epsilon}}")
    st.markdown("**3. Scale and shift** with learned parameters (here the regression's own weights and "
                "intercept play γ and β):")
    st.latex(r"y_i = \gamma\,\hat x_i + \beta \qquad\Longleftrightarrow\qquad \hat y_i = w\cdot\hat x_i + b")
    st.markdown("At evaluation time the batch statistics are replaced by running averages "
                "(momentum 0.1; the running variance uses the unbiased batch variance, PyTorch's convention).")

# ---- convergence -------------------------------------------------------------------------
st.subheader("Convergence")
boxes["convergence"] = st.container()  # the chart and its "what to see" line
# The CSV download sits outside the fragment, under the chart it exports, and is drawn only by a
# full run, after the fragment has run (see the end): inside the fragment it had 7% of a py-spy
# profile of step-size reruns, and it was one more element to re-send. Its data is made when
# clicked, from the runs the fragment showed last (``shown``).
shown: dict = {}
download_box = st.empty()
with page.more("What is plotted, and steps to tolerance"):  # the measured steps: the line above, the table below
    st.markdown("Plotted: the **relative suboptimality** of the full-batch loss of each variant's landscape "
                "(L* is each variant's least-squares loss):")
    st.latex(r"\frac{L(\theta_k)-L^*}{L(\theta_0)-L^*}\ \le\ \text{tol}\quad\Rightarrow\quad"
             r"\text{steps to tolerance} = \min k")
    st.markdown("For full-batch gradient descent each eigen-direction of H shrinks by |1 − αλᵢ| per step, "
                "so the suboptimality falls at least like ρ²ᵏ with ρ = maxᵢ |1 − αλᵢ|. A curve that flattens "
                "far below 1e-15 has reached floating-point precision.")

st.subheader("Learned coefficients in original units")
boxes["coefficients"] = st.container()
page.prose("Weights learned on scaled inputs x' = (x − shift)/scale map back as w = w'/scale and "
           "b = b' − Σ w'·shift/scale. Raw fits no intercept; the others fit one"
           + (" (least squares with an intercept differs slightly from 2 and 3 because of the noise)."
              if ds is None else "."))

# ---- theory ------------------------------------------------------------------------------
st.subheader("Theory: what the Hessian predicts")
for col, v in zip(st.columns(len(variants)), variants, strict=True):
    with col:
        st.metric(f"κ ({vf.VARIANT_LABELS[v]})", vs.fmt_num(facts.conds[v].kappa))
        st.metric("2/λ_max", vs.fmt_num(facts.conds[v].max_stable_lr))
boxes["theory"] = st.container()
with page.more("The formulas behind the table"):
    st.latex(r"\kappa=\frac{\lambda_{\max}}{\lambda_{\min}},\quad \alpha<\frac{2}{\lambda_{\max}}\ \text{(stable)},"
             r"\quad \alpha^*=\frac{2}{\lambda_{\min}+\lambda_{\max}},\quad \rho(\alpha^*)=\frac{\kappa-1}{\kappa+1},"
             r"\quad k_{\text{pred}}=\left\lceil\frac{\ln \text{tol}}{2\ln\rho(\alpha)}\right\rceil")
    minmax_note = (f"min-max has κ = {vs.fmt_num(facts.conds['minmax'].kappa)} because it does not center, so its "
                   "intercept couples with the weights" if "minmax" in variants else
                   "min-max does not center, so its intercept couples with the weights")
    st.markdown("Predictions are for full-batch gradient descent on the Hessian of the whole data set "
                f"(raw: 2×2, the others 3×3 with the intercept; {minmax_note}). "
                "They bound the worst start; the measured number can be smaller. With mini-batches, momentum or "
                "Adam the measured column is what actually happened. On the data shown the raw valley has "
                f"κ = {vs.fmt_num(facts.conds['raw'].kappa)} and the standardized bowl "
                f"κ = {vs.fmt_num(facts.conds['standardized'].kappa)}. Where κ = ∞ the optimal step and rate are "
                "computed over the identifiable directions (the non-zero eigenvalues) and labelled so.")

# ---- stability map -----------------------------------------------------------------------
st.subheader("Stability map: learning rate × batch size")
map_args = (cfg.data_key, cfg.seed, cfg.variants, cfg.mode, cfg.epochs, cfg.optimizer, *cfg.hyper)
if cfg.show_map:
    vs.sweep_stability(*map_args)  # a progress bar the first time this process sweeps these settings
    boxes["map"] = st.container()
    stab, stab_fig = vs.stability_figure(*map_args)
    page.see(vs.describe_stability(stab, stab_fig.spec))
    page.prose(f"Final full-batch loss after {cfg.epochs} epochs for every cell (all learning rates of a batch "
               "size run in one vectorized loop). "
               + vs.stability_limit_text(cfg.optimizer, cfg.mode, cfg.hyper[0], facts, cfg.variants)
               + " Small batches are noisier and can become unstable earlier, and batch-normalized inputs "
               "from tiny batches are too noisy to fit well.")
    if cfg.batch not in vs.map_batch_sizes(cfg.data_key):
        st.caption(f"(The current batch size {cfg.batch} is not one of the map's rows; the star is omitted.)")
else:
    st.caption("Switched off in the sidebar (under Display).")


@st.fragment
@page.in_turn()  # thirty students moving at once take turns instead of all waiting for all
def step_size_and_results(cfg: vc.Settings, step: vs.StepSetting, boxes: dict, shown: dict) -> None:
    """The step-size slider (into its sidebar place) and everything that depends on the step.

    Writes only into the containers in ``boxes``, made by the full run at their places, and
    keeps the runs it drew in ``shown`` (the same dict on every rerun of this fragment).
    Runs in turn with the other sessions of the server process (:func:`ui.page.in_turn`).
    """
    cfg = vc.step_size_control(cfg)
    batch, epochs, opt, tol, variants = cfg.batch, cfg.epochs, cfg.optimizer, cfg.tol, step.variants
    sv = vs.step_views(step, vc.step_of(cfg))  # the same calls warm_step_sizes makes: cache hits once warmed
    lrs, views = sv.lrs, sv.views
    results = {v: views[v].result for v in variants}

    for v in variants:
        page.chart(sv.landscapes[v], key=f"c1_fig_{v}", where=boxes[v])
    path_facts = {vf.VARIANT_LABELS[v]: sv.path_facts[v] for v in variants}
    # Few containers outside the fragment: Streamlit re-sends each one on every fragment rerun.
    with boxes["under_landscapes"]:
        page.see(vs.describe_landscapes(path_facts, tol))
        asked = (f" (**{cfg.batch_asked} asked for**, more than the n = {cfg.n} samples: full batch)"
                 if cfg.batch_asked > cfg.n else "")
        st.caption(f"{cfg.n} samples, batch size {batch}{asked}, {epochs} epochs → **{cfg.n_steps} steps for every "
                   f"variant** ({R.steps_per_epoch(cfg.n, batch)} per epoch); optimizer: "
                   f"{R.OPTIMIZER_LABELS[opt]}; step sizes: "
                   + ", ".join(f"{vf.VARIANT_LABELS[v]} α = {vs.fmt_num(lrs[v])}" for v in variants) + ".")
        for v, res in results.items():
            if res.diverged:
                st.error(f"**{vf.VARIANT_LABELS[v]}: diverged at step {res.diverged_at}** — the loss exceeded "
                         f"{R.EXPLODE_FACTOR:.0e} × its starting value (or overflowed). α = {vs.fmt_num(lrs[v])} "
                         f"vs 2/λ_max = {vs.fmt_num(views[v].cond.max_stable_lr)}; the path is drawn up to the "
                         "step before.")
            for note in res.notes:
                st.info(f"{vf.VARIANT_LABELS[v]}: {note}")
    with boxes["convergence"]:
        page.chart(sv.convergence, key="c1_fig_loss")
        page.see(vs.describe_convergence(results, tol))
    shown["results"] = results  # what the CSV download (drawn by the full run) exports when clicked
    with boxes["coefficients"]:
        truth = None if cfg.dataset is not None else vs.dataset(cfg.data_key).true_weights
        st.markdown(vs.markdown_table(vs.coefficient_table(results, truth, cfg.names)))
        if "batchnorm" in results:
            st.caption(vs.describe_bn_modes(vs.bn_modes_facts(cfg.data_key, results["batchnorm"])))
    boxes["theory"].markdown(vs.markdown_table([sv.theory_rows[v] for v in variants]))
    if sv.stability_map is not None:
        page.chart(sv.stability_map, key="c1_fig_map", where=boxes["map"])


step = vc.step_setting(cfg, variants, show_map="map" in boxes)
step_size_and_results(cfg, step, boxes, shown)
download_box.download_button("Download paths and losses (CSV)", data=lambda: vs.history_csv(shown["results"]),
                             file_name="valley_vs_bowl_history.csv", mime="text/csv", on_click="ignore")
vs.warm_step_sizes(step)  # the slider's other options, in the background, for a setting several sessions opened

with page.more("Show the code: the optimizer loop and the update rules"):
    for source in vs.optimizer_source():  # ui.code.source: read once per process
        st.code(source, language="python")
