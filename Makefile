# The two commands a newcomer needs, and a few helpers.
SHELL := /bin/bash
VENV ?= .venv
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.cache/collections
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg

.PHONY: aio aio-destroy test testbed lint unit api sanity molecule benchmark

## aio: prepare this machine and converge the all-in-one cloud on local container hosts
aio: testbed
	ansible-playbook -i inventories/aio playbooks/aio.yml

## aio-destroy: remove the all-in-one container hosts
aio-destroy:
	ansible-playbook -i inventories/aio playbooks/aio.yml -e nimbus_aio_state=absent

## test: lint, sanity, unit tests, collection build and every Molecule scenario
test:
	tools/test

## testbed: podman, the virtualenv and the base image (idempotent)
testbed:
	tools/testbed

lint unit api sanity molecule build:
	tools/test $@

benchmark: testbed
	benchmarks/converge
