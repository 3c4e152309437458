"""Fill ``gpu-wheels/`` with what the GPU machine lacks, for ``benchmarks/gpu_check.py`` (``make gpu-wheels``).

The GPU machine's image has PyTorch, transformers, accelerate and peft (and what they need), Python 3.12, and no
package index; files travel with the working tree, 64 MiB a call. The wheels here are the project's other runtime
dependencies, found by walking the requirements of this environment (so their versions are the ones the tests ran
against), less that image's packages, for CPython 3.12 on x86-64 Linux; plus the project's own wheel (its entry
points). Two sets, since everything does not fit in one call:

- ``qlora`` (default): bitsandbytes (41 MiB) for the QLoRA parts, without ``datasets``' pyarrow and pandas: TRL's
  side of the comparison is then skipped unless the image has them;
- ``trl``: pyarrow and pandas for TRL's side (the oldest datasets and pyarrow TRL takes, to fit), without
  bitsandbytes: the QLoRA parts are then skipped.

matplotlib (plots in ``selfimprove report``) is left out of both: the check draws nothing.

``--with NAME ...`` adds distributions at this environment's versions: the summary of a GPU check names any of the
project's requirements the image does not meet (an older transformers, say: 13 MiB).

Run:  .venv/bin/python benchmarks/gpu_wheels.py [--set qlora|trl] [--with NAME ...] [--out gpu-wheels]
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import shutil
import subprocess
import sys
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parent.parent
IMAGE = ["torch", "transformers", "accelerate", "peft"]  # what the GPU machine's image has, with what they require
ROOTS = ["selfimprove", "pytest"]
# bitsandbytes is not installed on a CPU machine: pinned to the version docs/gpu.md names (needs torch, numpy)
# The trl set pins the oldest datasets and pyarrow TRL accepts (datasets>=4.7, pyarrow>=21): pyarrow 21 is 41 MiB
# where this environment's is 52, which with pandas would not fit; dill and multiprocess as datasets 4.7 bounds them.
SETS = {
    "qlora": {"add": ["bitsandbytes==0.50.2"], "leave_out": ["pyarrow", "pandas"], "pins": {}},
    "trl": {
        "add": [],
        "leave_out": ["bitsandbytes"],
        "pins": {"datasets": "4.7.0", "pyarrow": "21.0.0", "dill": "0.4.0", "multiprocess": "0.70.18"},
    },
}
ALWAYS_LEFT_OUT = ["matplotlib"]
LIMIT_MIB = 64
PLATFORMS = ["manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_24_x86_64", "manylinux_2_27_x86_64",
             "manylinux_2_28_x86_64"]  # fmt: skip


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure(roots: list[str], stop: set[str] = frozenset()) -> set[str]:
    """The installed distributions ``roots`` need at run time (extras and other platforms' markers left out),
    not descending into ``stop``."""
    seen: set[str] = set()
    todo = [canonical(r) for r in roots]
    while todo:
        name = todo.pop()
        if name in seen or name in stop:
            continue
        try:
            requires = importlib.metadata.requires(name) or []
        except importlib.metadata.PackageNotFoundError:
            continue
        seen.add(name)
        for line in requires:
            requirement = Requirement(line)
            if requirement.marker is None or requirement.marker.evaluate({"extra": "", "python_version": "3.12"}):
                todo.append(canonical(requirement.name))
    return seen


def wanted(selection: str, extra: list[str] = ()) -> list[str]:
    """``name==version`` of each wheel the set carries, with ``extra`` distributions at this environment's versions
    (e.g. transformers, where the image's is older than the project needs)."""
    image = closure(IMAGE)
    chosen = SETS[selection]
    leave_out = {canonical(n) for n in chosen["leave_out"] + ALWAYS_LEFT_OUT}
    leave_out |= closure(list(leave_out), stop=image) - closure(ROOTS, stop=leave_out | image)  # their own needs
    names = closure(ROOTS, stop=leave_out) - image - leave_out - {"selfimprove"}
    names |= {canonical(n) for n in extra}
    return sorted(f"{n}=={chosen['pins'].get(n) or importlib.metadata.version(n)}" for n in names) + chosen["add"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", choices=list(SETS), default="qlora")
    parser.add_argument("--out", default=str(ROOT / "gpu-wheels"))
    parser.add_argument("--with", dest="extra", nargs="*", default=[], help="more distributions to carry")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    specs = wanted(args.set, args.extra)
    platform = [f"--platform={p}" for p in PLATFORMS]
    pip = [sys.executable, "-m", "pip", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version=3.12",
                    "--implementation=cp", *platform, "-d", str(out), *specs], check=True)  # fmt: skip
    subprocess.run([*pip, "wheel", "--no-deps", "-w", str(out), str(ROOT)], check=True)
    wheels = sorted(out.glob("*.whl"), key=lambda p: p.stat().st_size, reverse=True)
    total = sum(p.stat().st_size for p in wheels) / 2**20
    tree = sum(p.stat().st_size for p in ROOT.rglob("*") if p.is_file() and _tracked(p)) / 2**20
    for wheel in wheels:
        print(f"{wheel.stat().st_size / 2**20:7.2f} MiB  {wheel.name}")
    print(f"set '{args.set}': {len(wheels)} wheels, {total:.1f} MiB; with the working tree ({tree:.1f} MiB) "
          f"{total + tree:.1f} of the {LIMIT_MIB} MiB a call carries")  # fmt: skip
    if total + tree > LIMIT_MIB:
        print(f"over the {LIMIT_MIB} MiB a call carries", file=sys.stderr)
        return 1
    return 0


def _tracked(path: Path) -> bool:
    parts = path.relative_to(ROOT).parts
    return not parts[0].startswith(".") and parts[0] not in ("gpu-wheels", "runs", "build", "gpu-check")


if __name__ == "__main__":
    sys.exit(main())
