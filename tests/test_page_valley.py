"""Chapter 1 page under AppTest: it runs, interactions change what is drawn, URLs restore and clamp."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from tests.apptest import open_page

PAGE = "chapters/valley_vs_bowl.py"
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
    return [json.loads(el.proto.spec, parse_constant=_no_constant) for el in at.get("plotly_chart")]


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
    assert any("exact" in c.value for c in at.caption)


def test_learning_rate_and_batch_size_change_the_drawn_paths():
    at = _app(c1_map="0", c1_epochs="20")
    x0, y0 = _path(_landscapes(at)["raw"])
    at.select_slider(key="c1_frac").set_value(0.9).run()
    assert not at.exception
    x1, y1 = _path(_landscapes(at)["raw"])
    assert len(x1) == len(x0) and not np.allclose(y1, y0)
    at.slider(key="c1_batch").set_value(10).run()
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
    for el in at.get("plotly_chart"):
        assert "NaN" not in el.proto.spec and "Infinity" not in el.proto.spec
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
    assert at.session_state["c1_batch"] == 20
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
