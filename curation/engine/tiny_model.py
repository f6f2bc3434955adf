"""Build a tiny, random, Qwen3-shaped causal LM with a real tokenizer, offline, in ~0.3 s.

    from curation.engine.tiny_model import build_tiny_model
    path = build_tiny_model(tmp_path / "tiny")   # then AutoTokenizer/AutoModel.from_pretrained

The tokenizer is a byte-level BPE trained on a small built-in text (Python, Pyomo and the CoRT
trajectory format) plus Qwen's special tokens, with TRL's Qwen3 chat template. The model is a
random ``Qwen3ForCausalLM`` (2 layers, hidden 64): its output is noise, but every code path that
a real Qwen3 takes (chat template, special tokens, batched generate, SFT, GRPO) runs on it.
For tests and benchmarks; it needs transformers, tokenizers and trl (the training extra).
"""

from __future__ import annotations

from pathlib import Path

SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<think>",
    "</think>",
    "<tool_call>",
    "</tool_call>",
    "<tool_response>",
    "</tool_response>",
]

_CORPUS = r"""
<think>
Let me model this as a linear program. Let x be the number of chairs and y the number of tables.
The profit is 30 x + 50 y. Wait, the number of trips must be an integer; I should declare the
variables as integers and re-solve. It looks tedious, and we can use python code to simplify the
reasoning. We don't need to doubt the accuracy of python calculations.
```python
import pyomo.environ as pyo

m = pyo.ConcreteModel()
m.x = pyo.Var(domain=pyo.NonNegativeIntegers)
m.y = pyo.Var(domain=pyo.NonNegativeReals, bounds=(0, 40))
m.profit = pyo.Objective(expr=30 * m.x + 50 * m.y, sense=pyo.maximize)
m.wood = pyo.Constraint(expr=2 * m.x + 4 * m.y <= 100)
m.labor = pyo.Constraint(expr=3 * m.x + 2 * m.y <= 90)
result = pyo.SolverFactory('appsi_highs').solve(m)
print(f"OBJECTIVE_VALUE: {pyo.value(m.profit)}")
for v in [m.x, m.y]:
    print(v.name, pyo.value(v))
```
```output
OBJECTIVE_VALUE: 1500.0
x 20.0
y 15.0
```
Traceback (most recent call last):
  File "<cell>", line 3, in <module>
NameError: name 'model' is not defined
The solver says the optimal profit is 1500, so the answer is 1500.
</think>
The maximum profit is \boxed{1500}. The problem is infeasible: no optimal solution.
def main():
    return {"a": [1, 2, 3], "b": (4.5, -6e-3)}
if __name__ == "__main__":
    main()
"""


def _qwen3_template() -> str:
    import trl

    return (Path(trl.__file__).parent / "chat_templates" / "qwen3.jinja").read_text()


def build_tiny_model(path: str | Path, *, vocab_size: int = 600, seed: int = 0) -> Path:
    """Write a tiny tokenizer + random Qwen3ForCausalLM to ``path`` (created) and return it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen3Config, Qwen3ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    # Byte-level BPE as in Qwen: every string round-trips, whatever the model writes.
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator([_CORPUS] * 4, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",  # noqa: S106 - a token name, not a password
        pad_token="<|endoftext|>",  # noqa: S106
        additional_special_tokens=SPECIAL_TOKENS[1:2] + SPECIAL_TOKENS[5:],
        clean_up_tokenization_spaces=False,
        model_input_names=["input_ids", "attention_mask"],
    )
    tokenizer.chat_template = _qwen3_template()
    tokenizer.save_pretrained(path)

    torch.manual_seed(seed)
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=[tokenizer.convert_tokens_to_ids("<|im_end|>")],
        pad_token_id=tokenizer.pad_token_id,
    )
    model = Qwen3ForCausalLM(config)
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        tokenizer.convert_tokens_to_ids("<|endoftext|>"),
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(path)
    return path
