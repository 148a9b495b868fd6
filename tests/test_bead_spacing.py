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
    lines = [line for line in result.stdout.splitlines() if not line.startswith("skipped")]
    for line in lines:
        kind = line.split()[0]
        assert "2 entries" in line
        assert f"taken for C-alpha traces: {2 if kind == 'ca' else 0}; largest " in line, line
        largest = float(line.rsplit("largest ", 1)[1].split()[0])
        assert 3.5 < largest < 12.0  # peptide-bonded beads, closer than a chain break's
    assert len(lines) == 9  # 3 kinds x 3 noise levels
