import os
import warnings

import pytest

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
FAMILIES = ["tiny-gpt2", "tiny-llama", "tiny-qwen2", "tiny-mistral", "tiny-neox", "tiny-gemma2", "tiny-gemma3"]


@pytest.fixture(params=FAMILIES)
def tiny(request):
    from sadlang.models import load_model
    return load_model(request.param)
