"""Load a causal language model and its tokenizer once per process.

Recipe: ``AutoTokenizer.from_pretrained`` + ``AutoModelForCausalLM.from_pretrained`` (Hugging Face
transformers), model in ``eval()`` mode on the chosen device. Device and dtype defaults follow
common practice for inference: CUDA when ``torch.cuda.is_available()``, with bfloat16 where the
GPU supports it (Ampere and newer) and float16 otherwise; float32 on CPU, where half precision is
slow and inaccurate.

Loading is cached per process with :func:`functools.lru_cache`, keyed by the *resolved*
``(name_or_path, device, dtype)``, so a Celery worker loads each model once and reuses it across
tasks. torch and transformers are imported inside the functions.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scoring.lm.errors import ModelUnavailableError

_DTYPE_ALIASES = {
    "float32": "float32",
    "fp32": "float32",
    "float": "float32",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
}


@dataclass(frozen=True)
class LoadedModel:
    """A model/tokenizer pair ready for inference.

    Attributes:
        name: the ``name_or_path`` it was loaded from.
        model: a ``transformers`` causal LM in eval mode on ``device``.
        tokenizer: the matching tokenizer.
        device: torch device string, e.g. ``"cuda"`` or ``"cpu"``.
        dtype: weight dtype name, one of ``"float32"``, ``"bfloat16"``, ``"float16"``.
    """

    name: str
    model: Any
    tokenizer: Any
    device: str
    dtype: str


def _import_torch():
    """Import torch or raise :class:`ModelUnavailableError` (the web image may not ship it)."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ModelUnavailableError(
            "torch is not installed; install the 'ml' extra to use model-backed scorers"
        ) from exc
    return torch


def resolve_device(device: str | None = None) -> str:
    """Return ``device`` or, when None, ``"cuda"`` if CUDA is available else ``"cpu"``."""
    if device:
        return str(device)
    torch = _import_torch()
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_dtype(device: str, dtype: Any = None) -> str:
    """Return the weight dtype name to use on ``device``.

    Args:
        device: a torch device string.
        dtype: None/``"auto"`` for the default, or a name (``"bf16"``, ``"float16"``...) or a
            ``torch.dtype``.

    Returns:
        ``"bfloat16"`` on CUDA with bf16 support, ``"float16"`` on older CUDA GPUs, ``"float32"``
        on CPU (and on any other device) unless ``dtype`` says otherwise.

    Raises:
        ValueError: unknown dtype name.
    """
    if dtype is not None and dtype != "auto":
        name = str(dtype).removeprefix("torch.").lower()
        if name not in _DTYPE_ALIASES:
            raise ValueError(f"unsupported dtype {dtype!r}; use one of {sorted(_DTYPE_ALIASES)}")
        return _DTYPE_ALIASES[name]
    if device.startswith("cuda"):
        torch = _import_torch()
        return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
    return "float32"


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def load_causal_lm(
    name_or_path: str | os.PathLike[str], *, device: str | None = None, dtype: Any = None
) -> LoadedModel:
    """Load (or fetch from the per-process cache) a causal LM and its tokenizer.

    Args:
        name_or_path: a local directory written by ``save_pretrained`` or a hub model id.
        device: torch device string; None picks CUDA when available, else CPU.
        dtype: None/"auto" for the device default (see :func:`resolve_dtype`), or an explicit
            dtype name / ``torch.dtype``.

    Returns:
        A :class:`LoadedModel`; the same object for the same resolved arguments.

    Raises:
        ModelUnavailableError: empty name, a path-like name that does not exist, torch or
            transformers missing, or ``from_pretrained`` failing (no network, missing files,
            unknown architecture). Callers skip the scorer with the message as the reason.
        ValueError: unknown dtype name.
    """
    name = os.fspath(name_or_path).strip() if name_or_path is not None else ""
    if not name:
        raise ModelUnavailableError("no model configured (empty model name or path)")
    resolved_device = resolve_device(device)
    resolved_dtype = resolve_dtype(resolved_device, dtype)
    return _load_cached(name, resolved_device, resolved_dtype)


def clear_model_cache() -> None:
    """Drop every cached model (frees memory once the last reference goes away)."""
    _load_cached.cache_clear()


@functools.lru_cache(maxsize=4)
def _load_cached(name: str, device: str, dtype: str) -> LoadedModel:
    torch = _import_torch()
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as exc:  # pragma: no cover - depends on the installed extras
        raise ModelUnavailableError("transformers is not installed") from exc

    path = Path(name).expanduser()
    exists = path.exists()
    looks_like_path = name.startswith(("/", "./", "../", "~")) or name.count("/") > 1
    if not exists and looks_like_path:
        # A hub id is "name" or "org/name"; anything else that is not on disk is a typo or a
        # missing volume, and asking the hub would only produce a confusing error.
        raise ModelUnavailableError(f"model path {name!r} does not exist")
    source = str(path) if exists else name
    local_only = exists or _offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=local_only)
        model = AutoModelForCausalLM.from_pretrained(
            source, local_files_only=local_only, dtype=getattr(torch, dtype)
        )
    except (OSError, ValueError, KeyError) as exc:
        where = "local directory" if exists else ("offline cache" if local_only else "hub")
        raise ModelUnavailableError(
            f"cannot load model {name!r} from the {where}: {type(exc).__name__}: {exc}"
        ) from exc
    model.to(device)
    model.eval()
    return LoadedModel(name=name, model=model, tokenizer=tokenizer, device=device, dtype=dtype)
