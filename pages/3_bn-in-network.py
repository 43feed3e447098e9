"""Chapter 3 · Batch norm in a network: the benefits of batch normalization, measured live.

Two copies of the same multilayer perceptron (same seed, same initial weights) train on
scikit-learn's digits, one plain and one with batch normalization; every chart compares them.
Thin page: the controls, the settings they make, the cost guards, run reports and fixed texts
live in ui/network_controls.py; the cached runs, figures and captions in ui/network.py.
"""

from __future__ import annotations

import functools

import streamlit as st

from bn_core import train as train_module
from bn_core.layers import BatchNorm1d
from ui import code, page, state
from ui import network as net
from ui import network_controls as nc

page.setup(3)
notices = state.restore(net.PARAMS)
nc.controls()
page.guided(net.EXPERIMENTS, net.PARAMS)
state.publish(net.PARAMS)
state.show_notices(notices)  # before any training: a changed link is announced at once
page.lead(nc.PROSE["lead"])
cfg = nc.settings(st.session_state)

# An expensive configuration (e.g. a crafted link) waits for "Train anyway"; until then only
# the last section, data and code, is drawn. (Not st.stop(): a stopped run keeps stale widgets.)
trained = nc.may_train(cfg)
results, errors = net.train_arms(cfg.base, cfg.placement) if trained else ({}, {})
if trained:
    # 1 · the training curves
    outcome = net.describe_outcome(results, cfg.base.batch_size)
    page.chart(net.training_curves_chart(results), key="c3_fig_curves")
    page.see(outcome["text"])
    nc.report_runs(results, errors, cfg.base, outcome)
    page.prose(nc.PROSE["curves"])
    with page.more("What the curves are: evaluations, and when a run counts as diverged"):
        st.markdown(nc.PROSE["curves_more"].format(eval_every=cfg.base.eval_every))
    with page.more("The batch-norm transform"):
        st.latex(nc.BN_LATEX)
        st.caption(nc.PROSE["bn_transform"])

    # 2 · stable inputs to the nonlinearity
    st.subheader("Stable inputs to the nonlinearity")
    page.chart(net.activation_percentiles_chart(results, cfg.layer, cfg.base.activation, cfg.base.probe_unit,
                                                cfg.placement), key="c3_fig_pct")
    page.see(net.describe_percentiles(net.arms_of(results), cfg.layer))
    with page.more("How to read the bands, and why it matters for a sigmoid"):
        st.markdown(nc.PROSE["percentiles_more"])
        st.latex(nc.SIGMOID_LATEX)
        st.markdown(nc.percentiles_text(cfg.placement))

    # 3 · robustness to the learning rate and the initialization (opt-in: 36 runs)
    st.subheader("Robustness to the learning rate and the initialization")
    plan = nc.sweep_plan(cfg, results)
    page.prose(nc.PROSE["sweeps"])
    st.caption(plan.caption)
    if cfg.sweeps and nc.sweeps_may_run(plan):  # a note for a batch of one, and the cost guard
        for col, (field, title, x_title, what) in zip(st.columns(2), nc.SWEEPS, strict=True):
            with col:
                sweep = nc.sweep(plan, field, what)  # None (and a note) when it cannot run
                if sweep is not None:
                    page.chart(net.sweep_chart(plan.base, field, nc.sweep_values(field), plan.norms, sweep,
                                               title=title, x_title=x_title, current=nc.current(cfg, field)),
                               key=f"c3_fig_sweep_{field}")
                    page.see(net.describe_sweep(sweep, dict(zip(net.ARMS, plan.norms, strict=False)), what))
        with page.more("How to read the sweeps"):
            st.markdown(nc.PROSE["sweeps_more"])

    # 4 · gradient flow through a deep network
    st.subheader("Gradient flow through a deep network")
    deep = nc.deep_plan(cfg)
    grads = nc.init_grad_norms(deep)  # empty (and a note) when they cannot be computed
    page.chart(net.grad_norms_init_chart(deep.at_init, deep.norms, grads), key="c3_fig_ginit")
    page.see(net.describe_grad_init(net.by_arm(grads, deep.norms)))
    with page.more("Why gradients vanish, and what to try"):
        st.markdown(nc.PROSE["gradients_more"])
        st.latex(nc.CHAIN_LATEX)
        st.markdown(nc.PROSE["gradients_after"] + nc.GRAD_FLOW_TEXT[deep.config.activation])
    if not cfg.deep_train:
        st.caption(nc.PROSE["gradients_off"])
    elif nc.deep_may_train(cfg, deep):
        deep_results, deep_errors = net.train_arms(deep.config, cfg.placement, prefetch=False)
        nc.report_deep_runs(deep_results, deep_errors, deep.config)
        page.chart(net.grad_norms_training_chart(deep_results), key="c3_fig_gtrain")
        page.see(net.describe_grad_training(net.arms_of(deep_results))
                 + " Dark lines are layers near the input, light ones near the output.")

    # 5 · a regularizer, as a side effect
    st.subheader("A regularizer, as a side effect")
    page.chart(net.generalization_gap_chart(results), key="c3_fig_gap")
    page.see(net.describe_gap(net.arms_of(results)))
    page.prose(nc.PROSE["gap"])

    # 6 · the cost
    st.subheader("The cost")
    stats = {arm: net.step_time_stats_ms(res.history) for arm, res in results.items()}
    page.chart(net.step_time_chart(results), key="c3_fig_time")
    page.see(net.describe_cost(stats))
    page.prose(nc.PROSE["cost"])

# 7 · data and code
st.subheader("Data and code")
if results:
    # the CSV text is built only when a button is clicked (a callable as data), not every rerun
    c1, c2 = st.columns(2)
    c1.download_button("Download the recorded histories (CSV)",
                       functools.partial(net.histories_csv, results, "records"),
                       file_name="bn_in_network_histories.csv", mime="text/csv", on_click="ignore", key="c3_dl_records")
    c2.download_button("Download per-step batch loss and time (CSV)",
                       functools.partial(net.histories_csv, results, "steps"),
                       file_name="bn_in_network_steps.csv", mime="text/csv", on_click="ignore", key="c3_dl_steps")
with page.more("Show the code: the training loop and the batch-norm layer behind these curves"):
    loop, bn_forward, bn_backward = st.tabs(["training loop (bn_core.train.train)",
                                             "BatchNorm1d.forward", "BatchNorm1d.backward"])
    loop.code(code.source(train_module.train), language="python")
    bn_forward.code(code.source(BatchNorm1d.forward), language="python")
    bn_backward.code(code.source(BatchNorm1d.backward), language="python")
