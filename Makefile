# Every target that needs Python first makes sure the venv exists and holds
# the project with its dev extras, so `make test` works on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PROTOS := $(wildcard proto/*.proto)
GEN_DIR := golem_task_api/proto
PYTEST_ARGS ?=

.PHONY: venv install system-deps proto check-proto lint typecheck test check bench tutorial app-def image clean

venv install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

proto: $(STAMP)
	rm -f $(GEN_DIR)/*_pb2*.py $(GEN_DIR)/*_pb2*.pyi
	PY=$(PY) scripts/gen_proto.sh .

check-proto: $(STAMP)
	@tmp=$$(mktemp -d); trap 'rm -rf $$tmp' EXIT; \
	PY=$(PY) scripts/gen_proto.sh $$tmp; \
	if ! diff -r -x __pycache__ $$tmp/$(GEN_DIR) $(GEN_DIR); then \
	    echo "golem_task_api/proto/ is not what proto/ generates: run make proto"; exit 1; \
	fi; echo "generated code is current"

lint: $(STAMP)
	$(VENV)/bin/ruff check golem_task_api apps tests bench

typecheck: $(STAMP)
	$(VENV)/bin/mypy golem_task_api apps

# Debian tools the tests run for real (the apps' renderers, the sandbox).
DEB_TOOLS := blender:blender ffmpeg:ffmpeg ffprobe:ffmpeg bwrap:bubblewrap openssl:openssl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

system-deps:
	@missing=""; for pair in $(DEB_TOOLS); do \
	    command -v $${pair%%:*} >/dev/null || missing="$$missing $${pair##*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
	    echo "installing Debian packages:$$missing"; \
	    $(SUDO) apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	fi

test: $(STAMP) system-deps check-proto
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

check: lint typecheck test

bench: $(STAMP)
	$(PY) -m bench

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache

# The main job: a real tutorial task through the node (golem-task-api run):
# the requestor app, local compute nodes with a provider process per
# subtask, every result verified; the result lands in out/tutorial/.
TUTORIAL_PARAMS := {"difficulty": 12, "search_space": 400000, "resources": ["data.bin"]}
tutorial: $(STAMP)
	@mkdir -p out
	@$(PY) -c 'import os; open("out/data.bin", "wb").write(os.urandom(64))'
	$(VENV)/bin/golem-task-api run tutorial --params '$(TUTORIAL_PARAMS)' \
		--input out/data.bin --subtasks 8 --output out/tutorial

# The app definition file Golem nodes read: dist/{name}_{version}_{id}.json
app-def: $(STAMP)
	@test -n "$(APP)" || { echo "usage: make app-def APP=<name>"; exit 2; }
	$(PY) -m golem_task_api.apputils.app_definition apps/$(APP)/task-api-config.json --out dist

# Needs a Docker engine (none on the development machines): the image runs
# the same command line the tests run as local processes.
image:
	@test -n "$(APP)" || { echo "usage: make image APP=<name>"; exit 2; }
	tag=$$(python3 -c "import json; p = json.load(open('apps/$(APP)/task-api-config.json'))['requestor_prereq']; print(p['image'] + ':' + p['tag'])"); \
	docker build -f apps/$(APP)/Dockerfile -t $$tag .
