# The README's two commands: `make demo` (the main job on this machine) and `make test`.
# Both create .venv with a Python >= 3.12 if missing and install the pinned toolkit into it.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
DEMO_OUT ?= demo-out
PYTEST_ARGS ?=

.PHONY: demo test lint bench install clean
install: $(STAMP)

# cect (C. elegans connectomes, read as data by diffbrain.network.connectome_cect) declares numpy<2.4,
# plotly<6, pyneuroml, ...: incompatible with our pins and unused (its JSON files are read directly, and
# cect.Cells needs only pandas), so it is installed without its dependencies, which setup.cfg cannot say.
$(STAMP): setup.cfg pyproject.toml requirements.lock
	@if [ ! -x $(PY) ]; then \
	  python=$$(scripts/find-python) || exit 1; \
	  echo "creating $(VENV) with $$python"; \
	  "$$python" -m venv $(VENV) || exit 1; \
	fi
	$(PY) -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(PY) -m pip install --quiet --disable-pip-version-check -c requirements.lock -e '.[test]'
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -c requirements.lock cect==0.3.5
	@touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/diffbrain demo --out $(DEMO_OUT)

test: $(STAMP)
	$(PY) -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	@for b in bench/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) $(DEMO_OUT) .pytest_cache
