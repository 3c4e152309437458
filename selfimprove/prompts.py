"""Render a recipe's prompt (system message, few-shot turns, user template) into chat messages."""

from __future__ import annotations

from typing import Any

from selfimprove.config.schema import Prompt
from selfimprove.errors import UserError
from selfimprove.records import Messages, Problem

TEXT = "text"  # the role of a message given to the model verbatim, without its chat template


def fields(problem: Problem) -> dict[str, Any]:
    return {**problem.meta, "id": problem.id, "question": problem.question, "answer": problem.answer}


def render(prompt: Prompt, problem: Problem, few_shot: bool = True) -> Messages:
    """Chat messages for ``problem``; ``few_shot=False`` leaves out the exemplars (STaR's saved examples)."""
    messages: Messages = []
    if prompt.system:
        messages.append({"role": "system", "content": prompt.system})
    for shot in prompt.few_shot if few_shot else []:
        messages.append({"role": "user", "content": prompt.template.format_map({**shot, "answer": shot.get("answer")})})
        messages.append({"role": "assistant", "content": shot["completion"]})
    try:
        messages.append({"role": "user", "content": prompt.template.format_map(fields(problem))})
    except KeyError as exc:
        raise UserError(
            f"prompt template {prompt.template!r} uses {{{exc.args[0]}}}, which problem {problem.id} lacks"
        ) from None
    if not prompt.chat:  # one plain text, which render_chat leaves as it is
        return [{"role": TEXT, "content": "\n\n".join(m["content"] for m in messages)}]
    return messages


def render_chat(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The model's chat template with a generation prompt, or plain text for base models. Messages that end with an
    assistant turn are a prefill: the model continues that turn (a judge's ``<Score>``). A ``text`` message (a prompt
    with ``chat: false``) is given as it is."""
    if messages and messages[0].get("role") == TEXT:
        return "".join(m["content"] for m in messages)
    prefill = bool(messages) and messages[-1].get("role") == "assistant"
    if tokenizer.chat_template:
        return tokenizer.apply_chat_template(
            messages, add_generation_prompt=not prefill, continue_final_message=prefill, tokenize=False
        )
    return "\n\n".join(m["content"] for m in messages) + ("" if prefill else "\n\n")
