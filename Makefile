# The two commands of the README: `make demo` and `make test`. Both install first if needed.
SHELL := /bin/bash
export EASYOCC_DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(EASYOCC_DATA_DIR)/dagster_home
export DAGSTER_MODULE_NAME ?= pipelines.definitions

.PHONY: install demo test ui

install: .venv/.installed

.venv/.installed: pyproject.toml .ci/install
	bash .ci/install

# Dagster's instance lives in the data dir; telemetry off (nothing leaves the machine).
$(DAGSTER_HOME)/dagster.yaml:
	@mkdir -p "$(DAGSTER_HOME)"
	printf 'telemetry:\n  enabled: false\n' > "$@"

# Install, then run every asset on the demo world (generated on first use under $(EASYOCC_DATA_DIR)).
demo: install $(DAGSTER_HOME)/dagster.yaml
	.venv/bin/dagster job execute -j easyocc_all

# The test suite: offline, CPU only.
test: install
	HF_HUB_OFFLINE=1 TRITON_INTERPRET=1 .venv/bin/python -m pytest

# The Dagster UI on http://127.0.0.1:3000 (reads workspace.yaml).
ui: install $(DAGSTER_HOME)/dagster.yaml
	env -u DAGSTER_MODULE_NAME .venv/bin/dagster dev -h 127.0.0.1 -p 3000
