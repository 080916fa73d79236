"""Run every benchmark in bench/ (or those named): `make bench` or `python bench/run.py [NAME ...]`.

Each bench_*.py measures its own baseline in the same run and prints figures and ratios;
this runner only runs them one after another and says which ones missed their target.
"""
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(names):
    scripts = sorted(HERE.glob("bench_*.py"))
    if names:
        scripts = [script for script in scripts if any(name in script.stem for name in names)]
    failed = []
    for script in scripts:
        print(f"\n=== {script.stem} ===", flush=True)
        result = subprocess.run([sys.executable, str(script)], cwd=HERE.parent)
        if result.returncode:
            failed.append(script.stem)
    if failed:
        print("\nMissed a target or failed: " + ", ".join(failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
