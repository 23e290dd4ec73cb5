"""Circuits tested whole: declared or traced circuits resolved per prompt (`nodes`), node
ablations over attention heads in one batched pass per variant set (`ablation`), and the
circuit metrics of Wang et al.: faithfulness, necessity, completeness, minimality and the
random-circuit baseline (`metrics`)."""
