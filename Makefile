# Two commands for a new user: `make demo` and `make test`. Everything installs into .venv.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export TF_CPP_MIN_LOG_LEVEL ?= 2
# Tests see 8 fake CPU devices, like a TPU host (tests/conftest.py sets it too). The demo does not: on a 2-core
# machine 8 fake devices are slower than 1 and their collectives can time out when the machine is busy.
# TensorFlow's portable kernels (what a CPU without AVX-512 runs) unless the caller chose; tests/onednn_test.py
# reruns the TensorFlow tests with oneDNN on.
TEST_ENV := XLA_FLAGS=--xla_force_host_platform_device_count=8 TF_ENABLE_ONEDNN_OPTS=$${TF_ENABLE_ONEDNN_OPTS:-0}
# Debian packages: ffmpeg (musdb/stempeg read audio through it), fluidsynth + a GM soundfont (ChoraleMix),
# tcmalloc (the commands relaunch themselves with it: XLA:CPU steps ~1.4x faster, srcvq_jax/cli.py), chromium +
# chromium-driver (tests/app_test.py drives the interactive page in a real headless browser).
DATA ?= data
DEMO_WORKDIR ?= runs/demo

.PHONY: install sysdeps test test-slow test-all demo bench clean

sysdeps:
	@missing=""; \
	command -v ffmpeg >/dev/null || missing="$$missing ffmpeg"; \
	command -v fluidsynth >/dev/null || missing="$$missing fluidsynth"; \
	[ -e /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing="$$missing fluid-soundfont-gm"; \
	/sbin/ldconfig -p | grep -q libtcmalloc_minimal.so.4 || missing="$$missing libtcmalloc-minimal4"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(VENV)/.installed: setup.py
	$(MAKE) sysdeps
	[ -x $(PY) ] || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# The fast suite (every test not marked slow) and the slow one; CI (.ci/run) runs both, `make test-all` in one go.
test: install
	$(TEST_ENV) $(PY) -m pytest -q -rs -m "not slow" tests

test-slow: install
	$(TEST_ENV) $(PY) -m pytest -q -rs -m slow tests

test-all: install
	$(TEST_ENV) $(PY) -m pytest -q -rs tests

demo: install
	bash scripts/demo.sh "$(PY)" "$(DATA)" "$(DEMO_WORKDIR)"

bench: install
	bash benchmarks/run_all.sh "$(PY)"

clean:
	rm -rf $(VENV) *.egg-info
