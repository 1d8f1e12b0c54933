# make train   train the paper's CRNN (configs/crnn_vgg_bilstm_ctc.py) on the embedded synthetic data
# make test    run the test suite
# Both set up .venv first (setup/install.sh). Override CONFIG=..., ARGS="...", PYTEST_ARGS="...".
VENV ?= .venv
CONFIG ?= configs/crnn_vgg_bilstm_ctc.py
ARGS ?=
PYTEST_ARGS ?=
export VENV

.PHONY: setup train test
setup:
	@bash setup/install.sh

train: setup
	$(VENV)/bin/python tools/train.py $(CONFIG) $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)
