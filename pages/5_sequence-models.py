"""Chapter 5 · Sequence models: a recurrent network with batch norm per time step vs layer norm.

Thin page: controls, guided experiments and sections; the science is bn_core.recurrent, the
figures ui.sequence_figures, the glue and captions ui.sequence.
"""

from __future__ import annotations

import functools

import streamlit as st

from bn_core.recurrent import RNNClassifier
from ui import code, page, state
from ui import sequence as seq

page.setup(5)
notices = state.restore(seq.PARAMS)
with page.controls():
    st.slider("Batch size", 1, seq.MAX_BATCH, key="c5_batch",
              help="Sequences per mini-batch, for every norm and both experiments. BN per time "
                   "step needs at least 2.")
    st.slider("Training length T", 1, seq.MAX_LENGTH, key="c5_len",
              help="Length of the loudest-channel training sequences; they are tested up to 3T.")
    st.radio("BN beyond T", tuple(seq.POLICY_LABEL), key="c5_policy",
             format_func=seq.POLICY_LABEL.get,
             help="What batch norm normalizes with at test steps it never trained on.")
    with st.expander("Training"):
        st.slider("Training steps", 10, seq.MAX_STEPS, key="c5_steps")
        st.select_slider("Learning rate", options=seq.LR_OPTIONS, key="c5_lr",
                         help="SGD with momentum 0.9, the same for every norm.")
        st.select_slider("Gradient clipping (norm; 0 = off)", options=seq.CLIP_OPTIONS,
                         key="c5_clip")
        st.slider("Hidden units", 4, 128, key="c5_hidden")
        st.number_input("Seed", min_value=0, max_value=10_000, step=1, key="c5_seed")
    with st.expander("Variable lengths, batch-size sweep"):
        st.toggle("Variable-length batches", key="c5_var",
                  help="Train the loudest-channel task on lengths drawn from the shortest length to T.")
        st.slider("Shortest training length", 1, seq.MAX_LENGTH, key="c5_minlen")
        st.toggle("Batch-size sweep (18 runs)", key="c5_sweep")
page.guided(seq.EXPERIMENTS, seq.PARAMS)
state.publish(seq.PARAMS)
state.show_notices(notices)
page.lead("A recurrent network needs batch norm's statistics **per time step**, estimated from the "
          "batch; layer norm computes them **per sample**, so it works at any batch size and any length.")

settings = seq.settings_from(st.session_state)
if not seq.cost_ok(settings):
    st.stop()
cmp = seq.comparison(settings)

st.subheader("Two experiments, three normalizations")
page.chart(seq.comparison_chart(cmp), key="c5-comparison")
page.see(seq.describe_comparison(cmp))
seq.report_problems(cmp)
with page.more("Why: the network and its two normalizations"):
    st.latex(seq.RNN_LATEX)
    st.latex(seq.BN_LATEX)
    st.latex(seq.LN_LATEX)
    st.markdown(seq.TASKS_TEXT)

st.subheader("What each norm keeps, step by step")
page.chart(seq.unrolled_chart(settings.length, settings.policy), key="c5-unrolled")
page.see(seq.describe_unrolled(settings.length, settings.policy))
with page.more("Why: the evaluation policy beyond the trained length"):
    st.markdown(seq.POLICY_TEXT)

st.subheader("Batch norm's statistics differ from step to step")
page.chart(seq.running_means_chart(cmp), key="c5-running")
page.see(seq.describe_running_means(cmp))
with page.more("Why: running statistics per time step"):
    st.latex(seq.RUNNING_LATEX)
    st.markdown(seq.step_time_line(cmp))
page.chart(seq.step_spread_chart(cmp), key="c5-spread")
page.see(seq.describe_step_spread(cmp))
with page.more("Why: the spread that each step's statistics must match"):
    st.latex(seq.SPREAD_LATEX)

st.subheader("Variable-length batches")
if settings.variable:
    note = seq.min_length_note(st.session_state, settings)
    if note:
        st.info(note)
    var_results, var_errors = seq.variable_runs(settings)
    if var_results:
        left, right = st.columns(2)
        page.chart(seq.active_chart(var_results), key="c5-active", where=left)
        page.chart(seq.active_accuracy_chart(var_results, settings.length), key="c5-active-acc",
                   where=right)
        page.see(seq.describe_active(var_results, settings), where=left)
        page.see(seq.describe_length_accuracy(var_results, settings.length), where=right)
    for norm, msg in var_errors.items():
        st.warning(f"{seq.NORM_LABEL[norm]} could not train: {msg}")
    with page.more("Why: padding, masks and the last steps"):
        st.markdown(seq.VARIABLE_TEXT)
else:
    page.prose("Switch on **Variable-length batches** in the sidebar to train on lengths from "
               "the shortest training length to T, padded and masked, and count how many sequences "
               "each batch-norm step really averages over.")

st.subheader("Batch size")
if settings.sweep:
    base = settings.config("digits", "none")
    sweep = seq.sweep_cached(base, seq.SWEEP_BATCHES)
    page.chart(seq.sweep_chart(base, seq.SWEEP_BATCHES, sweep), key="c5-sweep")
    page.see(seq.describe_sweep(sweep))
    with page.more("Why: what the sweep holds fixed"):
        st.markdown(seq.SWEEP_TEXT)
else:
    page.prose("Switch on **Batch-size sweep** in the sidebar to train the digits at batch sizes "
               f"{', '.join(map(str, seq.SWEEP_BATCHES))} for the three norms (same steps and "
               "learning rate).")

st.subheader("Show the code and download the data")
with page.more("Show the code: the recurrent forward pass"):
    st.code(code.source(RNNClassifier.forward), language="python")
with page.more("Show the code: backpropagation through time"):
    st.code(code.source(RNNClassifier.backward), language="python")
c1, c2, c3 = st.columns(3)
c1.download_button("Training histories (CSV)", functools.partial(seq.histories_csv, cmp),
                   file_name="sequence_histories.csv", mime="text/csv", on_click="ignore", key="c5_dl_hist")
c2.download_button("Accuracy vs test length (CSV)", functools.partial(seq.lengths_csv, cmp),
                   file_name="sequence_accuracy_by_length.csv", mime="text/csv", on_click="ignore", key="c5_dl_len")
c3.download_button("BN running statistics per step (CSV)",
                   functools.partial(seq.running_means_csv, cmp),
                   file_name="sequence_bn_running_stats.csv", mime="text/csv", on_click="ignore", key="c5_dl_stats")

st.subheader("Why Transformers use LayerNorm")
st.markdown(seq.TRANSFORMER_TEXT)
