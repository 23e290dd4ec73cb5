import os
import warnings

import pytest

from sadlang.models.families import tiny_models

warnings.filterwarnings("ignore")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")


@pytest.fixture(scope="session")
def tiny_gpt2():
    from sadlang.models import load_model
    return load_model("tiny-gpt2")


@pytest.fixture(scope="session")
def tiny_llama():
    from sadlang.models import load_model
    return load_model("tiny-llama")


@pytest.fixture(scope="session")
def planted():
    from sadlang.models import load_model
    return load_model("planted")


@pytest.fixture(scope="session")
def smollm():
    from sadlang.models import load_model
    return load_model("smollm2-135m")


# one tiny model per family (sadlang.models.families): the exactness suite runs on each
FAMILIES = tiny_models()


@pytest.fixture(params=FAMILIES)
def tiny(request):
    from sadlang.models import load_model
    return load_model(request.param)


# The files that take longest under `scripts/test.sh` (--durations=0, summed per file), longest
# first: scripts/test.sh hands files to its two workers in this order (--no-loadscope-reorder),
# so no long file starts while the other worker is already idle at the end. Order within a file
# is kept.
LONGEST_FIRST = ["test_ray.py", "test_plugin.py", "test_html_browser.py", "test_golden.py", "test_gemma3_270m.py",
                 "test_lang.py", "test_prefixes.py", "test_exactness.py", "gendered-pronoun.sad"]


def pytest_collection_modifyitems(items):
    def rank(item) -> int:
        name = item.path.name
        return LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=rank)
