"""Fixtures for the model-backed scorer tests: a tiny GPT-2 built once per session."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

# The suite is run from the repository root without installing the project; make the root
# importable (``scoring`` and ``tests.tiny_model``) when pytest's rootdir handling did not.
_ROOT = Path(__file__).resolve().parents[3]
if str(_ROOT) not in sys.path:
    sys.path.insert(0, str(_ROOT))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Directory holding a tiny trained GPT-2 (n_positions=128) and its BPE tokenizer."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from tests.tiny_model import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("tiny_gpt2"))


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir: str):
    """The tiny model loaded through the real ``from_pretrained`` path (CPU, float32)."""
    from scoring.lm.loading import load_causal_lm

    return load_causal_lm(tiny_model_dir, device="cpu")
