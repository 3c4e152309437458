"""Load a policy for generation (adapters merged, eval mode) or for training (fresh or resumed adapter)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfimprove.config.schema import Adapter
from selfimprove.errors import UserError
from selfimprove.models import Policy


def device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str) -> Any:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except OSError as exc:
        raise UserError(f"cannot load tokenizer for '{path}': {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def is_adapter(checkpoint: str | None) -> bool:
    return checkpoint is not None and (Path(checkpoint) / "adapter_config.json").is_file()


def _load_base(path: str, quantize_4bit: bool = False, master_weights: bool = False) -> Any:
    """The model on the device: bf16 on CUDA, except ``master_weights`` (the weights full fine-tuning updates),
    kept in fp32 under bf16 autocast. An AdamW step of 1e-6 on a bf16 weight of 0.02 (spacing 1.2e-4) rounds
    to nothing."""
    import torch
    from transformers import AutoModelForCausalLM

    cuda = device() == "cuda" and not master_weights
    kwargs: dict[str, Any] = {"dtype": torch.bfloat16 if cuda else torch.float32}
    if quantize_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as exc:
        raise UserError(f"cannot load model '{path}': {exc}") from None
    return model if quantize_4bit else model.to(device())


def load_for_inference(policy: Policy) -> Any:
    """The policy as one plain model: a LoRA adapter is merged in for fast generation."""
    if policy.checkpoint and not is_adapter(policy.checkpoint):
        model = _load_base(policy.checkpoint)
    else:
        model = _load_base(policy.base)
        if policy.checkpoint:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, policy.checkpoint).merge_and_unload()
    return model.eval()


def check_adapter_supported(adapter: Adapter) -> None:
    if adapter.type != "qlora":
        return
    import importlib.util

    import torch

    if not torch.cuda.is_available():
        raise UserError("adapter.type: qlora needs a CUDA GPU (bitsandbytes 4-bit); use lora or full on CPU")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise UserError("adapter.type: qlora needs bitsandbytes: pip install 'selfimprove[qlora]'")


def load_for_training(base: str, adapter: Adapter, init: str | None) -> Any:
    """A trainable model: ``init`` is None (start from base) or a checkpoint to continue from."""
    check_adapter_supported(adapter)
    if adapter.type == "full":
        return _load_base(init or base, master_weights=True)
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    if init and not is_adapter(init):
        raise UserError(f"cannot continue a LoRA run from a full checkpoint: {init}")
    model = _load_base(base, quantize_4bit=adapter.type == "qlora")
    if adapter.type == "qlora":
        model = prepare_model_for_kbit_training(model)
    if init:
        return PeftModel.from_pretrained(model, init, is_trainable=True)
    config = LoraConfig(
        r=adapter.r,
        lora_alpha=adapter.alpha,
        lora_dropout=adapter.dropout,
        target_modules=adapter.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)
