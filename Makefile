# latent: train autoencoders in Go, ship them as ONNX, run them with ONNX Runtime.
#
#   make demo    set up, train both models on MNIST, export and report
#   make check   set up and run the tests
#   make setup-cuda   install the GPU build of ONNX Runtime beside the CPU one
#   make beam    build bin/latent-beam, the Apache Beam pipeline of latent encode
#
# MNIST is read from $(LATENT_DATA), MNIST's folder only (Fashion-MNIST has
# its own, $LATENT_FASHION_MNIST: see the README): ../shared/datasets/mnist
# when it exists beside the checkout, else ./data/mnist (downloaded on first
# use).

SHELL := /bin/bash
export LATENT_DATA ?= $(abspath $(firstword $(wildcard ../shared/datasets/mnist) data/mnist))
GO ?= go
TAGS ?= openblas isal
RUNS ?= runs
EPOCHS ?= 5

.PHONY: all setup setup-cuda build beam demo check test vet bench fuzz clean

all: build

setup:
	scripts/setup.sh

# The GPU build of ONNX Runtime (1.29.0, CUDA 13), in its own cache folder:
# --device cuda and auto use it. The tests check it on the CPU (make check).
setup-cuda:
	scripts/setup-onnxruntime.sh --cuda

build:
	$(GO) build -buildvcs=auto -tags '$(TAGS)' -o bin/latent ./cmd/latent

# latent-beam: batch encoding as an Apache Beam pipeline (see the README).
beam:
	$(GO) build -buildvcs=auto -o bin/latent-beam ./cmd/latent-beam

# The main job: train the notebook's two models with its recipe, export each
# to ONNX, and write each one's report.
demo: setup build
	@for m in classic conv; do \
		bin/latent train --model $$m --epochs $(EPOCHS) --out $(RUNS)/$$m --force && \
		bin/latent export $(RUNS)/$$m && \
		bin/latent report $(RUNS)/$$m > /dev/null || exit 1; \
	done
	@echo; for m in classic conv; do echo "$$m: $(RUNS)/$$m/report/index.html"; cat $(RUNS)/$$m/eval.json; done

check: setup setup-cuda test

vet:
	$(GO) vet ./...
	$(GO) vet -tags '$(TAGS)' ./...
	CGO_ENABLED=0 $(GO) vet ./trainer/... ./evaluation/...

# The trainer's tests run three ways: with OpenBLAS (the first line, the
# default build), with gonum's pure-Go BLAS and the C kernels, and in pure Go
# (CGO_ENABLED=0: gonum's BLAS and the kernels' Go references). The
# evaluation's run in pure Go too (its Go kernel alone).
test: vet
	$(GO) test -tags '$(TAGS)' -timeout 15m ./...
	$(GO) test -timeout 10m ./trainer/... ./dataset/...
	CGO_ENABLED=0 $(GO) test -timeout 10m ./trainer/... ./evaluation/...
	$(GO) test -race -timeout 10m ./inference ./server
	$(GO) test -race -timeout 10m -run 'Backlog|TwoTrainers|ParallelParts' ./trainer

clean:
	rm -rf bin

# Training speed at batch 64: the Go trainer (pure Go and OpenBLAS) against
# PyTorch on this machine, with the load average (STEPS, MODELS, THREADS:
# see the script).
bench:
	GO='$(GO)' bench/go_vs_torch.sh

# Every fuzz target for FUZZTIME each (default 10m), two at a time, with a
# table of executions (see scripts/fuzz.sh).
fuzz:
	GO='$(GO)' scripts/fuzz.sh -j 2
