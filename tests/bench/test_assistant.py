"""The bench's AI-answered message: the model's tokens come from the request the cloud would send."""

from __future__ import annotations

from collections import Counter

from bench import assistant, prices
from bench.cost import Costed
from bench.meter import Snapshot
from shared.services.assistant.bedrock import DEFAULT_MODEL_ID, PRICES_PER_1K


def test_the_bench_prices_the_assistants_default_model() -> None:
    assert prices.BEDROCK_DEFAULT_MODEL == DEFAULT_MODEL_ID
    assert PRICES_PER_1K[DEFAULT_MODEL_ID] == (prices.BEDROCK_INPUT_PER_1K, prices.BEDROCK_OUTPUT_PER_1K)


def test_model_tokens_count_the_system_prompt_the_passages_and_the_answer() -> None:
    answer = "You can return any item within 30 days of delivery."
    input_tokens, output_tokens = assistant.model_tokens(
        "How do I send back a jacket I ordered?", "en", answer
    )
    # The system prompt alone is ~250 tokens; the returns article's passages come with it.
    assert 400 < input_tokens < 3000
    assert assistant.tokens(answer) < output_tokens < 200


def test_the_total_adds_the_measured_aws_part_and_the_model() -> None:
    aws = Costed("AI-answered message", 10, 10, Snapshot(), Counter())
    aws.lines.append(("Lambda invocations", 5.0, 40.0))
    result = assistant.AiAnswered(aws, input_tokens=1000, output_tokens=100)
    assert result.model_usd == 0.00025 + 0.000125
    assert abs(result.total_usd - (0.00004 + 0.000375)) < 1e-12
    assert "**AI-answered message**" in assistant.describe(result)
