"""Chapter 1's learning-rate slider reruns only its fragment, spoken to as the browser does.

A client on the server's WebSocket (``benchmarks/bench_rerun_server.py``'s ``Session``) sends
the ``rerun_script`` messages a browser sends and reads what comes back. No timing is
asserted here; the benchmark measures that.
"""

from __future__ import annotations

from collections import Counter
from urllib.parse import parse_qs

from benchmarks.bench_rerun_server import Session
from tests.browser.conftest import start_server, stop_server
from ui import live_chart


def test_a_step_size_change_reruns_only_the_fragment_and_resends_only_what_depends_on_it():
    proc, url = start_server()
    try:
        s = Session(int(url.rsplit(":", 1)[1]))
        s.rerun()  # the first, full run
        full = Counter(s.last_messages)
        assert not s.last_was_fragment
        # The link is written once by the page's controls and once by the fragment's step size
        # (ui.state.publish sends one message per call), not once per setting (17).
        assert full["page_info_changed"] == 2
        assert parse_qs(s.query_string)["c1_frac"] == ["0.5"] and "c1_epochs" in parse_qs(s.query_string)
        # A class opening the same link: the second session's map is swept already, so no progress bar.
        with Session(int(url.rsplit(":", 1)[1])) as second:
            second.rerun()
            assert "progress" not in second.last_messages and second.last.ok
        assert full[live_chart.ELEMENT_TYPE] == 4  # two landscapes, convergence, stability map

        s.rerun({"c1_frac": "0.9"})
        frag = Counter(s.last_messages)
        assert s.last_was_fragment, "a learning-rate change must rerun only the fragment"
        assert frag[live_chart.ELEMENT_TYPE] == 4  # every chart depends on the step size
        assert frag["heading"] == 0 and frag["metric"] == 0 and frag["code"] == 0  # the prose is not re-sent
        assert frag["slider"] == 1  # the step-size slider itself, and no other control
        assert sum(frag.values()) < sum(full.values()) / 2
        assert parse_qs(s.query_string)["c1_frac"] == ["0.9"]  # the link follows

        s.set_mode_same()  # a mode change is a full rerun, and shows the learning-rate slider
        assert not s.last_was_fragment
        s.rerun({"c1_lr": "0.0001"})
        assert s.last_was_fragment and parse_qs(s.query_string)["c1_lr"] == ["0.0001"]
        assert Counter(s.last_messages)[live_chart.ELEMENT_TYPE] == 4
        s.ws.close()
    finally:
        stop_server(proc)
