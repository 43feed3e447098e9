"""Chapter 1 page under AppTest: it runs, interactions change what is drawn, URLs restore and clamp."""

import base64
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import chart_json, chart_specs, charts, open_page

PAGE = "pages/1_valley-vs-bowl.py"
APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _app(**query) -> AppTest:
    at = open_page(PAGE, query, timeout=120)
    assert not at.exception, at.exception
    return at


def _decode(v):
    """Plotly typed arrays ({"dtype", "bdata"}) -> numpy; lists stay lists."""
    if isinstance(v, dict) and "bdata" in v:
        arr = np.frombuffer(base64.b64decode(v["bdata"]), dtype=np.dtype(v["dtype"]).newbyteorder("<"))
        return arr.reshape([int(d) for d in v["shape"].split(",")]) if "shape" in v else arr
    return v


def _no_constant(name):
    raise AssertionError(f"{name} in a figure's JSON")


def _specs(at) -> list[dict]:
    """Figure JSONs; parsing fails on a NaN/Infinity literal."""
    return chart_specs(at, parse_constant=_no_constant)


def _path(spec) -> tuple[np.ndarray, np.ndarray]:
    trace = next(t for t in spec["data"] if t.get("name", "").startswith("path"))
    return np.asarray(_decode(trace["x"]), float), np.asarray(_decode(trace["y"]), float)


def _title(spec) -> str:
    return spec["layout"]["title"]["text"]


def _all_numbers_finite(obj) -> bool:
    if isinstance(obj, dict):
        if "bdata" in obj:
            return bool(np.all(np.isfinite(_decode(obj))))
        return all(_all_numbers_finite(v) for v in obj.values())
    if isinstance(obj, list):
        return all(_all_numbers_finite(v) for v in obj)
    if isinstance(obj, float):
        return np.isfinite(obj)
    return True


def _landscapes(at) -> dict:
    return {_title(s).split(":")[0]: s for s in _specs(at) if "loss landscape" in _title(s)}


def test_default_page_shows_the_valley_and_the_bowl():
    at = _app()
    metrics = [m.value for m in at.metric]
    assert "920" in metrics and "1.32" in metrics  # kappa of raw and standardized, default data
    assert "7.41e-05" in metrics and "0.88" in metrics  # 2 / lambda_max
    specs = _specs(at)
    assert len(specs) == 4  # two landscapes, convergence, stability map
    for s in specs:
        assert _all_numbers_finite(s)
        assert s["layout"]["title"]["text"] and s["layout"]["xaxis"]["title"]["text"]
    raw = _landscapes(at)["raw"]
    assert raw["frames"] and raw["layout"]["updatemenus"][0]["buttons"][0]["label"] == "play"
    x, y = _path(raw)
    assert len(x) == 101  # 100 epochs x 1 full batch + the start
    assert not at.error
    # the slice notes moved from captions into the "What exactly is drawn" expander (issue 9)
    assert any("**is** the loss being descended: exact" in m.value for m in at.markdown)


def test_learning_rate_and_batch_size_change_the_drawn_paths():
    at = _app(c1_map="0", c1_epochs="20")
    x0, y0 = _path(_landscapes(at)["raw"])
    at.select_slider(key="c1_frac").set_value(0.9).run()
    assert not at.exception
    x1, y1 = _path(_landscapes(at)["raw"])
    assert len(x1) == len(x0) and not np.allclose(y1, y0)
    at.slider(key="c1_batch_slider").set_value(10).run()
    assert not at.exception
    x2, _ = _path(_landscapes(at)["raw"])
    assert len(x2) == 20 * 10 + 1  # 10 mini-batches per epoch: same number of steps for every variant
    _, ys = _path(_landscapes(at)["standardized (z-score)"])
    assert len(ys) == len(x2)
    # same learning rate for all: the lr slider drives both
    at.radio(key="c1_mode").set_value("same").run()
    a = _path(_landscapes(at)["standardized (z-score)"])[1]
    at.select_slider(key="c1_lr").set_value(0.1).run()
    b = _path(_landscapes(at)["standardized (z-score)"])[1]
    assert not at.exception and not np.allclose(a, b)
    assert at.query_params["c1_lr"] == ["0.1"] or at.query_params["c1_lr"] == "0.1"


def test_url_parameters_restore_the_view():
    at = _app(c1_mode="same", c1_lr="0.00005", c1_batch="20", c1_epochs="7", c1_variants="raw,minmax",
              c1_opt="momentum", c1_mom="0.8", c1_seed="7", c1_n="60", c1_noise="0.5", c1_tol="0.001", c1_map="0")
    ss = at.session_state
    assert ss["c1_mode"] == "same" and ss["c1_lr"] == pytest.approx(5e-5) and ss["c1_batch"] == 20
    assert ss["c1_variants"] == ["raw", "minmax"] and ss["c1_opt"] == "momentum" and ss["c1_mom"] == 0.8
    assert ss["c1_seed"] == 7 and ss["c1_n"] == 60 and ss["c1_noise"] == pytest.approx(0.5)
    assert not at.warning
    land = _landscapes(at)
    assert set(land) == {"raw", "min-max [0, 1]"}
    assert len(_path(land["raw"])[0]) == 7 * 3 + 1  # ceil(60 / 20) = 3 steps per epoch


@pytest.mark.parametrize("bad", ["garbage", "nan", "inf", "-5", "1e300"])
def test_garbage_url_values_are_clamped_with_a_warning(bad):
    keys = ["c1_lr", "c1_frac", "c1_n", "c1_noise", "c1_batch", "c1_epochs", "c1_tol", "c1_seed", "c1_mom",
            "c1_beta1", "c1_beta2", "c1_mode", "c1_opt", "c1_variants", "c1_map"]
    query = {k: bad for k in keys}
    if bad in ("inf", "1e300"):
        query["c1_epochs"] = "2"  # keep n = 500 with huge epochs out of a unit test's time budget
    at = _app(**query)
    assert at.warning, "the page must say what it changed"
    assert "adjusted" in at.warning[0].value
    ss = at.session_state
    assert 2 <= ss["c1_n"] <= 500 and 1 <= ss["c1_batch"] <= ss["c1_n"] and 1 <= ss["c1_epochs"] <= 200
    assert 1e-6 <= ss["c1_lr"] <= 3 and 0.01 <= ss["c1_frac"] <= 1.5 and 0 <= ss["c1_noise"] <= 100
    for s in _specs(at):
        assert _all_numbers_finite(s)


def test_batch_size_one_with_batch_norm_explains_instead_of_crashing():
    at = _app(c1_variants="raw,batchnorm", c1_batch="1", c1_epochs="2", c1_n="30")
    text = " ".join(w.value for w in at.warning)
    assert "one sample" in text and "variance" in text
    assert set(_landscapes(at)) == {"raw"}  # batch norm skipped, raw still drawn
    map_spec = next(s for s in _specs(at) if "Stability" in _title(s))
    assert any("undefined" in t.get("name", "") for t in map_spec["data"])


def test_only_batch_norm_with_batch_size_one_still_runs():
    at = _app(c1_variants="batchnorm", c1_batch="1", c1_epochs="2", c1_n="10")
    assert any("one sample" in w.value for w in at.warning)


def test_two_samples_and_every_variant():
    at = _app(c1_n="2", c1_batch="2", c1_epochs="5", c1_variants="raw,minmax,standardized,batchnorm")
    assert len(_landscapes(at)) == 4
    for s in _specs(at):
        assert _all_numbers_finite(s)


def test_divergence_is_named_and_charts_stay_finite():
    at = _app(c1_frac="1.5", c1_epochs="60", c1_map="0")
    errors = " ".join(e.value for e in at.error)
    assert "diverged at step" in errors
    for el in charts(at):
        assert "NaN" not in chart_json(el) and "Infinity" not in chart_json(el)
    for s in _specs(at):
        assert _all_numbers_finite(s)
    assert "diverged at step" in _title(_landscapes(at)["raw"])


def test_same_learning_rate_too_large_for_raw_only():
    at = _app(c1_mode="same", c1_lr="0.01", c1_epochs="30", c1_map="0")
    errors = " ".join(e.value for e in at.error)
    assert "raw: diverged at step" in errors and "standardized" not in errors


def test_adam_and_momentum_run():
    for opt in ("adam", "momentum"):
        at = _app(c1_opt=opt, c1_mode="same", c1_lr="0.3", c1_epochs="20", c1_map="0")
        assert len(_landscapes(at)) == 2


def test_batch_size_larger_than_n_is_clamped():
    at = _app(c1_n="20", c1_batch="100", c1_map="0", c1_epochs="3")
    # The slider shows the batch that runs (20); the 100 asked for is kept (issue 10, item 2:
    # the old assertion, c1_batch == 20, was the bug that lost the asked value).
    assert at.slider(key="c1_batch_slider").value == 20 and at.session_state["c1_batch"] == 100
    assert any("batch size" in w.value for w in at.warning)


def test_download_and_code_expander_present():
    at = _app(c1_map="0", c1_epochs="5")
    assert at.get("download_button")
    assert any("def descend" in c.value for c in at.code)


def test_example_csv_from_the_link():
    at = _app(c1_source="example", c1_map="0", c1_epochs="10")
    assert any("area_m2" in i.value and "example CSV" in i.value for i in at.info)
    land = _landscapes(at)
    assert "area_m2" in land["raw"]["layout"]["xaxis"]["title"]["text"]
    table = next(m.value for m in at.markdown if "| model |" in m.value)
    assert "w_area_m2" in table and "true (data recipe)" not in table


def test_uploaded_csv_runs_and_a_bad_one_is_explained():
    at = _app(c1_source="upload", c1_map="0", c1_epochs="10")
    assert any("Upload a CSV" in i.value for i in at.info)  # nothing uploaded yet: seed data, said so
    labels = {b.proto.label: b.proto.ignore_rerun for b in at.get("download_button")}
    assert labels.get("Download the example CSV") is True  # offered in upload mode; a click reruns nothing
    rows = "".join(f"{i},{(i * 37) % 11},{3 * i + 2 * ((i * 37) % 11)}\n" for i in range(1, 41))
    at.file_uploader(key="c1_upload_file").set_value(("mine.csv", ("size;rooms;cost\n" + rows.replace(",", ";")).encode(),
                                                      "text/csv")).run()
    assert not at.exception
    assert any("your CSV" in i.value and "size" in i.value for i in at.info)
    assert "size" in _landscapes(at)["raw"]["layout"]["xaxis"]["title"]["text"]
    at.file_uploader(key="c1_upload_file").set_value(("bad.csv", b"a,b\n1,2\n", "text/csv")).run()
    assert not at.exception
    assert any("bad.csv cannot be used" in e.value and "3 columns" in e.value for e in at.error)
    assert _landscapes(at)  # the seed data is still drawn


def test_uploaded_csv_with_a_constant_feature_explains_infinite_kappa():
    at = _app(c1_source="upload", c1_variants="raw,minmax,standardized,batchnorm", c1_epochs="5")
    at.file_uploader(key="c1_upload_file").set_value(
        ("flat.csv", b"a,b,y\n5,1,3\n5,2,4\n5,4,9\n5,7,15\n", "text/csv")).run()
    assert not at.exception
    warnings = " ".join(w.value for w in at.warning)
    assert "'a' is constant" in warnings and "condition number is infinite" in warnings
    assert "∞" in [m.value for m in at.metric]
    assert len(_landscapes(at)) == 4
    for s in _specs(at):
        assert _all_numbers_finite(s)


def test_batch_norm_evaluation_mode_is_reported():
    at = _app(c1_variants="standardized,batchnorm", c1_epochs="5", c1_map="0")
    cap = next(c.value for c in at.caption if "Evaluation mode" in c.value)
    assert "running mean" in cap and "running variance" in cap
    table = next(m.value for m in at.markdown if "| model |" in m.value)
    assert "batch-normalized: evaluation mode (running statistics)" in table


# ---- review fixes: hostile uploads, numbers computed from the data, no wasted work ----------

def _upload(at, name: str, data: bytes):
    at.file_uploader(key="c1_upload_file").set_value((name, data, "text/csv")).run()
    assert not at.exception, at.exception
    return at


def test_upload_with_huge_values_is_refused_naming_the_column_not_a_traceback():
    at = _app(c1_source="upload", c1_map="0", c1_epochs="5")
    rows = "".join(f"{i * 1e160:.6e},{i % 7},{i}\n" for i in range(1, 30))
    _upload(at, "huge.csv", ("big,small,y\n" + rows).encode())
    errors = " ".join(e.value for e in at.error)
    assert "huge.csv cannot be used" in errors and "column 'big'" in errors and "magnitude" in errors
    assert set(_landscapes(at)) == {"raw", "standardized (z-score)"}  # the seed data is drawn instead
    for s in _specs(at):
        assert _all_numbers_finite(s)


@pytest.mark.parametrize("name, data, message", [
    ("long.csv", b"a,b,y\n" + b"1" * 200_000 + b",2,3\n4,5,6\n", "cannot be read as CSV"),
    ("book.xlsx.csv", b"PK\x03\x04\x14\x00" + b"\x00" * 64, "Excel workbook"),
    ("unicode.csv", "a,b,y\n1,2,3\n4,5,6\n".encode("utf-16"), "UTF-16"),
    ("empty.csv", b"", "empty"),
])
def test_malformed_uploads_are_explained_on_the_page(name, data, message):
    at = _upload(_app(c1_source="upload", c1_map="0", c1_epochs="5"), name, data)
    assert any(f"{name} cannot be used" in e.value and message in e.value for e in at.error)
    assert _landscapes(at)


def test_the_page_says_how_large_an_upload_may_be_and_the_server_agrees():
    import tomllib

    from bn_core.upload import MAX_MB
    at = _app(c1_source="upload", c1_map="0", c1_epochs="5")
    label = at.get("file_uploader")[0].proto.label
    assert f"at most {MAX_MB} MB" in label
    config = tomllib.loads((Path(APP).parent / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == MAX_MB


def _raw_numbers(X):
    """Independent truths: the raw Hessian's diagonal ratio and eigenvalue ratio, with numpy directly."""
    H = 2 * X.T @ X / len(X)
    ev = np.linalg.eigvals(H).real
    return H[1, 1] / H[0, 0], ev.max() / ev.min()


def test_intro_numbers_are_computed_from_the_data_shown():
    from bn_core.data import make_regression
    from bn_core.upload import parse_two_feature_csv
    from ui.valley import EXAMPLE_CSV

    at = _app(c1_map="0", c1_epochs="5")
    intro = next(m.value for m in at.markdown if "On the data shown" in m.value)
    ratio, kappa = _raw_numbers(make_regression().X)
    assert f"**{ratio:.3g} times** more steeply along w₂ (B) than along w₁ (A)" in intro
    assert f"κ = {kappa:.3g} times" in intro and "900" not in intro
    # the example CSV: other numbers, and here w1 (area) is the steep axis
    at = _app(c1_source="example", c1_map="0", c1_epochs="5")
    intro = next(m.value for m in at.markdown if "On the data shown" in m.value)
    ratio, kappa = _raw_numbers(parse_two_feature_csv(EXAMPLE_CSV.read_bytes()).X)
    assert ratio < 1 and f"**{1 / ratio:.3g} times** more steeply along w₁ (area_m2)" in intro
    assert f"κ = {kappa:.3g} times" in intro


def test_theory_prose_quotes_min_max_kappa_only_when_computed():
    from bn_core.data import make_regression

    X = make_regression().X
    D = np.column_stack([(X - X.min(0)) / (X.max(0) - X.min(0)), np.ones(len(X))])
    ev = np.linalg.eigvals(2 * D.T @ D / len(X)).real
    at = _app(c1_variants="raw,minmax", c1_map="0", c1_epochs="5")
    prose = next(m.value for m in at.markdown if "Predictions are for" in m.value)
    assert f"min-max has κ = {ev.max() / ev.min():.3g}" in prose
    at = _app(c1_map="0", c1_epochs="5")
    prose = next(m.value for m in at.markdown if "Predictions are for" in m.value)
    assert "min-max has κ" not in prose and "≈ 32" not in prose


def test_learning_rate_mode_help_quotes_this_data_limits():
    from bn_core.data import make_regression

    X = make_regression().X
    raw = 2 / np.linalg.eigvalsh(2 * X.T @ X / len(X))[-1]
    at = _app(c1_map="0", c1_epochs="5")
    help_text = at.radio(key="c1_mode").help
    assert f"raw below {raw:.3g}" in help_text and "~7e-5" not in help_text


@pytest.mark.parametrize("query, expected, absent", [
    ({"c1_opt": "gd"}, "unstable beyond a fraction of 1 for every variant", "2(1 + μ)"),
    ({"c1_opt": "momentum", "c1_mom": "0.5"}, "2(1 + μ)/λ_max: a fraction of 1.5", "beyond a fraction of 1 for"),
    ({"c1_opt": "adam"}, "Adam has no 2/λ_max limit", "beyond a fraction of 1 for"),
    ({"c1_opt": "gd", "c1_mode": "same"}, "same learning rate for all", "fraction* mode"),
])
def test_stability_map_caption_depends_on_the_optimizer(query, expected, absent):
    at = _app(c1_epochs="2", c1_n="20", **query)
    caption = next(m.value for m in at.markdown if "Final full-batch loss" in m.value)
    assert expected in caption and absent not in caption


def test_infinite_kappa_labels_the_rate_over_identifiable_directions():
    at = _app(c1_source="upload", c1_variants="raw,standardized", c1_epochs="5", c1_map="0")
    _upload(at, "flat.csv", b"a,b,y\n5,1,3\n5,2,4\n5,4,9\n5,7,15\n")
    table = next(m.value for m in at.markdown if "| variant |" in m.value)
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()[2:]}
    # standardized: the constant column becomes 0, kappa = inf, and the rate and optimal step are
    # over the identifiable directions; raw keeps the constant 5 as a regressor (kappa finite)
    assert "| ∞ |" in rows["standardized (z-score)"]
    assert rows["standardized (z-score)"].count("(over identifiable directions)") == 2
    assert "∞" not in rows["raw"] and "identifiable" not in rows["raw"]


def test_seed_data_is_generated_once_and_the_convergence_chart_built_once(monkeypatch):
    import ui.valley as vs
    import ui.valley_figures as vf

    calls = {"data": 0, "fig": 0}
    make, conv = vs.make_regression, vf.convergence_figure

    def counting_make(*a, **k):
        calls["data"] += 1
        return make(*a, **k)

    def counting_conv(*a, **k):
        calls["fig"] += 1
        return conv(*a, **k)

    monkeypatch.setattr(vs, "make_regression", counting_make)
    monkeypatch.setattr(vf, "convergence_figure", counting_conv)
    monkeypatch.setattr(vs, "WARM_AFTER_SESSIONS", 10**9)  # the page's own builds (warming: test_valley_warm.py)
    at = _app(c1_seed="9173", c1_epochs="3", c1_n="30")  # a seed no other test uses: nothing cached yet
    assert calls["data"] == 1 and calls["fig"] == 1
    at.run()  # a rerun with nothing changed
    at.select_slider(key="c1_frac").set_value(0.9).run()  # new runs, same data
    assert not at.exception
    assert calls["data"] == 1  # before: regenerated several times on every rerun
    assert calls["fig"] == 2  # only the changed setting built a new chart


def test_relative_suboptimality_of_an_overflowed_start_is_nan_without_a_warning():
    import warnings

    import ui.valley as vs
    from bn_core import regression as R

    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(1, 10, 20) * 1e160, rng.uniform(1, 200, 20)])
    res = R.run(R.make_problem(X, X @ [2.0, 3.0], "raw"), 1e-3, 20, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rel = vs.relative_suboptimality(res)
    assert rel.shape == (1,) and np.isnan(rel).all()


def test_changing_n_keeps_the_batch_size_instead_of_resetting_it_to_one():
    at = _app(c1_map="0", c1_epochs="3")
    at.slider(key="c1_n").set_value(200).run()
    assert at.session_state["c1_batch"] == 100 and at.slider(key="c1_batch_slider").max == 200
    at.slider(key="c1_batch_slider").set_value(150).run()
    at.slider(key="c1_n").set_value(300).run()  # the batch slider's range changes again
    assert not at.exception and at.session_state["c1_batch"] == 150
    assert len(_path(_landscapes(at)["raw"])[0]) == 3 * 2 + 1  # ceil(300 / 150) = 2 steps per epoch
    at.slider(key="c1_n").set_value(40).run()  # below the batch size: clamped to full batch, and said
    # clamped for the run, kept as asked (issue 10, item 2: it used to become 40 for good)
    assert at.slider(key="c1_batch_slider").value == 40 and at.session_state["c1_batch"] == 150
    assert any("Batch size: 150 asked for" in c.value for c in at.sidebar.caption)  # said, not a link notice


def test_diverged_landscape_titles_put_the_step_on_their_own_line():
    at = _app(c1_mode="same", c1_lr="3", c1_variants="raw,minmax,standardized,batchnorm", c1_map="0",
              c1_epochs="5")
    errors = " ".join(e.value for e in at.error)
    lands = _landscapes(at)
    assert len(lands) == 4
    for label, spec in lands.items():
        first, *rest = _title(spec).split("<br>")
        assert "diverged" not in first and len(rest) == 1
        step = rest[0].split("diverged at step ")[1].split(":")[0]
        assert step.isdigit() and f"{label}: diverged at step {step}" in errors
        assert "leaves the chart" in rest[0]


def test_constant_column_is_one_warning_and_file_notices_are_not_link_notices():
    at = _app(c1_source="upload", c1_variants="raw,minmax,standardized,batchnorm", c1_epochs="5", c1_map="0")
    at.file_uploader(key="c1_upload_file").set_value(
        ("flat.csv", b"a,b,y\n5,1,3\n5,2,4\n5,4,9\n5,7,15\n", "text/csv")).run()
    assert not at.exception
    warnings = [w.value for w in at.warning]
    assert sum("is constant" in w for w in warnings) == 1
    # the default batch size (100) exceeds the file's 4 rows: a fact about the file, not the link
    assert not any("settings in the link" in w for w in warnings)
    about = [w for w in warnings if w.startswith("About your file")]
    assert len(about) == 1 and "n = 4 samples" in about[0]
    assert "settings in the link" in " ".join(w.value for w in _app(c1_batch="500", c1_map="0").warning)


def _query(at, key):
    v = at.query_params.get(key)
    return v[0] if isinstance(v, list) else v


def test_only_the_chosen_optimizer_and_mode_show_their_controls_and_hidden_values_are_kept():
    at = _app(c1_epochs="5", c1_map="0")
    sidebar_keys = {w.key for w in at.sidebar.select_slider}
    assert "c1_frac" in sidebar_keys and "c1_lr" not in sidebar_keys  # default: fraction mode
    assert not sidebar_keys & {"c1_mom", "c1_beta1", "c1_beta2"}  # default: plain gradient descent
    at.selectbox(key="c1_opt").set_value("momentum").run()
    at.select_slider(key="c1_mom").set_value(0.5).run()
    at.select_slider(key="c1_frac").set_value(0.9).run()
    at.selectbox(key="c1_opt").set_value("adam").run()
    keys = {w.key for w in at.sidebar.select_slider}
    assert {"c1_beta1", "c1_beta2"} <= keys and "c1_mom" not in keys
    assert _query(at, "c1_mom") == "0.5"  # a hidden control stays in the link
    at.radio(key="c1_mode").set_value("same").run()
    assert "c1_frac" not in {w.key for w in at.sidebar.select_slider}
    at.radio(key="c1_mode").set_value("fraction").run()
    at.selectbox(key="c1_opt").set_value("momentum").run()
    assert not at.exception
    assert at.select_slider(key="c1_mom").value == 0.5  # came back with the value the user chose
    assert at.select_slider(key="c1_frac").value == 0.9
    assert _query(at, "c1_frac") == "0.9" and _query(at, "c1_opt") == "momentum"


def test_a_link_with_a_hidden_control_restores_it_when_shown():
    at = _app(c1_opt="gd", c1_mom="0.8", c1_epochs="5", c1_map="0")
    assert "c1_mom" not in {w.key for w in at.sidebar.select_slider}
    at.selectbox(key="c1_opt").set_value("momentum").run()
    assert at.select_slider(key="c1_mom").value == 0.8


def test_the_step_size_survives_a_run_that_stops_before_drawing_it():
    """With no variant picked the page stops before the step-size slider; it keeps its value."""
    at = _app(c1_epochs="5", c1_map="0")
    at.select_slider(key="c1_frac").set_value(0.9).run()
    at.multiselect(key="c1_variants").set_value([]).run()
    assert at.info and "Pick at least one input variant" in at.info[0].value
    at.multiselect(key="c1_variants").set_value(["raw"]).run()
    assert not at.exception
    assert at.select_slider(key="c1_frac").value == 0.9
    assert _query(at, "c1_frac") == "0.9"


@pytest.mark.parametrize("query, key, moves", [
    ({"c1_frac": "0.5"}, "c1_frac", ("0.6", "1.2")),
    ({"c1_mode": "same", "c1_lr": "0.00005"}, "c1_lr", ("0.0001", "0.0003")),
])
def test_the_maps_star_sits_at_the_step_size_and_batch_the_page_runs(query, key, moves):
    from ui import valley_figures as vf

    at = _app(c1_epochs="5", c1_batch="14", **query)  # 14: one of the map's rows
    for value in (query[key], *moves):
        if value != query[key]:
            at.select_slider(key=key).set_value(float(value)).run()
            assert not at.exception
        (spec,) = [s for s in _specs(at) if _title(s).startswith("Stability map")]
        stars = vf.current_settings(spec)
        assert len(stars) == 2 and {s[:2] for s in stars} == {(float(value), "14")}
        assert at.session_state[key] == float(value)
    at = _app(c1_epochs="5", c1_batch="10", **query)  # not a row of the map: no star, and the page says so
    (spec,) = [s for s in _specs(at) if _title(s).startswith("Stability map")]
    assert vf.current_settings(spec) == [] and not [t for t in spec["data"] if t.get("name") == vf.CURRENT_SETTING]
    assert any("the star is omitted" in c.value for c in at.caption)
