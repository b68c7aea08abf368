# The two commands of the README: `make demo` and `make test`. Both install first if needed.
SHELL := /bin/bash
export EASYOCC_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(EASYOCC_DATA_DIR)/dagster_home
# dg (Dagster's CLI) runs in the project's own environment.
DG := VIRTUAL_ENV=$(CURDIR)/.venv PATH=$(CURDIR)/.venv/bin:$$PATH .venv/bin/dg

.PHONY: install demo test test-fast lint ui

install: .venv/.installed

.venv/.installed: pyproject.toml .ci/install
	bash .ci/install

# Dagster's instance lives in the data dir: telemetry off (nothing leaves the machine), logs at INFO,
# and the project's own Python loggers (ops.*) shown in the run's log.
$(DAGSTER_HOME)/dagster.yaml: Makefile
	@mkdir -p "$(DAGSTER_HOME)"
	printf 'telemetry:\n  enabled: false\npython_logs:\n  python_log_level: INFO\n  managed_python_loggers: [ops]\n' > "$@"

# Install, then run every asset on the demo world (generated on first use under $(EASYOCC_DATA_DIR)),
# then say what came out (also when a scene failed: the run's exit status is make's).
demo: install $(DAGSTER_HOME)/dagster.yaml
	@status=0; $(DG) launch --job easyocc_all || status=$$?; \
	  echo; .venv/bin/easyocc summary; exit $$status

# The test suite: offline, CPU only.
test: install
	HF_HUB_OFFLINE=1 TRITON_INTERPRET=1 .venv/bin/python -m pytest

# The fast tier between edits (a few minutes on 2 cores): the tests not marked slow, which leaves out the
# Dagster, Ray, CLI and demo-world runs; `make test` (and CI) runs everything.
test-fast: install
	HF_HUB_OFFLINE=1 TRITON_INTERPRET=1 .venv/bin/python -m pytest -m "not slow"

# Lint and format check (ruff, configured in pyproject.toml); CI fails on either. `ruff format .` fixes the format.
lint: install
	.venv/bin/ruff check . && .venv/bin/ruff format --check .

# The Dagster UI on http://127.0.0.1:$(UI_PORT); Ctrl-C stops it (exec: the signal reaches dg, not a shell).
UI_PORT ?= 3000
ui: install $(DAGSTER_HOME)/dagster.yaml
	exec env $(DG) dev -h 127.0.0.1 -p $(UI_PORT)
