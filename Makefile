# The two commands a user needs: `make demo` (the main job) and `make test`.
# Both create .venv on first use; installs are redone when setup.cfg changes.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 3
export PYTHONHASHSEED ?= 0

.PHONY: demo demo-coco test venv clean

$(VENV)/.installed: setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,coco,beam,tfds-cli]"
	touch $@

venv: $(VENV)/.installed

test: $(VENV)/.installed
	$(PY) -m pytest -q

demo: $(VENV)/.installed
	$(PY) -m tinyfaces_tf.cli.demo

# The COCO-format demo: MTGAN over faces, coins and cats, pycocotools AP.
demo-coco: $(VENV)/.installed
	$(PY) -m tinyfaces_tf.cli.demo --dataset=coco

clean:
	rm -rf runs/demo runs/demo_coco
