"""The README's test command is what CI runs, and its quick-start example file exists."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_command = next(block for block in blocks if "pytest" in block)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_command.strip() in ci
    assert ci.index("torch==2.13.0") < ci.index(test_command.strip())


def test_quick_start_input_exists():
    readme = (ROOT / "README.md").read_text()
    assert (ROOT / "docs/examples/metals.gsd").exists() and "docs/examples/metals.gsd" in readme
