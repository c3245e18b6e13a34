"""Loading a causal LM through the real ``from_pretrained`` path, and the per-process cache."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from scoring.lm.errors import ModelUnavailableError
from scoring.lm.loading import load_causal_lm, resolve_device, resolve_dtype

ROOT = Path(__file__).resolve().parents[3]


def test_loads_tiny_model_from_disk(tiny_model_dir):
    loaded = load_causal_lm(tiny_model_dir, device="cpu")
    assert loaded.device == "cpu"
    assert loaded.dtype == "float32"
    assert loaded.model.config.n_positions == 128
    assert not loaded.model.training
    assert loaded.tokenizer.bos_token_id is not None
    assert next(loaded.model.parameters()).dtype.is_floating_point


def test_cache_returns_same_object_per_resolved_key(tiny_model_dir):
    a = load_causal_lm(tiny_model_dir, device="cpu")
    b = load_causal_lm(tiny_model_dir, device="cpu", dtype="fp32")
    assert a is b


def test_missing_path_is_model_unavailable(tmp_path):
    with pytest.raises(ModelUnavailableError, match="does not exist"):
        load_causal_lm(tmp_path / "nope" / "model", device="cpu")


def test_empty_name_is_model_unavailable():
    with pytest.raises(ModelUnavailableError, match="no model configured"):
        load_causal_lm("", device="cpu")


def test_directory_without_weights_is_model_unavailable(tmp_path):
    with pytest.raises(ModelUnavailableError, match="cannot load model"):
        load_causal_lm(tmp_path, device="cpu")


def test_dtype_defaults():
    assert resolve_dtype("cpu") == "float32"
    assert resolve_dtype("cpu", "bf16") == "bfloat16"
    assert resolve_dtype("cuda:0", "half") == "float16"
    with pytest.raises(ValueError, match="unsupported dtype"):
        resolve_dtype("cpu", "int3")
    torch = pytest.importorskip("torch")
    assert resolve_dtype("cpu", torch.bfloat16) == "bfloat16"
    assert resolve_device() == ("cuda" if torch.cuda.is_available() else "cpu")


def test_pure_modules_do_not_import_torch_or_django():
    # The web process imports these; they must not drag in torch, transformers or Django.
    code = (
        "import sys\n"
        "import scoring.lm.judge, scoring.lm.judge_prompts, scoring.lm.identity\n"
        "import scoring.lm.judge_http, scoring.lm.judge_local, scoring.lm.perplexity\n"
        "import scoring.lm.loading, scoring.lm.errors\n"
        "bad = [m for m in ('torch', 'transformers', 'django', 'rest_framework', 'celery',"
        " 'annotations') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
