"""Chapter 1 tells the truth: widgets show the values in use, every sentence follows its chart.

One test (or more) per chapter-1 item of issue 10 and per guided experiment of issue 9. Each
item's test failed on the code before its fix (checked by running it against that commit).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from bn_core import regression as R
from tests.apptest import chart_specs, open_page
from ui import valley as vs
from ui import valley_figures as vf

PAGE = "pages/1_valley-vs-bowl.py"
SEED = ("seed", 42, 100, 0.1)


def _app(**query):
    at = open_page(PAGE, {k: str(v) for k, v in query.items()}, timeout=120)
    assert not at.exception, at.exception
    return at


def _specs(at) -> list[dict]:
    return chart_specs(at)


def _landscapes(at) -> dict:
    out = {}
    for s in _specs(at):
        title = s["layout"]["title"]["text"]
        if "loss landscape" in title:
            out[title.split(":")[0]] = s
    return out


def _path_len(spec) -> int:
    return len(next(t for t in spec["data"] if t.get("name", "").startswith("path"))["x"])


def _shown(widget):
    """The value the browser shows for a select slider: the proto's value when the script set
    it in this run (``set_value``), else the widget's default (Streamlit's frontend rule for a
    widget it has not seen before)."""
    p = widget.proto
    if p.set_value:
        return float(p.raw_value[0]) if len(p.raw_value) else float(p.options[int(p.value[0])])
    return float(p.options[int(p.default[0])])


# ---- item 1: a control shown again shows the value in use ------------------------------------

def test_step_sliders_shown_again_show_the_value_in_use():
    at = _app(c1_map=0, c1_epochs=5)
    at.select_slider(key="c1_frac").set_value(0.9).run()
    at.radio(key="c1_mode").set_value("same").run()
    assert _shown(at.select_slider(key="c1_lr")) == pytest.approx(5e-5)  # was 1e-6, the slider's first option
    at.radio(key="c1_mode").set_value("fraction").run()
    assert at.session_state["c1_frac"] == 0.9
    assert _shown(at.select_slider(key="c1_frac")) == 0.9  # was 0.01 while the page ran with 0.9


def test_optimizer_settings_shown_again_show_the_value_in_use():
    at = _app(c1_map=0, c1_epochs=5, c1_opt="momentum")
    assert _shown(at.select_slider(key="c1_mom")) == 0.9
    at.selectbox(key="c1_opt").set_value("gd").run()
    at.selectbox(key="c1_opt").set_value("momentum").run()
    assert _shown(at.select_slider(key="c1_mom")) == 0.9  # was 0.0
    at.selectbox(key="c1_opt").set_value("adam").run()
    at.select_slider(key="c1_beta2").set_value(0.99).run()
    at.selectbox(key="c1_opt").set_value("gd").run()
    at.selectbox(key="c1_opt").set_value("adam").run()
    assert _shown(at.select_slider(key="c1_beta2")) == 0.99 and _shown(at.select_slider(key="c1_beta1")) == 0.9


# ---- items 2 and 3: the batch size asked for survives a clamp; only link values are link notices

def test_batch_size_comes_back_when_n_is_raised():
    at = _app(c1_n=20, c1_map=0, c1_epochs=2)
    assert at.slider(key="c1_batch_slider").value == 20
    at.slider(key="c1_n").set_value(500).run()
    assert at.slider(key="c1_batch_slider").value == 100 and at.session_state["c1_batch"] == 100
    assert _path_len(_landscapes(at)["raw"]) == 2 * 5 + 1  # 500 / 100 = 5 steps per epoch (was 25)


def test_batch_size_comes_back_after_a_short_upload():
    at = _app(c1_source="upload", c1_map=0, c1_epochs=2)
    at.file_uploader(key="c1_upload_file").set_value(("three.csv", b"a,b,y\n1,2,3\n2,5,9\n3,1,5\n", "text/csv")).run()
    assert not at.exception and at.slider(key="c1_batch_slider").value == 3
    at.radio(key="c1_source").set_value("seed").run()
    assert at.slider(key="c1_batch_slider").value == 100  # was 3
    assert _path_len(_landscapes(at)["raw"]) == 2 * 1 + 1


def test_a_link_without_a_batch_size_gets_no_link_notice_about_it():
    at = _app(c1_n=20, c1_map=0, c1_epochs=2)
    assert not any("settings in the link" in w.value for w in at.warning)  # it was "batch size: 100 is more ..."
    notes = [c.value for c in at.sidebar.caption if "asked for" in c.value]
    assert notes and "n = 20" in notes[0] and "full batch of 20" in notes[0]
    at = _app(c1_n=20, c1_batch=50, c1_map=0, c1_epochs=2)  # a link value above n: said as one
    assert any("settings in the link" in w.value and "50 asked for" in w.value for w in at.warning)


# ---- item 5: an upload's error sits with the uploader, naming the file it holds ----------------

def test_a_bad_upload_is_explained_under_the_uploader():
    at = _app(c1_source="upload", c1_map=0, c1_epochs=2)
    at.file_uploader(key="c1_upload_file").set_value(("bad.csv", b"a,b\n1,2\n", "text/csv")).run()
    assert any("bad.csv cannot be used" in e.value for e in at.sidebar.error)
    assert not any("cannot be used" in e.value for e in at.main.error)
    assert any("The file the uploader holds, **bad.csv**" in w.value for w in at.main.warning)


# ---- item 6: batch norm's two modes, explained by the numbers ----------------------------------

def _independent_eval_losses(batch: int, epochs: int):
    """Training- vs evaluation-mode losses of the batch-norm run, and evaluation with the data's
    own variance or mean, computed here with numpy from the run's final weights."""
    p, _ = vs.problem(SEED, "batchnorm")
    lr = 0.5 * vs.data_facts(SEED).conds["batchnorm"].max_stable_lr
    res = vs.run(SEED, 42, "batchnorm", lr, batch, epochs, "gd", 0.9, 0.9, 0.999)
    w, b = res.final_theta[:2], res.final_theta[2]
    X, y = p.X, p.y

    def loss(mu, var):
        return float(np.mean(((X - mu) / np.sqrt(var + p.eps) @ w + b - y) ** 2))

    mean, var = X.mean(0), X.var(0)
    return res, loss(res.running_mean, res.running_var), loss(mean, res.running_var), loss(res.running_mean, var)


@pytest.mark.parametrize("batch, epochs", [(100, 100), (100, 5), (10, 5), (10, 100), (2, 3), (51, 20)])
def test_batch_norm_caption_names_the_cause_the_numbers_show(batch, epochs):
    res, ev, own_mean, own_var = _independent_eval_losses(batch, epochs)
    facts = vs.bn_modes_facts(SEED, res)
    assert facts["eval"] == pytest.approx(ev, rel=1e-9)
    text = vs.describe_bn_modes(facts)
    assert f"loss {vs.fmt_num(ev)}" in text
    train = facts["train"]
    if abs(ev - train) <= 0.01 * train:
        assert "agree" in text
        return
    # with the data's own mean only the running variance is left: if the gap stays, it is the variance's
    cause = "variance" if abs(own_mean - train) > abs(own_var - train) else "mean"
    assert f"most of the gap comes from the running **{cause}**" in text
    assert ("not caught up" in text) == (0.9 ** (epochs * math.ceil(100 / batch)) > 1e-3 if batch > 1 else False)


def test_full_batch_batch_norm_gap_is_the_unbiased_variance_not_lagging_statistics():
    at = _app(c1_variants="standardized,batchnorm", c1_map=0)
    cap = next(c.value for c in at.caption if "Evaluation mode" in c.value)
    assert "not caught up" not in cap  # the old caption's explanation, false after 100 full-batch steps
    assert "running **variance**" in cap and "n/(n − 1) = 1.01" in cap


def test_batch_norm_caption_after_a_divergence_says_so_instead_of_comparing_the_modes():
    at = _app(c1_variants="standardized,batchnorm", c1_frac=1.5, c1_epochs=200, c1_map=0)
    assert any("batch-normalized: diverged at step" in e.value for e in at.error)
    cap = next(c.value for c in at.caption if c.value.startswith("Batch norm"))
    assert "diverged at step" in cap and "agree" not in cap and "most of the gap" not in cap


# ---- item 7: the intro and the raw caption describe the data shown -----------------------------

@pytest.mark.parametrize("source", ["example", "upload"])
def test_intro_and_raw_note_describe_a_file_not_the_seed_recipe(source):
    at = _app(c1_source=source, c1_map=0, c1_epochs=5)
    if source == "upload":
        rows = "".join(f"{i},{(i * 37) % 11},{3 * i + 2 * ((i * 37) % 11) + 7}\n" for i in range(1, 41))
        at.file_uploader(key="c1_upload_file").set_value(("mine.csv", ("size,rooms,cost\n" + rows).encode(),
                                                          "text/csv")).run()
    text = " ".join(m.value for m in at.markdown)
    assert "2A + 3B" not in text and "U[1, 10]" not in text and "the data has none" not in text
    name = "area" if source == "example" else "size"
    intro = next(m.value for m in at.markdown if "by gradient descent" in m.value)
    assert name in intro
    raw_note = next(m.value for m in at.markdown if m.value.startswith("- **raw.**"))
    assert "fits no intercept" in raw_note and "best loss" in raw_note


def test_seed_recipe_intro_still_names_its_recipe():
    at = _app(c1_map=0, c1_epochs=5)
    intro = next(m.value for m in at.markdown if "by gradient descent" in m.value)
    assert "2A + 3B" in intro and "A spans" in intro


# ---- item 8: the stability map's words match its markers; four panels do not collide ----------

def _map(variants, batch_sizes=(1, 10, 100)):
    X, y = vs.dataset(SEED).X, vs.dataset(SEED).y
    xs, kind = vs.map_x_values("fraction")
    m = R.stability_map(X, y, variants, xs, kind, np.array(batch_sizes), 5, "gd", 0, R.Hyper(0.9, 0.9, 0.999))
    return m, vf.stability_figure(m.variants, m.x_values, m.x_kind, m.batch_sizes, m.final_loss, m.diverged,
                                  m.undefined).spec


def test_stability_caption_names_the_drawn_markers():
    m, spec = _map(("raw", "batchnorm"))
    words = vf.describe_markers(spec)
    drawn = {t["name"]: t["marker"] for t in spec["data"] if t.get("type") == "scatter"}
    assert set(drawn) == {"diverged", "undefined: batch norm needs >= 2 samples"}
    for marker in drawn.values():
        assert f"{vf.COLOUR_WORDS[marker['color']]} {vf.SYMBOL_WORDS[marker['symbol']]}" in words
    assert "red ×" not in words.lower().replace("orange-red", "")  # the markers are Okabe-Ito vermillion
    und = drawn["undefined: batch norm needs >= 2 samples"]
    assert not und["symbol"].endswith("-open") and und["size"] >= 10  # grey squares, not tiny hollow boxes
    text = vs.describe_stability(m, spec)
    assert "orange-red ×" in text and "grey squares" in text


@pytest.mark.parametrize("n", [1, 2, 3, 4])
def test_stability_panels_leave_room_for_their_axis_titles(n):
    _, spec = _map(("raw", "minmax", "standardized", "batchnorm")[:n], batch_sizes=(10, 100))
    lay = spec["layout"]
    width_px = 900  # the page's main column at 1280 x 720 with the sidebar open
    axes = [lay[k] for k in lay if k.startswith("xaxis")]
    assert len(axes) == n
    for a in axes:
        title = a["title"]["text"]
        assert (a["domain"][1] - a["domain"][0]) * width_px >= 8 * len(title)  # ~8 px per character at 15 px
    ys = {k: lay["y" + k[1:]]["domain"] for k in lay if k.startswith("xaxis")}
    keys = list(ys)
    for i, k1 in enumerate(keys):  # panels of one row never overlap
        for k2 in keys[i + 1:]:
            if ys[k1] == ys[k2]:
                d1, d2 = lay[k1]["domain"], lay[k2]["domain"]
                assert d1[1] <= d2[0] or d2[1] <= d1[0]


# ---- item 9: a path that leaves the drawn area is said to, diverged or not ---------------------

def _drawn_outside(spec) -> bool:
    t = next(t for t in spec["data"] if t.get("name", "").startswith("path"))
    x, y = np.array(t["x"], float), np.array(t["y"], float)
    (x0, x1), (y0, y1) = spec["layout"]["xaxis"]["range"], spec["layout"]["yaxis"]["range"]
    return bool(np.any((x < x0) | (x > x1) | (y < y0) | (y > y1)))


@pytest.mark.parametrize("variant", ["raw", "standardized", "minmax", "batchnorm"])
def test_every_landscape_says_when_its_path_leaves_the_chart(variant):
    facts = vs.data_facts(SEED)
    for frac in vs.FRACTION_OPTIONS:
        lr = vs.variant_lr(facts.conds[variant], "fraction", 0.0, frac)
        view = vs.variant_view(SEED, 42, variant, lr, 100, 100, "gd", 0.9, 0.9, 0.999)
        spec = view.figure.spec
        title = spec["layout"]["title"]["text"]
        assert ("leaves the chart" in title) == (_drawn_outside(spec) or view.result.diverged), (variant, frac)
        f = vs.path_facts(SEED, variant, view.result, spec, 1e-6)
        assert (f["leaves_at"] is not None) == _drawn_outside(spec)


def test_raw_path_at_1_01_leaves_the_chart_and_the_page_says_so():
    at = _app(c1_frac=1.01, c1_map=0)
    raw = _landscapes(at)["raw"]
    assert _drawn_outside(raw) and "the path leaves the chart at step" in raw["layout"]["title"]["text"]
    assert not at.error  # not diverged: only the drawing leaves the axes


# ---- the landscapes' and the convergence chart's sentences, over the settings grid -------------

@pytest.mark.parametrize("opt, mode, batch", [("gd", "fraction", 100), ("gd", "fraction", 10),
                                             ("momentum", "fraction", 100), ("adam", "same", 100),
                                             ("gd", "same", 100)])
def test_landscape_sentences_hold_over_the_grid(opt, mode, batch):
    facts = vs.data_facts(SEED)
    steps = vs.FRACTION_OPTIONS if mode == "fraction" else (1e-6, 5e-5, 1e-3, 0.3, 3.0)
    for x in steps:
        for v in R.VARIANTS:
            lr = vs.variant_lr(facts.conds[v], mode, x, x)
            view = vs.variant_view(SEED, 42, v, lr, batch, 20, opt, 0.9, 0.9, 0.999)
            res, spec = view.result, view.figure.spec
            f = vs.path_facts(SEED, v, res, spec, 1e-6)
            text = vs.describe_path(v, f, 1e-6)
            if res.diverged:
                assert f"diverges at step {res.diverged_at}" in text
                continue
            k = R.steps_to_tolerance(res.history["loss"], res.loss_star, 1e-6)
            assert (f"at step {k}" in text) if k is not None else ("within tolerance" not in text or "not" in text)
            star = res.theta_star[:2]
            path = np.column_stack([res.history["w1"], res.history["w2"]])
            left = np.linalg.norm(path[-1] - star) / np.linalg.norm(path[0] - star)
            if k is None and 0.001 <= left <= 1:
                assert f"{100 * left:.3g}%" in text
            if k is None and left > 1:
                assert f"{left:.3g} times as far" in text
            assert ("leaves the chart" in text) == _drawn_outside(spec)


@pytest.mark.parametrize("query", [{}, {"c1_frac": "1.5"}, {"c1_variants": "raw,minmax,batchnorm"}])
def test_convergence_sentence_quotes_the_theory_tables_measured_steps(query):
    at = _app(c1_map=0, **query)
    see = next(m.value for m in at.markdown if "where each curve crosses" in m.value)
    table = next(m.value for m in at.markdown if m.value.startswith("| variant | Hessian eigenvalues"))
    header, _, *rows = [[c.strip() for c in line.strip("|").split("|")] for line in table.splitlines()]
    measured = header.index("measured steps")
    assert len(rows) == len(query.get("c1_variants", "raw,standardized").split(","))
    for row in rows:
        assert f"{row[0]}: {row[measured]}" in see


# ---- item 10: Adam's learning rate is a step in weight units ----------------------------------

def test_adam_in_fraction_mode_explains_weight_units_instead_of_promising_a_rescue():
    at = _app(c1_opt="adam", c1_map=0, c1_epochs=5)
    note = next(i.value for i in at.info if "Adam" in i.value)
    assert "partly rescues" not in note and "weight units" in note
    t_std = R.least_squares(vs.problem(SEED, "standardized")[0].design, vs.dataset(SEED).y)
    assert f"{t_std[2]:.3g}" in note  # the standardized intercept, from the data


# ---- item 11: "same learning rate for all" opens where every variant runs ----------------------

@pytest.mark.parametrize("opt", ["gd", "momentum", "adam"])
def test_same_learning_rate_mode_opens_without_a_divergence(opt):
    at = _app(c1_map=0, c1_opt=opt, c1_variants="raw,minmax,standardized,batchnorm")
    at.radio(key="c1_mode").set_value("same").run()
    assert not at.exception and not any("diverged" in e.value for e in at.error)
    # plain gradient descent runs at the default step for every batch size, not only the default
    for b in (1, 2, 10, 100) if opt == "gd" else (100,):
        for v in R.VARIANTS:
            if v == "batchnorm" and b == 1:
                continue
            res = vs.run(SEED, 42, v, vs.P["c1_lr"].default, b, 2 if b < 10 else 100, opt, 0.9, 0.9, 0.999)
            assert not res.diverged, (v, b)


# ---- item 12: proportional features are named, and no "κ = inf times" ------------------------

def test_collinear_upload_is_warned_and_kappa_is_not_inf_times():
    at = _app(c1_source="upload", c1_map=0, c1_epochs=5, c1_variants="raw,standardized")
    rows = "".join(f"{a},{2 * a},{5 * a + (a % 3)}\n" for a in range(1, 30))
    at.file_uploader(key="c1_upload_file").set_value(("col.csv", ("a,b,y\n" + rows).encode(), "text/csv")).run()
    assert not at.exception
    warn = " ".join(w.value for w in at.warning)
    assert "carry the same information" in warn and "b = 2 × a" in warn
    text = " ".join(m.value for m in at.markdown)
    assert "inf times" not in text and "∞ times" not in text
    assert "zero curvature (κ = ∞)" in text


# ---- item 18 (structure): fixed contour levels ------------------------------------------------

def test_landscape_contours_use_fixed_levels():
    spec = vs.variant_view(SEED, 42, "raw", 3e-5, 100, 100, "gd", 0.9, 0.9, 0.999).figure.spec
    c = spec["data"][0]
    assert c["type"] == "contour" and c["autocontour"] is False
    lv = c["contours"]
    z = np.array(c["z"], float)
    assert lv["start"] <= np.nanmin(z) and lv["end"] >= np.nanmax(z) and lv["size"] == 0.5


# ---- issue 9: the animation's speed control --------------------------------------------------

@pytest.mark.parametrize("speed", list(vf.SPEEDS))
def test_animation_speed_sets_the_play_button(speed):
    at = _app(c1_map=0, c1_speed=speed)
    raw = _landscapes(at)["raw"]
    play = next(b for b in raw["layout"]["updatemenus"][0]["buttons"] if b["label"] == "play")
    assert play["args"][1]["frame"]["duration"] == vf.SPEEDS[speed]
    n_frames = len(raw["frames"])
    assert n_frames <= vf.N_FRAMES + 2 and n_frames * vf.SPEEDS["normal"] >= 4000  # 24 frames took 1.9 s


# ---- issue 9: the guided experiments run, change what is drawn, and their notes hold ----------

def _experiment(label):
    return next(i for i, e in enumerate(vs.EXPERIMENTS) if e.label == label)


def _click(label):
    at = _app()
    before = {t: s["data"] for t, s in ((s["layout"]["title"]["text"], s) for s in _specs(at))}
    at.button(key=f"_guided_c1_{_experiment(label)}").click().run()
    assert not at.exception, at.exception
    after = {s["layout"]["title"]["text"]: s["data"] for s in _specs(at)}
    assert after != before, "the experiment must change what is drawn"
    assert any(label in i.value for i in at.info)  # its note is shown on the page
    return at


def _run_of(e, variant):
    cfg = e.config(vs.PARAMS)
    facts = vs.data_facts(SEED)
    lr = vs.variant_lr(facts.conds[variant], cfg["c1_mode"], cfg["c1_lr"], cfg["c1_frac"])
    view = vs.variant_view(SEED, 42, variant, lr, min(cfg["c1_batch"], 100), cfg["c1_epochs"], cfg["c1_opt"],
                           cfg["c1_mom"], cfg["c1_beta1"], cfg["c1_beta2"])
    return view.result, vs.path_facts(SEED, variant, view.result, view.figure.spec, cfg["c1_tol"])


def test_there_are_three_to_five_experiments_with_one_sentence_each():
    assert 3 <= len(vs.EXPERIMENTS) <= 5
    for e in vs.EXPERIMENTS:
        assert e.look_for.count(". ") == 0 and e.look_for.endswith(".")
        assert set(e.settings) <= {p.key for p in vs.PARAMS}


def test_experiment_valley_at_0_9():
    e = vs.EXPERIMENTS[_experiment("The valley at 0.9 of 2/λ_max")]
    _click(e.label)
    _, raw = _run_of(e, "raw")
    _, std = _run_of(e, "standardized")
    assert raw["reversals"] >= 3 and raw["to_tol"] is None and raw["left"] > 0.3  # zigzags, still far
    assert std["to_tol"] is not None and std["to_tol"] < 30


def test_experiment_past_the_edge():
    e = vs.EXPERIMENTS[_experiment("Past the edge: 1.01 of 2/λ_max")]
    at = _click(e.label)
    for v in ("raw", "standardized"):
        res, f = _run_of(e, v)
        lam = vs.data_facts(SEED).conds[v].lambda_max
        assert abs(1 - res.lr * lam) == pytest.approx(1.02)
        assert f["left"] > 1  # ends farther from the star than it started
    assert _run_of(e, "raw")[1]["leaves_at"] is not None
    assert "leaves the chart" in _landscapes(at)["raw"]["layout"]["title"]["text"]


def test_experiment_adam_at_one_learning_rate():
    e = vs.EXPERIMENTS[_experiment("Adam at one learning rate")]
    _click(e.label)
    raw_res, raw = _run_of(e, "raw")
    std_res, std = _run_of(e, "standardized")
    assert raw["to_tol"] is not None  # the valley no longer slows it
    assert std["left"] < 0.01  # next to the star too
    ratio = np.linalg.norm(std_res.theta_star) / np.linalg.norm(raw_res.theta_star)
    assert 50 <= ratio <= 200  # "about 100 times farther from the start"


def test_experiment_mini_batches_of_10():
    e = vs.EXPERIMENTS[_experiment("Mini-batches of 10")]
    _click(e.label)
    std_res, std = _run_of(e, "standardized")
    _, raw = _run_of(e, "raw")
    assert std["to_tol"] is not None and std["to_tol"] <= 20  # near the star within a few steps
    rel = vs.relative_suboptimality(std_res)
    assert np.median(rel[-100:]) > 1e-12  # then jitters (full batch reaches ~1e-32)
    assert raw["left"] > 0.1


def test_experiment_batch_norm_training_vs_evaluation():
    e = vs.EXPERIMENTS[_experiment("Batch norm: training vs evaluation")]
    at = _click(e.label)
    bn, _ = _run_of(e, "batchnorm")
    std, _ = _run_of(e, "standardized")
    np.testing.assert_allclose(bn.history["w1"], std.history["w1"], rtol=1e-4, atol=1e-4)  # up to eps
    facts = vs.bn_modes_facts(SEED, bn)
    assert facts["eval"] > 10 * facts["train"]
    assert facts["var_ratio"] == pytest.approx([100 / 99] * 2, rel=1e-3)
    assert any("running **variance**" in c.value for c in at.caption)


def test_what_a_shared_view_keeps_is_what_the_functions_compute_for_its_run():
    facts = vs.data_facts(SEED)
    for variant in ("raw", "batchnorm"):
        for frac, tol in ((0.5, 1e-6), (1.01, 1e-3)):
            lr = vs.variant_lr(facts.conds[variant], "fraction", 0.0, frac)
            view = vs.variant_view(SEED, 42, variant, lr, 10, 20, "gd", 0.9, 0.9, 0.999)
            kept = view.path_facts(SEED, variant, tol)
            assert kept == vs.path_facts(SEED, variant, view.result, view.figure.spec, tol)
            assert view.path_facts(SEED, variant, tol) is kept  # computed once, then shared
            row = view.theory_row(variant, lr, tol)
            assert row == vs.theory_table({variant: (view.cond, lr, view.result, tol)})[0]
            assert row["step used α"] == vs.fmt_num(lr) and row["measured steps"] == vs.measured_steps_text(
                view.result, tol)
        assert view.path_facts(SEED, variant, 1e-9) != view.path_facts(SEED, variant, 0.5)  # per tolerance


def test_a_landscape_at_another_speed_is_one_shared_copy_with_only_the_play_button_changed():
    fig = vs.variant_view(SEED, 42, "raw", 1e-5, 100, 100, "gd", 0.9, 0.9, 0.999).figure
    fast, slow = vf.with_speed(fig, "fast"), vf.with_speed(fig, "slow")
    assert vf.with_speed(fig, "fast") is fast and fast is not fig
    durations = {}
    for name, f in (("fast", fast), ("slow", slow)):
        play = [b for m in f.spec["layout"]["updatemenus"] for b in m["buttons"] if b["label"] == "play"]
        durations[name] = play[0]["args"][1]["frame"]["duration"]
        assert f.spec["data"] is fig.spec["data"] and f.spec["frames"] is fig.spec["frames"]
    assert durations == {"fast": vf.SPEEDS["fast"], "slow": vf.SPEEDS["slow"]}
