#!/usr/bin/env bash
# Install what the app needs (a venv with requirements.txt) and start it on http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/_venv.sh requirements.txt
exec .venv/bin/python -m streamlit run app.py --browser.gatherUsageStats false "$@"
