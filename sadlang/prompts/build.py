"""From a prompt-set declaration to concrete prompts with tokens and role positions.

Roles of a prompt: each slot name maps to the positions of its occurrences in template
order (`S` is the first, `S#2` the second); `end` is the last position (where the answer is
predicted); `bos` is 0. Positions count the BOS token as 0, as the model sees it.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, cast

from sadlang.errors import PromptLengthError, SadError

if TYPE_CHECKING:
    from sadlang.models.loader import LoadedModel
    from sadlang.models.planning import PlanningModel

SLOT = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class PromptError(SadError):
    """A prompt that cannot be built: unknown slot, multi-token value, bad answer."""

    def __init__(self, message: str, where: str | None = None):
        self.where = where
        super().__init__(message)


@dataclass
class BuiltPrompt:
    text: str
    tokens: list[int]
    roles: dict[str, list[int]]            # slot -> positions of its occurrences
    assignment: dict[str, str]
    template_index: int
    answer: int | None
    against: int | None
    answer_text: str | None = None
    against_text: str | None = None
    labels: dict[int, str] = field(default_factory=dict)  # position -> role label
    token_texts: list[str] = field(default_factory=list)  # decoded tokens, BOS first
    template: str = ""                     # the template it was filled from (a literal: its text)

    @property
    def end(self) -> int:
        return len(self.tokens) - 1


def template_slots(template: str) -> list[str]:
    return SLOT.findall(template)


def render(template: str, assignment: dict[str, str]) -> tuple[str, list[tuple[str, int, int]]]:
    """Fill slots; return text and (slot, char start, char end) for each occurrence."""
    out, spans, last = [], [], 0
    pos = 0
    for m in SLOT.finditer(template):
        out.append(template[last:m.start()])
        pos += m.start() - last
        value = assignment[m.group(1)]
        spans.append((m.group(1), pos, pos + len(value)))
        out.append(value)
        pos += len(value)
        last = m.end()
    out.append(template[last:])
    return "".join(out), spans


def fill(text: str, assignment: dict[str, str]) -> str:
    return SLOT.sub(lambda m: assignment[m.group(1)], text)


def build_prompt(model: LoadedModel | PlanningModel, template: str, assignment: dict[str, str], template_index: int = 0,
                 answer: str | None = None, against: str | None = None) -> BuiltPrompt:
    """Tokenize a filled template and locate every slot occurrence as exactly one token."""
    text, spans = render(template, assignment)
    tok = model.tokenizer
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), list(enc["offset_mapping"])
    try:
        full = model.to_tokens(text)
    except PromptLengthError as exc:
        raise PromptError(str(exc), where="template") from None
    shift = len(full) - len(ids)
    if full[shift:] != ids:
        raise PromptError(f"tokenizing {text!r} with and without BOS disagrees; cannot place roles")
    roles: dict[str, list[int]] = {}
    for slot, start, end in spans:
        value = text[start:end]
        covering = [i for i, (a, b) in enumerate(offsets) if a < end and b > start]
        core_start = start + (len(value) - len(value.lstrip()))
        if len(covering) != 1 or offsets[covering[0]][0] > core_start:
            pieces = model.decode(model.token_ids(value))
            raise PromptError(
                f"slot {slot} = {value!r} is not a single token in {model.name}'s tokenizer "
                f"(in {text!r} it spans tokens {[model.decode([ids[i]])[0] for i in covering]}; "
                f"alone it is {pieces})")
        unk = getattr(tok, "unk_token_id", None)
        if unk is not None and ids[covering[0]] == unk:
            raise PromptError(f"slot {slot} = {value!r} is not a single token in {model.name}'s "
                              f"tokenizer: it is unknown to the vocabulary (becomes {tok.unk_token!r})")
        roles.setdefault(slot, []).append(covering[0] + shift)
    a_id = w_id = None
    a_txt = w_txt = None
    if answer is not None:
        a_txt = fill(answer, assignment)
        a_id = single_token(model, a_txt, "answer")
    if against is not None:
        w_txt = fill(against, assignment)
        w_id = single_token(model, w_txt, "against")
    labels = {0: "bos"}
    for slot, ps in roles.items():
        for k, p in enumerate(ps):
            labels[p] = slot if k == 0 else f"{slot}#{k + 1}"
    labels[len(full) - 1] = "end"
    return BuiltPrompt(text=text, tokens=full, roles=roles, assignment=dict(assignment),
                       template_index=template_index, answer=a_id, against=w_id,
                       answer_text=a_txt, against_text=w_txt, labels=labels,
                       token_texts=model.decode(full), template=template)


def space_hint(model: LoadedModel | PlanningModel, prompt_text: str, answer: str, what: str = "answer") -> str | None:
    """Why `answer` likely misses the leading space its model's next word carries, or None. A
    word that follows a word or punctuation is written with its space in byte-level BPE
    vocabularies (GPT-2, Llama): " Paris" is one token, "Paris" another, and the logit of the
    second says little. Digits continuing a number ("year 17" + "3") are left alone."""
    if not answer or answer[0].isspace() or not answer[0].isalpha() or not prompt_text:
        return None
    if prompt_text[-1].isspace() or prompt_text[-1] in "([{'\"-/":
        return None
    spaced = model.token_ids(" " + answer)
    if len(spaced) != 1:
        return None
    return (f"{what} {answer!r} has no leading space, but after {prompt_text[-12:]!r} this model writes the next "
            f"word with one: {(' ' + answer)!r} is a single token; did you mean {(' ' + answer)!r}?")


def single_token(model: LoadedModel | PlanningModel, text: str, what: str) -> int:
    ids = model.token_ids(text)
    unk = getattr(model.tokenizer, "unk_token_id", None)
    if len(ids) == 1 and unk is not None and ids[0] == unk:
        raise PromptError(f"{what} {text!r} is not a single token in {model.name}'s tokenizer: "
                          f"it is unknown to the vocabulary", where="answer")
    if len(ids) != 1:
        raise PromptError(f"{what} {text!r} is not a single token in {model.name}'s tokenizer: "
                          f"it is {len(ids)} tokens {model.decode(ids)}", where="answer")
    return ids[0]


Rows = list[str] | list[tuple[str, str]]     # a pool's draws: values, or pairs of a paired pool


def sample_assignments(slot_groups: list[tuple[list[str], Rows, bool]], n: int,
                       seed: int, n_templates: int) -> list[tuple[int, dict[str, str]]]:
    """Deterministic samples: (template index, slot -> value). slot_groups holds
    (slots, pool rows, distinct); a paired pool's row fills its two slots together."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        t = rng.randrange(n_templates)
        assignment: dict[str, str] = {}
        for slots, values, distinct in slot_groups:
            if values and isinstance(values[0], tuple):
                assignment.update(zip(slots, rng.choice(values)))
                continue
            plain = cast("list[str]", values)
            if distinct:
                if len(plain) < len(slots):
                    raise PromptError(f"pool has {len(plain)} values but {len(slots)} distinct slots")
                picked = rng.sample(plain, len(slots))
            else:
                picked = [rng.choice(plain) for _ in slots]
            assignment.update(zip(slots, picked))
        out.append((t, assignment))
    return out
