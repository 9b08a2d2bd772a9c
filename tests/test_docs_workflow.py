"""The code of the workflow page (docs/workflow.md) runs as written, in order."""

import re
from pathlib import Path

import matplotlib
import pytest

matplotlib.use("Agg")

PAGE = Path(__file__).parent.parent / "docs" / "workflow.md"


def code_blocks(text):
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def test_workflow_page_runs(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.chdir(tmp_path)
    namespace = {}
    blocks = code_blocks(PAGE.read_text())
    assert len(blocks) >= 8
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)  # noqa: S102
        plt.close("all")
    s, t = namespace["s"], namespace["t"]
    assert t.learning_results.hnmf["loss"] == "kl"
    assert namespace["clusters"].labels.shape == (namespace["k"],)
    assert namespace["si"].learning_results.output_dimension == 4
    assert s.learning_results.decomposition_algorithm == "hnmf"


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__])
