#!/usr/bin/env bash
# Quick start 1: the main job. Against the emulator unless AZURE_OPENAI_ENDPOINT is set.
source "$(dirname "$0")/_setup.sh"
exec .venv/bin/python examples/quickstart.py "$@"
