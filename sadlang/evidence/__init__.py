"""The evidence store: what claims are measured on. It sits below `control/`, `claims/` and
`runner/` and imports none of them.

- `store.PromptSetEvidence`: one prompt set's activations, decompositions, firings and
  traces, memoized (one forward pass per equal-length batch);
- `roles`: role positions (`S#2`, `end`, `"x"`) in one prompt, and component patterns;
- `metrics`: the task metrics (logit difference, accuracy), computed in one place;
- `records`: plain per-prompt records that verdicts carry;
- `scans`: head scans (prev-token, duplicate-token, induction, sink scores) from attention.
"""
