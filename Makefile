# Two entry points (README.md): `make conformance` and `make check`. Everything they need is
# installed into .venv from requirements.txt on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
REPORTS := reports
# ARGS passes extra pytest options, e.g. make conformance ARGS="--at-port socket://127.0.0.1:4000"
ARGS ?=
REPORT_ARGS = --alluredir $(REPORTS)/allure-results --clean-alluredir --junitxml $(REPORTS)/junit.xml

.PHONY: venv conformance conformance-board unit lint check mutation mutation-fast robustness shipping profiles profiles-fast replay compare report bench clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

# The conformance suite against the reference model (or ARGS="--at-port URL"); writes reports/.
conformance: venv
	$(BIN)/python -m pytest tests/conformance $(REPORT_ARGS) $(ARGS)

# The suite against the model with a board's timing (UARTs paced at 115200 baud, the firmware's
# 1 s timer tick, 10-or-15 s reconnect waits, network delay), on both cores; writes reports/.
conformance-board: venv
	$(BIN)/python -m pytest tests/conformance --model-timing board -n 2 $(REPORT_ARGS) $(ARGS)

# The project's own tests: engine, client, server, model, wiring.
unit: venv
	$(BIN)/python -m pytest tests/unit $(ARGS)

lint: venv
	$(BIN)/ruff check --select F,E9 .

# Detection power: the suite against the clean model and against every named defect of the
# model (python -m sim --list-defects), both cores busy; writes reports/mutation.md and .json and
# fails unless the clean model passes and every defect is killed and filed right (KD-n or NEW).
mutation: venv
	$(BIN)/python -m tools.mutation

# The part of it `make check` runs: no slow tests, and only the defects a non-slow test catches.
mutation-fast: venv
	$(BIN)/python -m tools.mutation --fast

# Faults of the device and the harness (reboot, garbage, stall, port loss, flood, busy, signals,
# a failed Wi-Fi join, a stranger at an endpoint, bad input), each its own run of the suite
# through tools/faultproxy.py: no hang, the verdict class, later tests pass, reports complete,
# no process left, no secret in any artifact. Writes reports/robustness/robustness.md and .json.
robustness: venv
	$(BIN)/python -m tools.robustness

# The model with shipping ESP-AT's known deviations (board timing), with its expectations file
# (must pass: every failure expected) and without (must fail on exactly the listed tests).
# Writes reports/shipping/shipping.md.
shipping: venv
	$(BIN)/python -m tools.shipping

# The suite on the model of every firmware profile (VERSIONS.md: seed, wshead, auth, tls,
# current) with --profile auto: each must pick its profile and pass, the clauses a profile lacks
# skipped with their reason. Writes reports/profiles/profiles.md and .json.
profiles: venv
	$(BIN)/python -m tools.profiles

# The same without the slow tests, for the later profiles (make check runs the seed in full above).
profiles-fast: venv
	$(BIN)/python -m tools.profiles --fast --only wshead auth tls current

# The model against the real library's golden traces (traces/): shipping firmware with library
# 1.2.3 and 1.8.0 must agree with every trace AT can reach, the conforming model must differ on
# exactly the traces replay/expected.toml lists. Writes reports/replay.md and .json.
replay: venv
	$(BIN)/python -m replay check

# Two runs compared (per clause and test: regressed, fixed, changed, new; observations that
# changed): make compare A=DIR_OR_JSON B=DIR_OR_JSON; writes reports/compare.md and .html.
compare: venv
	$(BIN)/python -m results.compare $(A) $(B) --out $(REPORTS)

# The plain model's run is the mutation run's clean run; the suite runs once more board-like.
check: lint unit replay conformance-board profiles-fast mutation-fast robustness shipping

# The HTML Allure report of the last run (Allure 3 from npm, pinned by package-lock.json):
# reports/allure-report/awesome/ to serve (npx allure open reports/allure-report), and the same
# report as one file, reports/conformance-report.html, to open as it is or attach to a release.
# The history (reports/history.jsonl) is kept one point per firmware; the analytics tag of the
# pages is stripped so the report works offline.
report: venv node_modules/.installed
	rm -rf $(REPORTS)/allure-report
	$(BIN)/python -m tools.report_history $(REPORTS)/history.jsonl $(REPORTS)/allure-results
	npx --no-install allure generate $(REPORTS)/allure-results --config allurerc.mjs
	$(BIN)/python -m tools.offline_report $(REPORTS)/allure-report
	cp $(REPORTS)/allure-report/single/index.html $(REPORTS)/conformance-report.html

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Round-trip and per-test overhead figures against the model.
bench: venv
	$(BIN)/python -m bench.at_speed

clean:
	rm -rf $(REPORTS)/allure-results $(REPORTS)/allure-report $(REPORTS)/junit.xml \
		$(REPORTS)/conformance-matrix.* $(REPORTS)/mutation.md $(REPORTS)/mutation.json \
		$(REPORTS)/robustness $(REPORTS)/shipping $(REPORTS)/timelines $(REPORTS)/compare.* \
		$(REPORTS)/conformance-report.html $(REPORTS)/profiles $(REPORTS)/replay.*
