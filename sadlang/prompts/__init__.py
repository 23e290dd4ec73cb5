"""Prompt sets: templates with slots, sampling, tokenization and role positions."""

from sadlang.prompts.build import BuiltPrompt, build_prompt, sample_assignments

__all__ = ["BuiltPrompt", "build_prompt", "sample_assignments"]
