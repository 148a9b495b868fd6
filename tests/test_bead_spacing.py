"""docs/examples/bead_spacing.py (quoted in the README and coarse_grain.py) tells the kinds of bead apart."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bead_spacing_report(tmp_path):
    folder = tmp_path / "entries"
    folder.mkdir()
    for name in ("1AKI.cif.gz", "1CKB.pdb.gz"):
        (folder / name).write_bytes((ROOT / "tests/files/pdb" / name).read_bytes())
    result = subprocess.run([sys.executable, str(ROOT / "docs/examples/bead_spacing.py"), str(folder)],
                            capture_output=True, text=True, check=True)
    lines = {line.split()[0]: line for line in result.stdout.splitlines()}
    assert "2 entries" in lines["ca"] and lines["ca"].endswith("taken for C-alpha traces: 2")
    for kind in ("centroid", "com"):
        assert "2 entries" in lines[kind] and lines[kind].endswith("taken for C-alpha traces: 0")
