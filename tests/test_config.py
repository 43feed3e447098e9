"""The server configuration a deployment gets: ``.streamlit/config.toml`` as Streamlit reads it.

Community Cloud, the container and ``run_app.sh`` all start Streamlit from the repository root,
where it reads this file; the flags that tests and benchmarks pass on the command line must not
be the only place a setting lives.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / ".streamlit" / "config.toml"

# Streamlit's own reading of the file, in a fresh process started where the app starts (the
# repository root) with an empty HOME, so no user-level config.toml can mask a missing setting.
READ_OPTIONS = """
import json, sys
from streamlit import config
config.get_config_options(force_reparse=True)
names = json.loads(sys.argv[1])
print(json.dumps({
    "known": sorted(config._config_options),
    "values": {n: config.get_option(n) for n in names},
    "where": {n: config.get_where_defined(n) for n in names},
}))
"""

EXPECTED = {
    "server.fileWatcherType": "none",  # no module scan per new session (issue 11)
    "server.runOnSave": False,
    "server.disconnectedSessionTTL": 3600,  # a sleeping laptop comes back to its own session
    "server.headless": True,
    "browser.gatherUsageStats": False,  # nothing sent out at run time
    "runner.postScriptGC": False,  # ui/memory.py keeps full collections off the rerun path
    "runner.magicEnabled": False,  # no syntax-tree rewrite when Streamlit recompiles the pages
}


def _flat(table: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        out.update(_flat(value, name + ".") if isinstance(value, dict) else {name: value})
    return out


def _streamlit_reads(names: list[str], tmp_path: Path) -> dict:
    env = {**os.environ, "HOME": str(tmp_path)}
    env = {k: v for k, v in env.items() if not k.startswith("STREAMLIT_")}  # no env overrides
    res = subprocess.run([sys.executable, "-c", READ_OPTIONS, json.dumps(names)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_every_option_in_the_file_is_one_streamlit_knows(tmp_path):
    written = _flat(tomllib.loads(CONFIG.read_text()))
    read = _streamlit_reads(sorted(written), tmp_path)
    unknown = sorted(set(written) - set(read["known"]))
    assert not unknown, f"misspelt or removed options in {CONFIG.name}: {unknown}"
    for name, value in written.items():
        assert read["values"][name] == value, name
        assert read["where"][name] == str(CONFIG), (name, read["where"][name])


def test_the_deployment_settings_are_what_streamlit_uses(tmp_path):
    from bn_core.upload import MAX_MB

    read = _streamlit_reads([*EXPECTED, "server.maxUploadSize", "server.address"], tmp_path)
    for name, value in EXPECTED.items():
        assert read["values"][name] == value, name
    assert read["values"]["server.maxUploadSize"] == MAX_MB  # the uploader's label says this cap
    # The address is a deployment's choice (the container binds 0.0.0.0, tests 127.0.0.1):
    # the file must not pin it.
    assert read["values"]["server.address"] is None
