"""Chapter 4 · The curse of batch norm: what batch normalization costs, measured live, beside
the fixes (LayerNorm, GroupNorm, Batch Renormalization). Records, captions and cached core
calls live in ui/curse.py, figures in ui/curse_figures.py."""

import functools

import streamlit as st

from bn_core import axes as core_axes
from bn_core.layers import BatchRenorm1d
from ui import code, page, state
from ui import curse as cu
from ui import curse_figures as cf

page.setup(4)
from_link = "c4_groups" not in st.session_state  # restore() is about to read the groups from the link
notices = state.restore(cu.PARAMS)
if from_link:  # a link's groups that do not divide its width (a widget change is handled by the widget)
    notices += cu.reconcile(st.session_state)
with page.controls():
    cu.key_controls()
    cu.other_controls(st.session_state)
page.guided(cu.EXPERIMENTS, cu.PARAMS)
state.publish(cu.PARAMS)
state.show_notices(notices)
s = cu.settings(st.session_state)
page.lead("Batch norm divides by statistics of the mini-batch: with small, sorted or single-sample batches "
          "those statistics fail it, while LayerNorm and GroupNorm, which never look across the batch, carry on.")

# 1 · small batches (drawn as it fills in, largest batch first; shared by every visitor through the cache)
st.subheader("Small batches")
holder = st.empty()


sweep_key = (s.scale_lr, s.base_lr, s.width, s.groups)


def _partial(rec: dict, done: int, total: int) -> None:
    # the largest `done` batch sizes: the same record for every visitor waiting on this sweep
    fig = cu.figure("small-partial", (*sweep_key, s.batch, done), lambda: cf.fig_small_batches(rec, s.batch))
    with holder.container():
        page.chart(fig, key=f"c4-small-batches-partial-{done}")
        st.caption(f"Sweep in progress: {done} of {total} batch sizes done (shared with every visitor).")


sweep = cu.run_sweep(s, _partial)
with holder.container():
    page.chart(cu.figure("small", (*sweep_key, s.batch), lambda: cf.fig_small_batches(sweep, s.batch)),
               key="c4-small-batches")
    st.empty()  # takes the slot of the "in progress" line, which would otherwise stay
page.see(cu.describe_small_batches(sweep))
with page.more("Why: the formulas, and why the learning rate scales with the batch"):
    st.latex(cu.LATEX["small"])
    page.prose(cu.PROSE["small"].format(width=s.width, epochs=cu.EPOCHS))
    page.chart(cu.figure("lr", sweep_key, lambda: cf.fig_lr_used(sweep)), key="c4-lr-used")
st.download_button("Download the batch-size sweep (CSV)", functools.partial(cu.sweep_csv, sweep),
                   file_name="c4_batch_size_sweep.csv", mime="text/csv", on_click="ignore", key="c4-dl-sweep")

# 2 · why: noisy batch statistics
st.subheader("Why: noisy batch statistics")
stats = cu.stats_record(cu.batch_stats_cached())
page.chart(cu.figure("stats", (s.batch,), lambda: cf.fig_batch_stats(stats, s.batch)), key="c4-batch-stats")
page.see(cu.describe_batch_stats(stats))
with page.more("Why: the closed forms, and the central 68 % band"):
    st.latex(cu.LATEX["noise"])
    page.prose(cu.PROSE["noise"])
st.download_button("Download the sampled batch statistics (CSV)", functools.partial(cu.stats_csv, stats),
                   file_name="c4_batch_statistics.csv", mime="text/csv", on_click="ignore", key="c4-dl-stats")

# 3 · training vs inference
st.subheader("Training vs inference")
momentum = cu.momentum_record(cu.momentum_cached(s.batch, s.scale_lr, s.base_lr, s.width), s.batch)
page.chart(cu.figure("inference", (*sweep_key, s.batch),
                     lambda: cf.fig_train_vs_inference(sweep, momentum, current_batch=s.batch)),
           key="c4-train-vs-inference")
page.see(cu.describe_train_vs_inference(sweep, momentum))
with page.more("Why: running statistics and their momentum"):
    st.latex(cu.LATEX["inference"])
    page.prose(cu.PROSE["inference"])

# 4 · non-i.i.d. batches
st.subheader("Non-i.i.d. batches")
non_iid = cu.non_iid_cached(s.sort_batch, s.scale_lr, s.sort_lr, s.width, s.groups)
sorted_rec, shuffled_rec = cu.runs_record(non_iid, "by_class"), cu.runs_record(non_iid, "shuffled")
order_key = (s.sort_batch, s.scale_lr, s.sort_lr, s.width, s.groups)
page.chart(cu.figure("non_iid", order_key, lambda: cf.fig_runs(
    sorted_rec, title=f"Class-sorted batches of {s.sort_batch}, lr {s.sort_lr:g}: loss and accuracy")),
    key="c4-non-iid")
page.see(cu.describe_non_iid(sorted_rec, shuffled_rec, s.sort_batch))
page.chart(cu.figure("orders", order_key, lambda: cf.fig_orders(shuffled_rec, sorted_rec)), key="c4-orders")
with page.more("Why: class statistics in training, mixed statistics in evaluation"):
    st.latex(cu.LATEX["non_iid"])
    page.prose(cu.PROSE["non_iid"].format(lr=s.sort_lr))
st.download_button("Download the batch-order runs (CSV)", functools.partial(cu.non_iid_csv, non_iid),
                   file_name="c4_non_iid.csv", mime="text/csv", on_click="ignore", key="c4-dl-noniid")

# 5 · online learning
st.subheader("Online learning: a batch of one")
online = cu.online_record(cu.online_cached(s.scale_lr, s.base_lr, s.width, s.groups))
for norm, message in online["errors"].items():
    st.error(f"**{cf.NORM_LABEL[norm]} refuses a batch of one.** The layer's own message: {message}",
             icon=":material/block:")
page.chart(cu.figure("online", sweep_key, lambda: cf.fig_runs(
    online, title="Online learning: one pass, batch 1", x_key="samples",
    x_title="training samples seen", loss=False)), key="c4-online")
page.see(cu.describe_online(online))
with page.more("Why: one sample has no batch variance"):
    st.latex(cu.LATEX["online"])
    page.prose(cu.PROSE["online"].format(lr=cu.lr_for(1, s.scale_lr, s.base_lr),
                                         rule="the linear scaling rule at batch 1" if s.scale_lr else "fixed"))
st.download_button("Download the online runs (CSV)", functools.partial(cu.online_csv, online),
                   file_name="c4_online.csv", mime="text/csv", on_click="ignore", key="c4-dl-online")

# 6 · batch renormalization
st.subheader("Batch Renormalization")
renorm = cu.renorm_record(cu.renorm_cached(s.batch, s.r_max, s.d_max, s.r_order, s.scale_lr, s.renorm_lr,
                                           s.width), s.r_max, s.d_max)
page.chart(cu.figure("renorm", (s.batch, s.r_max, s.d_max, s.r_order, s.scale_lr, s.renorm_lr, s.width),
                     lambda: cf.fig_renorm(renorm)), key="c4-renorm")
page.see(cu.describe_renorm(renorm, s.batch, s.r_order, s.renorm_lr, s.scale_lr))
with page.more("Why: r and d, and the code"):
    st.latex(cu.LATEX["renorm"])
    page.prose(cu.PROSE["renorm"])
    st.code(code.source(BatchRenorm1d), language="python")
st.download_button("Download r and d over training (CSV)", functools.partial(cu.renorm_csv, renorm),
                   file_name="c4_renorm.csv", mime="text/csv", on_click="ignore", key="c4-dl-renorm")

# 7 · the cost
st.subheader("The cost")
cost = cu.cost_record(cu.cost_cached(s.width, s.batch, s.groups), s.width, s.batch)
page.chart(cu.figure("cost", (s.width, s.batch, *cost["ms"], *cost["kept_kib"]), lambda: cf.fig_cost(cost)),
           key="c4-cost")
page.see(cu.describe_cost(cost))
with page.more("Why: what each layer computes and keeps"):
    st.latex(cu.LATEX["cost"])
    page.prose(cu.PROSE["cost"])
    st.table(cu.cost_table(cost))
st.download_button("Download the timings (CSV)", functools.partial(cu.cost_csv, cost),
                   file_name="c4_cost.csv", mime="text/csv", on_click="ignore", key="c4-dl-cost")

# 8 · the alternatives and their axes
st.subheader("The alternatives and their axes")
ax = cu.axes_cached(s.ax_method, s.ax_groups, s.ax_n, s.ax_c)
page.chart(cu.figure("axes", (s.ax_method, s.ax_groups, s.ax_n, s.ax_c), lambda: cf.fig_axes(ax)), key="c4-axes")
page.see(cu.describe_axes(ax))
with page.more("Why: four sets, one formula, and the code"):
    st.latex(cu.LATEX["axes"])
    page.prose(cu.PROSE["axes"].format(n=cu.AX_SAMPLES, filters=", ".join(ax["filter_names"])))
    st.code(code.source(core_axes.normalize) + "\n\n" + code.source(core_axes.shared_mask), language="python")

# 9 · which normalizer when
st.subheader("Which normalizer when")
st.dataframe(cu.which_normalizer_table(sweep, sorted_rec, online, cost), hide_index=True)
page.see(cu.describe_table(sweep, sorted_rec, online))
