# BatchNorm Lab, one replica: `streamlit run app.py` on port 8501 (deploy/ runs several behind nginx).
#   docker build -t batchnorm-lab .
#   docker run --rm -p 8501:8501 batchnorm-lab          # then open http://localhost:8501
# The base is Debian's slim Python 3.11 (pyproject.toml: requires-python >= 3.11); for a build that
# never changes under you, pin it by digest: FROM python:3.11-slim-bookworm@sha256:<digest>.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore

WORKDIR /app
# The pinned runtime set first: the dependency layer is rebuilt only when requirements.txt changes.
COPY requirements.txt .
RUN pip install -r requirements.txt

# The app's files stay root's (read-only for the app); it runs as an unprivileged user.
COPY . .
RUN useradd --create-home --uid 10001 --shell /usr/sbin/nologin bnlab
USER bnlab

EXPOSE 8501
# Streamlit answers "ok" on /_stcore/health once it serves; the image has no curl, Python does it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8501/_stcore/health', timeout=4).read() != b'ok')"]
# .streamlit/config.toml already says headless, no file watcher, no usage statistics; the flags
# repeat it so the container does not depend on the file being copied. 0.0.0.0: the container's
# port is published by `docker run -p` or reached by nginx on compose's network. No welcome
# banner: headless and on every interface, Streamlit 1.67 asks an outside service for the
# machine's external address to print an "External URL" (nothing is fetched from outside here,
# and inside a container the addresses it prints are not the ones users open).
CMD ["python", "-m", "streamlit", "run", "app.py", \
     "--server.headless", "true", "--server.address", "0.0.0.0", "--server.port", "8501", \
     "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", \
     "--logger.hideWelcomeMessage", "true"]
