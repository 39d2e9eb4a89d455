# The two commands of the README. Both install what they need and are safe to re-run.
.PHONY: demo test

PY := .venv/bin/python

demo:
	bash scripts/setup.sh demo
	bash scripts/run_headless.sh $(PY) examples/demo.py --out out/demo

test:
	bash scripts/setup.sh test
	$(PY) -m mypy
	QT_QPA_PLATFORM=xcb $(PY) -m pytest -p no:cacheprovider
