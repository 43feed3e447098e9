"""Chapter 1's sidebar: every control (mirrored in the URL) and the data source, in two calls.

:func:`controls` runs on every full run: it restores the URL state, draws every control but
the step size, publishes them back to the URL, reports what it had to adjust and returns the
settings as one small :class:`Settings` record, so the page itself is only prose, calls and
charts. :func:`step_size_control` draws the learning-rate (or fraction) slider into its place
in the sidebar from inside the page's ``st.fragment``, so that moving it, the chapter's main
interaction, reruns only the part of the page that depends on it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import streamlit as st

from bn_core import regression as R
from bn_core.upload import MAX_MB, MAX_ROWS, is_constant_note
from ui import page, state
from ui import valley as vs
from ui import valley_figures as vf


@dataclass(frozen=True)
class Settings:
    """The chapter's settings after validation (see ``ui.valley.PARAMS`` for ranges)."""

    source: str
    data_key: tuple
    dataset: object | None  # a CsvDataset for the example/upload sources, None for the recipe
    names: tuple
    seed: int
    n: int
    variants: tuple
    optimizer: str
    hyper: tuple  # (momentum, beta1, beta2)
    mode: str
    lr: float
    frac: float
    batch: int
    epochs: int
    tol: float
    show_map: bool
    facts: vs.DataFacts  # names, n and every variant's conditioning, computed from the data
    step_box: object = None  # the sidebar container that :func:`step_size_control` fills
    speed: str = "normal"  # the landscapes' animation speed (a key of ui.valley_figures.SPEEDS)
    batch_asked: int = 0  # the batch size asked for (``batch`` is what runs: min(asked, n))

    @property
    def n_steps(self) -> int:
        """``epochs * ceil(n / batch)``: the same for every variant."""
        return self.epochs * R.steps_per_epoch(self.n, self.batch)


def _fmt(x) -> str:
    return f"{x:g}"


#: Session key: the controls held (not drawn) in an earlier run and not drawn since.
_HIDDEN = "_c1_hidden"
#: The batch-size slider's widget key. ``c1_batch`` (the URL param) is the batch size *asked
#: for*; the slider shows the one that runs, ``min(asked, n)``, so a temporary clamp (a small n,
#: a short file) never overwrites what was asked (issue 10, item 2).
BATCH_SLIDER = "c1_batch_slider"


def _hold(keys) -> None:
    """:func:`ui.state.hold` for the controls this run does not draw, remembering that they are hidden."""
    state.hold([vs.P[k] for k in keys])
    st.session_state.setdefault(_HIDDEN, set()).update(keys)


def _show(key: str) -> None:
    """Call right before drawing the widget of ``key``: if it was hidden, re-assign its value.

    A widget that reappears is new to the browser, which shows its *default* (the first option
    of a select slider: 0.01, 1e-6, 0.0) unless the script assigned the key in this run; the
    server meanwhile runs with the held value, and the next arrow key moves from the shown one
    (issue 10, item 1). Assigning the held value in the run that draws the widget again makes
    Streamlit send it with the widget. Only then: re-assigning on every run would send the
    value back on every key press.
    """
    ss = st.session_state
    hidden = ss.get(_HIDDEN, set())
    if key in hidden:
        hidden.discard(key)
        ss[key] = ss[key]


def _batch_moved() -> None:
    """The user moved the batch-size slider: that is now the batch size asked for."""
    st.session_state["c1_batch"] = int(st.session_state[BATCH_SLIDER])


def batch_notice(asked: int, n: int, source: str) -> str | None:
    """What the page says when the batch size asked for exceeds the samples (None if it fits)."""
    if asked <= n:
        return None
    where = "the file has" if source in ("example", "upload") else "there are"
    return (f"batch size: {asked} asked for, but {where} only n = {n} samples, so every step uses the full batch "
            f"of {n}. The {asked} is kept (in the link too) and comes back when n reaches it.")


def _data_source(ss, errors: list[str]) -> tuple[tuple, object | None]:
    source = ss["c1_source"]
    recipe = ("seed", int(ss["c1_seed"]), int(ss["c1_n"]), float(ss["c1_noise"]))
    if source == "example":
        return ("example",), vs.example_dataset()
    if source == "upload":
        limit = f"at most {MAX_MB} MB"
        up = st.file_uploader(f"CSV with 3 columns: feature 1, feature 2, target (last); {limit}",
                              type=["csv", "txt"], key="c1_upload_file", max_upload_size=MAX_MB,
                              help=f"UTF-8 text, comma, semicolon or tab separated, header optional, {limit}; "
                                   f"the first {MAX_ROWS} rows are used. Numbers with a dot as the decimal "
                                   "separator, between 1e-50 and 1e50 in magnitude (or 0).")
        st.download_button("Download the example CSV", data=vs.EXAMPLE_CSV.read_bytes(),
                           file_name="example_two_features.csv", mime="text/csv", on_click="ignore")
        if up is not None:
            try:
                return vs.register_upload(up.getvalue())
            except vs.CsvError as exc:
                # Right under the uploader, naming the file it holds: the uploader refuses a file
                # that is too large in the browser without rerunning the page, so a message in the
                # page body would then read as if it were about the refused file (issue 10, item 5).
                st.error(f"**{up.name} cannot be used:** {exc} Showing the seed recipe's data instead.")
                errors.append(f"The file the uploader holds, **{up.name}**, cannot be used (the reason is under the "
                              "uploader in the sidebar); showing the seed recipe's data instead.")
    return recipe, None


def controls() -> Settings:
    """Restore from the URL, draw every control but the step size, publish, show notices.

    The step-size slider (learning rate or fraction of 2/lambda_max, whichever the mode uses)
    gets an empty sidebar container, ``step_box``, at its place among the controls: the page
    draws it from inside its ``st.fragment`` with :func:`step_size_control`, so moving it
    reruns only the fragment. (A fragment may write to a container made outside it once that
    container has had a write in the full run; nothing else writes to this one.)
    """
    ss = st.session_state
    # Only a batch size that came from the link may be reported as an adjusted link value.
    batch_from_link = "c1_batch" not in ss and "c1_batch" in st.query_params
    notices = state.restore(vs.PARAMS)
    errors: list[str] = []
    file_notes: list[str] = []  # about the data file, shown under their own heading
    with page.controls():
        # The key control first, right below the navigation (the projector rule): the step-size
        # slider (drawn by the page's fragment into step_box) and the mode that decides what it
        # means. Then the optimizer and the variants; data, run length and display in expanders.
        step_box = st.container()
        mode_box = st.container()
        opt_box = st.container()
        variants_box = st.container()
        with st.expander("Data", expanded=ss["c1_source"] != "seed"):
            st.radio("data", vs.SOURCES, format_func=vs.SOURCE_LABELS.get, key="c1_source")
            data_key, ds = _data_source(ss, errors)
            facts = vs.data_facts(data_key)
            recipe = data_key[0] == "seed"
            st.number_input("seed (data and mini-batch shuffling)", 0, 10_000, step=1, key="c1_seed")
            st.slider("samples n", 2, vs.N_MAX, key="c1_n", disabled=not recipe)
            st.number_input("noise (std of y's noise) [y units]", 0.0, 100.0, step=0.1, key="c1_noise",
                            disabled=not recipe)
        with mode_box:
            st.radio("learning-rate mode", vs.MODES, format_func=vs.MODE_LABELS.get, key="c1_mode",
                     help="One learning rate cannot serve every variant: on this data full-batch gradient descent "
                          f"is stable for {vs.stable_lr_text(facts)} (2/λ_max of each).")
            switched = ss.get("_c1_prev_mode") == "fraction" and ss["c1_mode"] == "same"
            ss["_c1_prev_mode"] = ss["c1_mode"]
            shown = tuple(v for v in R.VARIANTS if v in ss["c1_variants"])
            # Only the default is replaced: a rate the user (or a link) chose is kept, as every
            # other hidden control is (issue 10, item 1); the page then says where it diverges.
            untouched = float(ss["c1_lr"]) == vs.P["c1_lr"].default
            opening = None
            if switched and untouched:
                hyper = (float(ss["c1_mom"]), float(ss["c1_beta1"]), float(ss["c1_beta2"]))
                runs = dict(seed=int(ss["c1_seed"]), batch=min(int(ss["c1_batch"]), len(vs.dataset(data_key).y)),
                            epochs=int(ss["c1_epochs"]))
                runnable = [v for v in shown if not (v == "batchnorm" and runs["batch"] < 2)]

                def diverges(alpha: float) -> bool:  # the runs the page is about to show (cached)
                    return any(vs.variant_view(data_key, runs["seed"], v, alpha, runs["batch"], runs["epochs"],
                                               ss["c1_opt"], *hyper).result.diverged for v in runnable)

                opening = vs.same_mode_opening_lr(facts, shown, ss["c1_opt"], hyper[0], float(ss["c1_lr"]),
                                                  diverges)
            if opening is not None:
                # Not drawn yet in this run (the fragment draws it), so it may still be assigned.
                old, ss["c1_lr"] = float(ss["c1_lr"]), opening
                st.caption(f"Learning rate set to {opening:g} (it was {old:g}): the largest offered step at which "
                           "every shown variant runs without diverging at these settings, so this mode opens on a "
                           "working run.")
        with opt_box:
            st.selectbox("optimizer", tuple(R.OPTIMIZERS), format_func=R.OPTIMIZER_LABELS.get, key="c1_opt")
            opt = ss["c1_opt"]
            # Only the chosen optimizer's own settings are shown; the others keep their values
            # (in the link and in the session) for when that optimizer is chosen again.
            _hold({"gd": ("c1_mom", "c1_beta1", "c1_beta2"), "momentum": ("c1_beta1", "c1_beta2"),
                   "adam": ("c1_mom",)}[opt])
            for key in {"gd": (), "momentum": ("c1_mom",), "adam": ("c1_beta1", "c1_beta2")}[opt]:
                _show(key)
            if opt == "momentum":
                st.select_slider("momentum μ", vs.MOMENTUM_OPTIONS, key="c1_mom",
                                 help="Heavy ball, PyTorch convention: v ← μv + g, θ ← θ − αv.")
            if opt == "adam":
                st.select_slider("Adam β1", vs.BETA1_OPTIONS, key="c1_beta1",
                                 help="Decay of the running mean of gradients (the momentum part).")
                st.select_slider("Adam β2", vs.BETA2_OPTIONS, key="c1_beta2",
                                 help="Decay of the running mean of squared gradients (the per-coordinate scale).")
        with variants_box:
            st.multiselect("input variants", R.VARIANTS, format_func=vf.VARIANT_LABELS.get, key="c1_variants",
                           help="Compared side by side with the same optimizer and the same number of steps.")
        with st.expander("Batches, epochs, tolerance"):
            n = int(ss["c1_n"]) if ds is None else len(ds.y)
            asked = int(ss["c1_batch"])
            note = batch_notice(asked, n, ss["c1_source"])
            if note:
                # A file's row count is a fact about the file; a link's batch size above n is a
                # link notice (in the run that read the link only); otherwise it is said here.
                if ds is not None:
                    file_notes.append(note)
                elif batch_from_link:
                    notices.append(note)
            # Always (re)assign: the slider's max follows n, and Streamlit treats a widget whose
            # range changed as a new widget, which would reset an unassigned value to 1.
            ss[BATCH_SLIDER] = min(asked, n)
            st.slider("batch size (n = full-batch gradient descent)", 1, max(n, 2), key=BATCH_SLIDER,
                      on_change=_batch_moved)
            if note and ds is None and not batch_from_link:
                st.caption(note[0].upper() + note[1:])
            st.slider("epochs (passes over the data)", 1, vs.EPOCHS_MAX, key="c1_epochs")
            st.select_slider("tolerance on (L−L*)/(L₀−L*)", vs.TOL_OPTIONS, format_func=_fmt, key="c1_tol")
        with st.expander("Display"):
            st.toggle("compute the stability map", key="c1_map")
            st.radio("animation speed (play button)", tuple(vf.SPEEDS), key="c1_speed", horizontal=True,
                     format_func=lambda k: f"{k} ({vf.SPEEDS[k] / 1000:g} s per frame)")
    state.publish([p for p in vs.PARAMS if p.key not in vs.STEP_KEYS])
    state.show_notices(notices)
    for msg in errors:
        st.warning(msg)
    source = ss["c1_source"]
    if source == "upload" and ds is None and not errors:
        st.info("Upload a CSV in the sidebar (feature 1, feature 2, target) to run this chapter on your own data; "
                "until then the seed recipe's data is shown. An upload is not part of the page's link.")
    if ds is not None:
        fa, fb = ds.feature_names
        st.info(f"**Data: {'the example CSV' if source == 'example' else 'your CSV'}**, {len(ds.y)} rows: "
                f"features **{fa}** (range {ds.X[:, 0].min():.4g} … {ds.X[:, 0].max():.4g}) and **{fb}** "
                f"(range {ds.X[:, 1].min():.4g} … {ds.X[:, 1].max():.4g}), target **{ds.target_name}**.")
        # The constant-feature note is left to the page's single constant-feature warning.
        notes = [m for m in ds.notes if not is_constant_note(m, ds.feature_names)] + file_notes
        if notes:
            about = "the example CSV" if source == "example" else "your file"
            st.warning(f"About {about}:\n\n" + "\n".join(f"- {m}" for m in notes))
    return Settings(
        source=source, data_key=data_key, dataset=ds, names=facts.names, seed=int(ss["c1_seed"]),
        n=n, variants=tuple(v for v in R.VARIANTS if v in ss["c1_variants"]), optimizer=opt,
        hyper=(float(ss["c1_mom"]), float(ss["c1_beta1"]), float(ss["c1_beta2"])), mode=ss["c1_mode"],
        lr=float(ss["c1_lr"]), frac=float(ss["c1_frac"]), batch=min(int(ss["c1_batch"]), n),
        epochs=int(ss["c1_epochs"]), tol=float(ss["c1_tol"]), show_map=bool(ss["c1_map"]), facts=facts,
        step_box=step_box, speed=ss["c1_speed"], batch_asked=int(ss["c1_batch"]),
    )


def step_size_control(cfg: Settings) -> Settings:
    """Draw the step-size slider of ``cfg.mode`` into ``cfg.step_box``; return the settings with it.

    Called from the page's fragment: moving this slider reruns only the fragment. The other
    mode's value is held (kept in the session and the link) while its slider is hidden.
    """
    ss = st.session_state
    _hold(["c1_frac" if cfg.mode == "same" else "c1_lr"])
    _show("c1_lr" if cfg.mode == "same" else "c1_frac")
    with cfg.step_box:
        if cfg.mode == "same":
            st.select_slider("learning rate α", vs.LR_OPTIONS, format_func=_fmt, key="c1_lr",
                             help="The same step for every variant (log scale).")
        else:
            st.select_slider("fraction of 2/λ_max", vs.FRACTION_OPTIONS, format_func=_fmt, key="c1_frac",
                             help="Each variant steps α = fraction × its own 2/λ_max. Above 1 full-batch gradient "
                                  "descent (without momentum) diverges.")
    state.publish([vs.P[k] for k in vs.STEP_KEYS])
    return dataclasses.replace(cfg, lr=float(ss["c1_lr"]), frac=float(ss["c1_frac"]))


def step_setting(cfg: Settings, variants: list, show_map: bool) -> vs.StepSetting:
    """The page's settings apart from the step size, for :func:`ui.valley.step_views` (the
    fragment) and :func:`ui.valley.warm_step_sizes` (the slider's other options)."""
    return vs.StepSetting(cfg.data_key, cfg.seed, tuple(variants), cfg.mode, cfg.lr if cfg.mode == "fraction" else 0.0,
                          cfg.batch, cfg.epochs, cfg.optimizer, tuple(cfg.hyper), cfg.tol, cfg.speed, page.lecture(),
                          tuple(cfg.variants) if show_map else None)


def step_of(cfg: Settings) -> float:
    """The step-size slider's value in use: the fraction of 2/lambda_max, or the learning rate."""
    return cfg.frac if cfg.mode == "fraction" else cfg.lr
