"""The prompts preflight measures are the ones OpenCompass sends: rendered by OpenCompass's own custom
dataset configs and prompt template, compared with ours."""

from __future__ import annotations

import json

import pytest

from accuracy.llm.opencompass.custom_prompts import custom_prompts
from accuracy.llm.suite_config import CustomDataset

pytest.importorskip("opencompass")


def opencompass_prompts(path, **meta) -> list[str]:
    """OpenCompass's user message for each row, from its custom-dataset config and PromptTemplate."""
    from opencompass.datasets.custom import make_custom_dataset_config
    from opencompass.openicl.icl_prompt_template import PromptTemplate

    config = make_custom_dataset_config({"path": str(path), **meta})
    template = dict(config["infer_cfg"]["prompt_template"])
    template.pop("type")
    prompt_template = PromptTemplate(**template)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    rendered = []
    for row in rows:
        items = prompt_template.generate_item({**row, "answer": ""}, output_field="answer")
        rendered.append(next(item["prompt"] for item in items if isinstance(item, dict) and item.get("role") == "HUMAN"))
    return rendered


@pytest.mark.parametrize(
    "rows",
    [
        [{"question": "12+2=?", "A": "12", "B": "13", "C": "14", "D": "15", "answer": "C"},
         {"question": "a {brace} 1+1=?", "A": "1", "B": "2", "C": "3", "D": "4", "answer": "B"}],
        [{"question": "Name a prime.", "answer": "2"}, {"question": "And another?", "answer": "3"}],
        [{"question": "Yes or no?", "A": "yes", "B": "no", "answer": "A"}],
    ],
    ids=["mcq", "qa", "two-options"],
)
def test_our_prompts_are_opencompass_prompts(tmp_path, rows):
    path = tmp_path / "data.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    ours = list(custom_prompts(CustomDataset(path=path, abbr="data")))
    assert [sample.prompt for sample in ours] == opencompass_prompts(path)
    assert [sample.line for sample in ours] == list(range(1, len(rows) + 1))


def test_a_meta_file_human_prompt_is_honoured_and_a_whole_template_skipped(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(json.dumps({"question": "1+1=?", "answer": "2"}) + "\n")
    meta = path.with_name("data.jsonl.meta.json")
    meta.write_text(json.dumps({"human_prompt": "Q: {question}\nA:"}))
    assert [s.prompt for s in custom_prompts(CustomDataset(path=path, abbr="data"))] == ["Q: 1+1=?\nA:"]
    assert opencompass_prompts(path) == ["Q: 1+1=?\nA:"]
    meta.write_text(json.dumps({"template": {"round": [{"role": "HUMAN", "prompt": "{question}"}]}}))
    assert list(custom_prompts(CustomDataset(path=path, abbr="data"))) == []
