"""A small word-level tokenizer for the models built in code.

Words are split as " word" (leading space kept, like GPT-2's BPE) or single punctuation;
every token is one word, so multi-token names cannot happen unless a word is unknown.
"""

from __future__ import annotations

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from tokenizers.processors import TemplateProcessing
from transformers import PreTrainedTokenizerFast

NAMES = ["Mary", "John", "Alice", "Bob", "Sarah", "James", "Anna", "Tom", "Kate", "Paul"]
PLACES = ["store", "garden", "school", "office", "station", "house"]
OBJECTS = ["drink", "ring", "book", "snack", "bone", "kiss"]
FUNCTION_WORDS = [
    "When", "Then", "and", "went", "to", "the", "gave", "a", "an", "of", "it", "is", "was",
    "had", "with", "at", "in", "on", "said", "for", "so", "that", "this", "they", "he", "she",
    "A", "B", "C", "D", "E", "F", "G", "H", "x", "y", "z", "w",
]
PUNCT = [",", ".", ":", "!", "?"]
SPECIALS = ["<bos>", "<unk>", "<pad>"]


def tiny_vocabulary() -> list[str]:
    """The fixed vocabulary (index = token id) shared by the built-in test models."""
    words = NAMES + PLACES + OBJECTS + FUNCTION_WORDS
    vocab = list(SPECIALS)
    for w in words:
        vocab.append(" " + w)
        vocab.append(w)
    vocab += PUNCT
    seen: list[str] = []
    for v in vocab:
        if v not in seen:
            seen.append(v)
    return seen


def build_tiny_tokenizer(name: str = "sadlang/tiny") -> PreTrainedTokenizerFast:
    """A fast word-level tokenizer that prepends <bos> (id 0), as the bridge expects."""
    vocab = {w: i for i, w in enumerate(tiny_vocabulary())}
    tk = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Split(Regex(r" ?[A-Za-z0-9]+|[^A-Za-z0-9 ]| "),
                                            behavior="isolated")
    tk.decoder = decoders.Fuse()
    tk.post_processor = TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 0)])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, bos_token="<bos>", unk_token="<unk>",
                                  pad_token="<pad>", eos_token="<bos>", add_bos_token=True)
    tok.init_kwargs["name_or_path"] = name
    return tok
