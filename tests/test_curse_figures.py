"""Chapter 4 figures and captions (ui/curse_figures.py, ui/curse.py) over the settings the page allows.

The records come from synthetic core outputs of the documented shapes (/work/ch4_api.md:
``batch_size_sweep``, ``batch_statistics``, ``momentum_effect``, ``non_iid``,
``online_learning``, ``renorm_dynamics``, ``step_cost``), run through the page's own record
builders, so the adapters are tested too; the axes picture uses the real ``bn_core.axes``.
Every caption is checked against the chart drawn from the same record: the numbers a
sentence quotes are the numbers on the chart.
"""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest

from bn_core import experiments as ex
from tests.test_network_figures import assert_all_finite, axis_titles, decode_arrays, spec_of
from ui import curse as cu
from ui import curse_figures as cf

NORMS = cf.NORMS
SIZES = cu.BATCH_SIZES


# --------------------------------------------------------------------------- synthetic core outputs


def fake_chunk(batch: int, *, seeds: int = 2, scale_lr: bool = True, base_lr: float = 0.05, seed: int = 0,
               diverge: tuple[str, ...] = (), bn_err_small: float = 0.5) -> dict:
    """``batch_size_sweep(batch_sizes=(batch,))``: BN's error grows as the batch shrinks."""
    rng = np.random.default_rng([seed, batch])
    out = {"batch_sizes": np.array([batch]), "seeds": np.arange(seeds),
           "lr": np.array([base_lr * batch / 32 if scale_lr else base_lr]),
           "steps": np.array([8 * (1347 // batch)]), "epochs": np.array(8), "chance_acc": np.array(0.1)}
    for n in NORMS:
        err = 0.03 + 0.005 * rng.random(seeds)
        if n == "bn_before":
            err = err + bn_err_small * (2.0 / batch) ** 1.2
        if n == "brn":
            err = err + 0.3 * bn_err_small * (2.0 / batch) ** 1.2
        if not scale_lr:
            err = err + 0.002 * batch
        acc = np.clip(1.0 - err, 0.0, 1.0)
        out[f"{n}/test_acc"] = acc[None, :]
        batch_gap = 0.1 * (2.0 / batch) if n in ("bn_before", "brn") else 0.0
        out[f"{n}/test_acc_batch_stats"] = np.clip(acc - batch_gap, 0, 1)[None, :]
        out[f"{n}/train_loss"] = (0.1 + err)[None, :]
        div = np.full((1, seeds), -1)
        if n in diverge:
            div[0, 0] = 17
            out[f"{n}/test_acc"][0, 0] = 0.1
        out[f"{n}/diverged_at"] = div
    return out


def fake_sweep(**kw) -> dict:
    return cu.sweep_record([fake_chunk(b, **kw) for b in sorted(SIZES, reverse=True)])


def fake_batch_statistics(n_batches: int = 400, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    pop = np.abs(rng.normal(0.5, 1.0, 1347))
    mu, var = float(pop.mean()), float(pop.var())
    means, variances = [], []
    for m in SIZES:
        idx = np.array([rng.choice(pop.size, m, replace=False) for _ in range(n_batches)])
        means.append(pop[idx].mean(axis=1))
        variances.append(pop[idx].var(axis=1))
    means, variances = np.array(means), np.array(variances)
    m = np.array(SIZES, dtype=float)
    kurt = float(np.mean((pop - mu) ** 4) / var**2)
    return {"batch_sizes": np.array(SIZES), "batch_means": means, "batch_vars": variances, "pop_mean": mu,
            "pop_var": var, "pop_kurtosis": kurt, "n_population": pop.size, "se_mean": np.sqrt(var / m),
            "se_mean_fpc": np.sqrt(var / m), "sd_mean_measured": means.std(axis=1),
            "var_rel_sd_gaussian": np.sqrt(2 / (m - 1)), "var_rel_sd_kurtosis": np.sqrt(2 / (m - 1) + (kurt - 3) / m),
            "var_rel_sd_measured": variances.std(axis=1) / variances.mean(axis=1),
            "expected_var": (m - 1) / m * var, "values": pop, **ex.gaussian_bands(mu, var, SIZES)}


def fake_momentum(batch: int = 8) -> dict:
    step = np.arange(0, 1001, 100)
    curves = np.array([[0.1 + 0.8 * (1 - np.exp(-step / (200 * (1 + i))))] for i in range(3)])
    return {"momenta": np.array(cu.MOMENTA), "step": step, "test_acc": curves, "test_acc_batch_stats": curves - 0.05}


def fake_non_iid(batch: int = 32, seeds: int = 2) -> dict:
    steps = 6 * (1347 // batch)
    step = np.linspace(0, steps, 13).astype(int)
    final = {"shuffled": {"none": 0.96, "bn_before": 0.97, "brn": 0.96, "ln": 0.96, "gn": 0.96},
             "by_class": {"none": 0.38, "bn_before": 0.14, "brn": 0.5, "ln": 0.93, "gn": 0.95}}
    out = {"orders": np.array(cu.ORDERS), "norms": np.array(NORMS), "seeds": np.arange(seeds)}
    for o in cu.ORDERS:
        out[f"{o}/step"], out[f"{o}/steps"] = step, np.array(steps)
        for n in NORMS:
            a = final[o][n]
            out[f"{o}/{n}/test_acc"] = np.full(seeds, a)
            out[f"{o}/{n}/test_acc_batch_stats"] = np.full(seeds, a if n not in ("bn_before", "brn") else 0.9)
            low = 0.02 if (o == "by_class" and n == "bn_before") else 0.1
            out[f"{o}/{n}/batch_loss"] = np.tile(np.linspace(2.3, low, steps), (seeds, 1))
            out[f"{o}/{n}/test_acc_curve"] = np.tile(np.linspace(0.1, a, len(step)), (seeds, 1))
            out[f"{o}/{n}/diverged_at"] = np.full(seeds, -1)
    return out


def fake_online(seeds: int = 2) -> dict:
    seen = np.arange(0, 1348, 25)
    out = {"samples_seen": seen, "trained": ("none", "ln", "gn")}
    for n, top in (("none", 0.85), ("ln", 0.9), ("gn", 0.88)):
        out[f"{n}/test_acc"] = np.tile(0.1 + (top - 0.1) * (1 - np.exp(-seen / 300)), (seeds, 1))
    for n, layer in (("bn_before", "BatchNorm1d"), ("brn", "BatchRenorm1d")):
        out[f"{n}/message"] = np.array(f"{layer} cannot train on a batch of 1 sample(s): ...")
    return out


def fake_renorm(r_max: float = 3.0, d_max: float = 5.0, steps: int = 400) -> dict:
    rng = np.random.default_rng(1)
    r = np.sort(np.clip(rng.lognormal(0, 0.4, (steps, 2, 3)), 1 / r_max, r_max), axis=2)
    d = np.sort(np.clip(rng.normal(0, 1.0, (steps, 2, 3)), -d_max, d_max), axis=2)
    return {"step": np.arange(1, steps + 1), "r": r, "d": d, "bn/test_acc": np.array(0.6),
            "bn/diverged_at": np.array(-1), "brn/diverged_at": np.array(40 if r_max == 10.0 else -1),
            "brn/test_acc": np.array(0.8), "bn/test_acc_batch_stats": np.array(0.7),
            "brn/test_acc_batch_stats": np.array(0.75), "bn/batch_loss": np.ones(steps), "brn/batch_loss": np.ones(steps)}


def fake_cost() -> dict:
    out = {"norms": NORMS}
    for i, n in enumerate(NORMS):
        out[f"{n}/forward_s"] = np.array(1e-4 * (1 + 0.2 * i))
        out[f"{n}/backward_s"] = np.array(1.5e-4 * (1 + 0.2 * i))
        out[f"{n}/update_s"] = np.array(2e-5)
        out[f"{n}/step_s_q25"] = np.array(2.5e-4 * (1 + 0.2 * i))
        out[f"{n}/step_s_q75"] = np.array(3.5e-4 * (1 + 0.2 * i))
        out[f"{n}/cache_bytes"] = np.array(0 if n == "none" else 4 * 32 * 64 * 2 + 256 * i)
        out[f"{n}/cache_arrays"] = np.array("" if n == "none" else "x - mean (n, C), 1/std (C,)")
    return out


# --------------------------------------------------------------------------- helpers


def traces(spec: dict) -> dict[str, dict]:
    return {t.get("name", ""): t for t in spec["data"]}


def xy(trace: dict) -> tuple[np.ndarray, np.ndarray]:
    arrays = decode_arrays({k: trace[k] for k in ("x", "y") if k in trace})
    return arrays[0], arrays[1]


def percents(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"(-?\d+(?:\.\d+)?) %", text)]


def assert_house_style(spec: dict) -> None:
    assert spec["layout"]["title"]["text"]
    assert all(axis_titles(spec)), f"an axis without a title: {axis_titles(spec)}"
    assert_all_finite(spec)
    seen = set()
    for t in spec["data"]:
        if t.get("showlegend") is False or t.get("type") in ("heatmap", "box", "bar"):
            continue
        style = (t.get("line", {}).get("color"), t.get("line", {}).get("dash"), str(t.get("marker", {}).get("symbol")))
        assert style not in seen or t.get("legendgroup"), f"two series look alike: {t.get('name')}"
        seen.add(style)


# --------------------------------------------------------------------------- small batches


SWEEP_GRID = list(itertools.product([True, False], [0.005, 0.05, 5.0], [(), ("bn_before",), ("none", "gn")], [1, 2]))


@pytest.mark.parametrize(("scale", "lr", "diverge", "seeds"), SWEEP_GRID)
def test_small_batches_figure_and_caption_agree(scale, lr, diverge, seeds):
    rec = fake_sweep(scale_lr=scale, base_lr=lr, diverge=diverge, seeds=seeds)
    spec = spec_of(cf.fig_small_batches(rec, 8))
    assert_house_style(spec)
    t = traces(spec)
    assert "BatchNorm, published" in t and "GroupNorm, published" in t
    _, pub_bn = xy(t["BatchNorm, published"])
    assert pub_bn.tolist() == [23.6, 23.7, 24.8, 27.3, 34.7]
    text = cu.describe_small_batches(rec)
    # "X's test error rises from A % to B %": A and B are X's mean line at the largest and smallest batch
    t_all = [y for n in NORMS for y in xy(t[cf.NORM_LABEL[n]])[1]]
    if min(t_all) > 50.0:
        assert f"the lowest test error on the chart is {min(t_all):.1f} %" in text
        return
    m = re.search(r"(\w[\w ]*)'s test error \w+ from (\d+\.\d) % to (\d+\.\d) %", text)
    assert m, text
    name, at_big, at_small = m.group(1).split(", ")[-1].strip(), float(m.group(2)), float(m.group(3))
    x, y = xy(t[name])
    assert y[np.argmax(x)] == pytest.approx(at_big, abs=0.051)
    assert y[np.argmin(x)] == pytest.approx(at_small, abs=0.051)
    # the norm named as rising most really has the largest rise among the drawn mean lines
    rises = {n: xy(t[cf.NORM_LABEL[n]])[1][0] - xy(t[cf.NORM_LABEL[n]])[1][-1] for n in NORMS}
    assert name == cf.NORM_LABEL[max(rises, key=rises.get)]
    flat = re.search(r"; (.+?) stays? within 2 points", text)
    if flat:
        for label in re.split(r", | and ", flat.group(1)):
            ys = xy(t[label])[1]
            assert ys.max() - ys.min() <= 2.0 + 1e-9, (label, ys)
    n_div = sum(int(np.sum(rec[f"{n}/diverged"])) for n in NORMS)
    assert (f"{n_div} run" in text) == bool(n_div)
    if n_div:
        assert "at step 17" in text  # the step the (fake) core reported
    assert sum(1 for k in t if k.endswith(": diverged")) == len(diverge)
    assert ("at every batch size, so batch" in text) == (not scale)
    if not scale:
        lo, hi = re.search(r"ranges from (\d+\.\d) % to (\d+\.\d) %", text).groups()
        ys = xy(t["no normalization"])[1]
        assert float(lo) == pytest.approx(ys.min(), abs=0.051) and float(hi) == pytest.approx(ys.max(), abs=0.051)


def test_small_batches_when_nothing_learns():
    rec = fake_sweep()
    for n in NORMS:
        rec[f"{n}/test_err"] = np.full_like(rec[f"{n}/test_err"], 0.9)
    text = cu.describe_small_batches(rec)
    assert text.startswith("At these settings no network learns: the lowest test error on the chart is 90.0 %")
    assert "within 2 points" not in text


def test_small_batches_shows_the_seed_spread():
    rec = fake_sweep(seeds=2)
    t = traces(spec_of(cf.fig_small_batches(rec)))
    assert "BatchNorm: range over seeds" in t and "BatchNorm: one seed" in t
    _, ys = xy(t["BatchNorm: one seed"])
    assert len(ys) == 2 * len(SIZES)


def test_small_batches_with_nothing_yet_and_partial_sweeps():
    empty = cu.sweep_record([])
    assert cu.describe_small_batches(empty).startswith("The sweep has not finished")
    assert_all_finite(spec_of(cf.fig_small_batches(empty)))
    partial = cu.sweep_record([fake_chunk(128), fake_chunk(64)])
    assert partial["batch_sizes"].tolist() == [64, 128]
    assert_all_finite(spec_of(cf.fig_small_batches(partial, 32)))
    assert "batch 128 down to batch 64" in cu.describe_small_batches(partial)


def test_sweep_record_transposes_sizes_by_seeds():
    rec = fake_sweep(seeds=2)
    assert rec["batch_sizes"].tolist() == list(SIZES)
    assert rec["bn_before/test_err"].shape == (2, len(SIZES))
    chunk = fake_chunk(4)
    j = list(SIZES).index(4)
    assert rec["bn_before/test_err"][:, j] == pytest.approx(1 - chunk["bn_before/test_acc"][0])
    csv = cu.sweep_csv(rec)
    assert csv.splitlines()[0].startswith("norm,batch_size,seed,learning_rate")
    assert len(csv.splitlines()) == 1 + len(NORMS) * 2 * len(SIZES)


def test_poisoned_sweep_never_reaches_the_chart():
    rec = fake_sweep()
    rec["bn_before/test_err"][0, 2] = np.nan
    rec["ln/test_err"][:, 0] = np.inf
    rec["lr"][1] = np.nan
    for fig in (cf.fig_small_batches(rec), cf.fig_lr_used(rec), cf.fig_train_vs_inference(rec, None)):
        assert_all_finite(spec_of(fig))
    assert isinstance(cu.describe_small_batches(rec), str)


# --------------------------------------------------------------------------- noisy statistics


def test_batch_stats_caption_quotes_the_measured_spreads():
    rec = cu.stats_record(fake_batch_statistics())
    spec = spec_of(cf.fig_batch_stats(rec, 8))
    assert_house_style(spec)
    text = cu.describe_batch_stats(rec)
    sd = rec["sd_mean_measured"]
    assert f"{sd[0]:.3g}" in text and f"{sd[-1]:.3g}" in text
    assert f"{rec['se_mean'][0]:.3g}" in text
    # the boxes are the sampled batch means' quartiles and central 95 %
    boxes = [t for t in spec["data"] if t["type"] == "box"]
    assert len(boxes) == 2 * len(SIZES)
    got = [decode_arrays({k: boxes[0][k]})[0][0] for k in ("lowerfence", "q1", "median", "q3", "upperfence")]
    assert np.allclose(got, np.percentile(rec["means"][0], [2.5, 25, 50, 75, 97.5]))
    assert np.allclose(decode_arrays({"m": boxes[-1]["median"]})[0], np.median(rec["vars"][-1]))


def band_traces(spec: dict) -> dict[tuple[str, str], tuple[list[str], np.ndarray]]:
    """(panel "mean" or "var", end "lo" or "hi") -> the dashed band's x labels and y values.

    The upper line is drawn first, then the lower one, in each panel."""
    band = [t for t in spec["data"] if t.get("legendgroup") == "band"]
    assert len(band) == 4, [t.get("name") for t in spec["data"]]
    out = {}
    for t, key in zip(band, [("mean", "hi"), ("mean", "lo"), ("var", "hi"), ("var", "lo")], strict=True):
        assert (t.get("xaxis") == "x2") == (key[0] == "var")
        x = [str(v) for v in (t["x"] if isinstance(t["x"], list) else decode_arrays({"x": t["x"]})[0])]
        out[key] = x, np.asarray(decode_arrays({"y": t["y"]})[0], dtype=float)
    return out


def test_batch_stats_bands_are_scipys_gaussian_central_intervals():
    """The dashed lines are the exact central 68.27 % intervals for Gaussian data, checked against
    scipy directly: mu -+ sigma/sqrt(m), and sigma^2 chi2.ppf(q, m-1)/m at q = Phi(-+1) for the biased
    variance. The old band E -+ E sqrt(2/(m-1)) went below zero at m = 2; this one is positive."""
    from scipy.stats import chi2, norm

    core = fake_batch_statistics()
    rec = cu.stats_record(core)
    spec = spec_of(cf.fig_batch_stats(rec, 8))
    m = np.array(SIZES, dtype=float)
    mu, var = core["pop_mean"], core["pop_var"]
    want = {("mean", "lo"): mu - np.sqrt(var / m), ("mean", "hi"): mu + np.sqrt(var / m),
            ("var", "lo"): var * chi2.ppf(norm.cdf(-1), m - 1) / m,
            ("var", "hi"): var * chi2.ppf(norm.cdf(1), m - 1) / m}
    got = band_traces(spec)
    for key, y in want.items():
        assert got[key][0] == [str(b) for b in SIZES], key
        np.testing.assert_allclose(got[key][1], y, rtol=1e-12, err_msg=str(key))
    assert np.all(got[("var", "lo")][1] > 0) and 2 in SIZES
    assert np.all(got[("var", "lo")][1] < got[("var", "hi")][1])
    names = {t.get("name") for t in spec["data"] if t.get("showlegend") is not False}
    assert "closed form for Gaussian data: central 68 %" in names
    assert not any("standard error" in str(n) for n in names)
    # the sampled batch variances at the smallest batch sit near E = (m-1)/m sigma^2, far below sigma^2
    got_mean = np.mean(rec["vars"][0])
    assert abs(got_mean - (m[0] - 1) / m[0] * var) < abs(got_mean - var) / 2


def test_batch_stats_caption_quotes_the_drawn_band_and_what_it_holds():
    rec = cu.stats_record(fake_batch_statistics())
    assert_caption_quotes_band(rec, spec_of(cf.fig_batch_stats(rec, 8)), cu.describe_batch_stats(rec))


def assert_caption_quotes_band(rec: dict, spec: dict, text: str) -> None:
    """The sentence's band ends are the drawn ones (3 significant figures) at the smallest and the
    largest batch, and its percentages are the fractions of the sampled values between the drawn lines."""
    sizes = [int(b) for b in rec["batch_sizes"]]
    num = r"(-?[0-9.]+(?:e[-+]?\d+)?)"
    hit = re.search(rf"central 68 % of the values for independent Gaussian draws; for the variance they run "
                    rf"from {num} to {num} at batch (\d+) and from {num} to {num} at batch (\d+)\. "
                    rf"This unit's batch variances fall inside them in (\d+) % and (\d+) % of the "
                    rf"mini-batches, its batch means in (\d+) % and (\d+) %\.", text)
    assert hit, text
    lo1, hi1, b1, lo2, hi2, b2, v1, v2, u1, u2 = hit.groups()
    assert (int(b1), int(b2)) == (sizes[0], sizes[-1])
    band = band_traces(spec)
    for quoted, (end, b) in zip((lo1, hi1, lo2, hi2), (("lo", b1), ("hi", b1), ("lo", b2), ("hi", b2)),
                                strict=True):
        x, y = band[("var", end)]
        assert quoted == f"{y[x.index(b)]:.3g}", (end, b, text)
    for (v, u), b in (((v1, u1), b1), ((v2, u2), b2)):
        i = sizes.index(int(b))
        for quoted, key, panel in ((v, "vars", "var"), (u, "means", "mean")):
            x, lo = band[(panel, "lo")]
            hi = band[(panel, "hi")][1]
            sample = np.asarray(rec[key][i], dtype=float)
            inside = np.mean((sample >= lo[x.index(b)]) & (sample <= hi[x.index(b)]))
            assert int(quoted) == round(100 * inside), (key, b, text)


def test_real_units_sentence_agrees_with_its_drawn_band():
    """The page's own record (the cached core call it makes, the real unit, every batch size it
    draws): the lower variance line is above zero everywhere, and the sentence quotes the lines
    and the fractions of sampled statistics between them as drawn."""
    rec = cu.stats_record(cu.batch_stats_cached())
    assert [int(b) for b in rec["batch_sizes"]] == list(SIZES) and SIZES[0] == 2
    spec = spec_of(cf.fig_batch_stats(rec, 8))
    assert_all_finite(spec)
    band = band_traces(spec)
    assert np.all(band[("var", "lo")][1] > 0)
    assert_caption_quotes_band(rec, spec, cu.describe_batch_stats(rec))

# --------------------------------------------------------------------------- training vs inference


@pytest.mark.parametrize("batch", SIZES)
def test_train_vs_inference_caption_matches_the_chart(batch):
    rec = fake_sweep()
    mom = cu.momentum_record(fake_momentum(batch), batch)
    spec = spec_of(cf.fig_train_vs_inference(rec, mom))
    assert_house_style(spec)
    text = cu.describe_train_vs_inference(rec, mom)
    m = re.search(r"largest gap is at batch (\d+): BatchNorm scores (\d+\.\d) % with its running statistics "
                  r"and (\d+\.\d) %", text)
    assert m, text
    b, run, bat = int(m.group(1)), float(m.group(2)), float(m.group(3))
    t = traces(spec)
    x, y = xy(t["BatchNorm, running statistics"])
    assert y[list(x).index(b)] == pytest.approx(run, abs=0.051)
    x, y = xy(t["BatchNorm, batch statistics"])
    assert y[list(x).index(b)] == pytest.approx(bat, abs=0.051)
    assert "running statistics (evaluation mode)" in text
    assert f"At batch {batch}," in text


# --------------------------------------------------------------------------- non-i.i.d. and online


@pytest.mark.parametrize("batch", cu.SORT_BATCHES)
def test_non_iid_caption_matches_the_chart(batch):
    core = fake_non_iid(batch)
    srt, shf = cu.runs_record(core, "by_class"), cu.runs_record(core, "shuffled")
    spec = spec_of(cf.fig_runs(srt, title="t"))
    assert_house_style(spec)
    assert_all_finite(spec_of(cf.fig_orders(shf, srt)))
    text = cu.describe_non_iid(srt, shf, batch)
    acc = {cf.NORM_LABEL[n]: 100 * srt["runs"][n]["final_acc"] for n in NORMS}
    for label in ("LayerNorm", "GroupNorm", "Batch Renorm"):
        assert f"{label} {acc[label]:.1f} %" in text
    assert f"test accuracy in evaluation mode is {acc['BatchNorm']:.1f} %" in text
    assert "hurt the network without normalization too" in text  # 38 % against 96 %
    # the accuracy line on the chart ends at the final accuracy quoted
    t = [tr for tr in spec["data"] if tr.get("name") == "LayerNorm" and tr.get("xaxis") == "x2"]
    assert decode_arrays({"y": t[0]["y"]})[0][-1] == pytest.approx(acc["LayerNorm"])


def test_online_caption_and_refusals():
    rec = cu.online_record(fake_online())
    assert set(rec["errors"]) == {"bn_before", "brn"} and set(rec["runs"]) == {"none", "ln", "gn"}
    spec = spec_of(cf.fig_runs(rec, title="online", x_key="samples", x_title="samples", loss=False))
    assert_house_style(spec)
    text = cu.describe_online(rec)
    assert "BatchNorm and Batch Renorm cannot take a single step" in text
    for n in ("none", "ln", "gn"):
        assert f"{cf.NORM_LABEL[n]} reaches {100 * rec['runs'][n]['test_acc'][-1]:.1f} %" in text
    assert "cannot train: BatchNorm, Batch Renorm" in str(spec["layout"]["annotations"])


# --------------------------------------------------------------------------- batch renorm


@pytest.mark.parametrize(("r_max", "d_max"), list(itertools.product(cu.RMAX_OPTIONS, cu.DMAX_OPTIONS)))
def test_renorm_figure_and_caption_over_the_limits(r_max, d_max):
    rec = cu.renorm_record(fake_renorm(r_max, d_max), r_max, d_max)
    spec = spec_of(cf.fig_renorm(rec))
    assert_house_style(spec)
    text = cu.describe_renorm(rec, 4, "shuffled")
    lo, hi = re.search(r"r ranged over \[(-?[\d.]+), (-?[\d.]+)\]", text).groups()
    assert float(lo) >= round(1 / r_max, 2) - 0.01 and float(hi) <= r_max + 0.01
    assert ("is BatchNorm exactly" in text) == (r_max == 1.0 and d_max == 0.0)
    assert "better than BatchNorm's 60.0 %" in text
    # BatchNorm at class-sorted batch 32 read 10.4 % here and 10.2 % (mean of 2 seeds) one section
    # up, on the same page: the sentence says its run is a single seed.
    assert f"one seed, where the sections above average {len(cu.SEEDS)}" in text
    assert ("Batch Renorm diverged at step 40" in text) == (r_max == 10.0)
    limits = [t for t in spec["data"] if t.get("name") == "clipping limits"]
    assert len(limits) == 4


# --------------------------------------------------------------------------- cost


def test_cost_caption_matches_the_bars():
    rec = cu.cost_record(fake_cost(), 64, 32)
    spec = spec_of(cf.fig_cost(rec))
    assert_house_style(spec)
    text = cu.describe_cost(rec)
    bars = {t["name"]: decode_arrays({"y": t["y"]})[0][0] for t in spec["data"] if t.get("xaxis") in (None, "x")}
    assert len(bars) == len(NORMS)
    slow = max(bars, key=bars.get)
    assert f"The slowest here is {slow}." in text
    assert f"{bars['no normalization']:.2g} ms" in text
    assert len(cu.cost_table(rec)) == len(NORMS)


# --------------------------------------------------------------------------- axes (real bn_core.axes)


AX_GRID = [(m, g, n, c) for m in cu.AX_METHODS for g in (cu.AX_GROUPS if m == "group" else (2,))
           for n in (0, cu.AX_SAMPLES - 1) for c in (0, cu.AX_CHANNELS - 1)]


@pytest.mark.parametrize(("method", "groups", "n", "c"), AX_GRID)
def test_axes_picture_outlines_exactly_the_set_in_the_caption(method, groups, n, c):
    rec = cu.axes_cached.__wrapped__(method, groups, n, c) if hasattr(cu.axes_cached, "__wrapped__") else \
        cu.axes_cached(method, groups, n, c)
    spec = spec_of(cf.fig_axes(rec))
    assert spec["layout"]["title"]["text"].startswith(cu.AX_LABEL[method])
    assert_all_finite(spec)
    outlined = [s for s in spec["layout"]["shapes"] if s["line"].get("width", 0) > 0]
    greyed = [s for s in spec["layout"]["shapes"] if str(s.get("fillcolor", "")).startswith("rgba(255,255,255")]
    assert len(outlined) + len(greyed) == rec["x"].shape[0] * rec["x"].shape[1]
    h, w = rec["x"].shape[2:]
    assert len(outlined) * h * w == rec["count"] == int(rec["mask"].sum())
    text = cu.describe_axes(rec)
    assert f"with {rec['count'] - 1} others" in text and f"{rec['mean']:.3g}" in text
    assert f"{rec['n_sets']} separate" in text
    assert ("mix the samples" in text) == (method == "batch")
    # the highlighted value itself is in the set
    assert rec["mask"][n, c, 0, 0]


# --------------------------------------------------------------------------- params and table


@pytest.mark.parametrize("raw", ["abc", "nan", "NaN", "-5", "0", "1", "3", "1e308", "inf", "9" * 400, "x" * 5000, ""])
def test_batch_param_always_gives_an_offered_batch_size(raw):
    value, msg = cu.PARAM["c4_batch"].parse(raw)
    assert value in cu.BATCH_SIZES and isinstance(value, int)
    assert msg, raw


def test_batch_param_round_trips():
    for b in cu.BATCH_SIZES:
        p = cu.PARAM["c4_batch"]
        assert p.parse(p.encode(b)) == (b, None)


@pytest.mark.parametrize(("width", "groups", "expected"), [(64, 4, 4), (64, 3, 4), (16, 32, 16), (32, 5, 4),
                                                            (128, 100, 128), (16, 1, 1)])
def test_groups_that_do_not_divide_the_width_become_the_nearest_divisor(width, groups, expected):
    ss = {"c4_width": width, "c4_groups": groups}
    notes = cu.reconcile(ss)
    assert ss["c4_groups"] == expected and width % expected == 0
    assert bool(notes) == (width % groups != 0)
    if notes:
        assert f"{groups} does not divide the width {width}" in notes[0]


def test_closing_table_holds_the_measured_numbers():
    sweep = fake_sweep()
    srt = cu.runs_record(fake_non_iid(), "by_class")
    online = cu.online_record(fake_online())
    cost = cu.cost_record(fake_cost(), 64, 32)
    table = cu.which_normalizer_table(sweep, srt, online, cost)
    assert list(table["normalizer"]) == [cf.NORM_LABEL[n] for n in NORMS]
    bn = table.set_index("normalizer").loc["BatchNorm"]
    assert bn["accuracy after one online pass"] == "cannot train"
    assert bn["accuracy, class-sorted batches"] == "14.0 %"
    assert bn["test error at batch 2"] == f"{100 * cf.seed_summary(sweep['bn_before/test_err'])[0][0]:.1f} %"
    text = cu.describe_table(sweep, srt, online)
    assert "with class-sorted batches GroupNorm has the highest accuracy (95.0 %)" in text
    for r in srt["runs"].values():
        r["final_acc"] = 0.101
    assert "no normalization, BatchNorm, Batch Renorm, LayerNorm and GroupNorm share the highest accuracy (10.1 %)" \
        in cu.describe_table(sweep, srt, online)
    assert "online, only no normalization, LayerNorm and GroupNorm can train" in text


def test_every_guided_experiment_names_real_params_with_valid_values():
    assert 3 <= len(cu.EXPERIMENTS) <= 5
    for exp in cu.EXPERIMENTS:
        assert exp.look_for.endswith(".") and len(exp.look_for.split(". ")) == 1
        for key, value in exp.settings.items():
            p = cu.PARAM[key]
            assert p.parse(p.encode(value)) == (value, None), (exp.label, key)


def test_seed_summary_and_smooth_never_warn():
    mean, lo, hi = cf.seed_summary(np.array([[np.nan, 1.0], [np.nan, 3.0]]))
    assert np.isnan(mean[0]) and mean[1] == 2.0 and lo[1] == 1.0 and hi[1] == 3.0
    sm = cf.smooth([np.nan, 1.0, np.inf, 3.0], window=2)
    assert np.isnan(sm[0]) and sm[1] == 1.0 and sm[3] == 3.0
