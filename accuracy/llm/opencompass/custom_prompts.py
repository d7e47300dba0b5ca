"""The prompts OpenCompass sends for a custom ``.jsonl`` dataset, known before it runs.

OpenCompass's custom datasets (``opencompass.datasets.custom``) build the user message from the first
row's columns: multiple choice (two or more option columns A, B, ... in a row) is
``"Question: {question}\\nA. {A}\\nB. {B}..."``, QA is ``"{question}"``; a ``<file>.meta.json`` beside
the data may replace it with its own ``human_prompt``. Rendering the same text here lets preflight
measure every prompt against the server's context before a single request is sent.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from accuracy.llm.suite_config import CustomDataset


@dataclass(frozen=True)
class PromptSample:
    """One sample's user message, and where it comes from (for an error that names it)."""

    dataset: str
    path: Path
    line: int
    prompt: str


def custom_prompts(dataset: CustomDataset) -> Iterator[PromptSample]:
    """Every sample's user message as OpenCompass's default gen template renders it.

    Yields nothing for what cannot be rendered here: ``ppl`` inference (no single prompt), or a
    ``.meta.json`` with a whole ``template`` of its own.
    """
    if dataset.infer_method != "gen":
        return
    meta = _meta(dataset.path)
    if "template" in meta:
        return
    rows = [(number, json.loads(line)) for number, line in enumerate(
        dataset.path.read_text(encoding="utf-8").splitlines(), start=1) if line.strip()]
    if not rows:
        return
    first = rows[0][1]
    options = []
    for letter in string.ascii_uppercase:  # OpenCompass: consecutive option columns from A
        if letter not in first:
            break
        options.append(letter)
    data_type = meta.get("data_type") or dataset.data_type or ("mcq" if len(options) > 1 else "qa")
    if data_type in ("mcq", "circular-mcq"):
        default = "Question: {question}" + "".join(f"\n{letter}. {{{letter}}}" for letter in options)
    else:
        default = "{question}"
    template = meta.get("human_prompt", default)
    for number, row in rows:
        prompt = template
        for key, value in row.items():  # as OpenCompass's PromptList.format: plain replacement
            if key != "answer":
                prompt = prompt.replace(f"{{{key}}}", str(value))
        yield PromptSample(dataset=dataset.abbr, path=dataset.path, line=number, prompt=prompt)


def _meta(path: Path) -> dict:
    meta_path = Path(f"{path}.meta.json")
    if not meta_path.exists():
        return {}
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}
