# One command for a newcomer: `make test` installs what the suite needs (Debian packages when
# run as root, a .venv with the Python packages) and runs the whole suite.
PYTHON := .venv/bin/python
COMPAT_PYTHON := .venv-slicer58/bin/python

.PHONY: test setup clean demo

test: setup
	$(PYTHON) -m pytest -ra
	@echo "== again on Slicer 5.8's stack (pydicom 2.4, numpy 1.26, dicomweb-client 0.59): tests marked compat"
	$(COMPAT_PYTHON) -m pytest -ra -m compat

setup:
	bash Testing/setup.sh

# The main job on a fresh machine, no root needed: builds .venv-demo once, then loads a generated
# sample study from an embedded local server; extra options: make demo DEMO_ARGS="--rate 100mbit"
DEMO_ARGS ?=
demo:
	bash Testing/demo.sh $(DEMO_ARGS)

# Our engine vs dicomweb-client on the same Orthanc, on plain loopback and kernel rate-limited links
# (private network namespaces: needs root; ~8 minutes); results in Testing/benchmarks/results/.
# Extra options: make bench BENCH_ARGS="--rates 100mbit --repeats 5"
BENCH_ARGS ?=
.PHONY: bench
bench: setup
	$(PYTHON) Testing/benchmarks/compare_alternatives.py $(BENCH_ARGS)

# The in-plane preview stage (HTJ2K prefixes by Range on nginx) with and without, 30 and 100 Mbit/s
# and plain loopback (root; ~3 minutes); results in Testing/benchmarks/results/in_plane.md.
.PHONY: bench-previews
bench-previews: setup
	$(PYTHON) Testing/benchmarks/in_plane_stages.py --rates 30mbit,100mbit,loopback $(BENCH_ARGS)

# The focus boost's coverage floor and visible set on a 100 Mbit/s tbf link against Orthanc
# (root; ~4 minutes); figures in docs/focus.md.
.PHONY: bench-focus
bench-focus: setup
	$(PYTHON) Testing/benchmarks/focus_floor.py $(BENCH_ARGS)

clean:
	rm -rf .venv .venv-slicer58 .venv-demo .cache .pytest_cache demo-output
