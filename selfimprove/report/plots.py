"""The report's figures, one PNG each, drawn with matplotlib's file-only backend (no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from selfimprove.analysis.difficulty import Bin


def _figure(width: float = 6.4, height: float = 3.6, ncols: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg")  # files only: works on a headless machine
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols if ncols > 1 else width, height), squeeze=False)
    return fig, list(axes[0])


def _save(fig: Any, path: Path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _lines(
    ax: Any, x: Sequence[int], series: dict[str, Sequence[float | None]], percent: bool = False,
    xlabel: str = "iteration", bands: dict[str, Sequence[float | None]] | None = None,
) -> None:  # fmt: skip
    """One line per series (markers while points are few); ``bands`` shades mean ± std where a series has one."""
    for name, values in series.items():
        kept = [i for i, v in enumerate(values) if v is not None]
        if not kept:
            continue
        xs, ys = [x[i] for i in kept], [float(values[i]) for i in kept]  # type: ignore[arg-type]
        style = "--" if name.startswith("maj@") else "-"  # majority vote dashed beside pass@k
        (line,) = ax.plot(xs, ys, style, marker="o" if len(x) <= 40 else None, label=name)
        spread = (bands or {}).get(name)
        if spread:
            sd = [spread[i] or 0.0 for i in kept]
            low, high = [y - d for y, d in zip(ys, sd, strict=True)], [y + d for y, d in zip(ys, sd, strict=True)]
            ax.fill_between(xs, low, high, alpha=0.15, color=line.get_color())
    if len(x) <= 20:
        ax.set_xticks(list(x))
    ax.set_xlabel(xlabel)
    if percent:
        ax.yaxis.set_major_formatter("{x:.0%}")
    ax.grid(alpha=0.3)
    if series:
        ax.legend(fontsize="small")


def per_iteration(
    path: Path, iterations: Sequence[int], series: dict[str, Sequence[float | None]], title: str, ylabel: str,
    percent: bool = False, xlabel: str = "iteration", bands: dict[str, Sequence[float | None]] | None = None,
) -> Path:  # fmt: skip
    fig, (ax,) = _figure()
    _lines(ax, iterations, series, percent, xlabel, bands)
    ax.set_title(title)
    ax.set_ylabel(ylabel)
    return _save(fig, path)


def panels(path: Path, steps: Sequence[int], charts: dict[str, dict[str, Sequence[float | None]]]) -> Path:
    """Small charts side by side over steps, one per title (an online run's KL, clip fraction, gradient norm)."""
    fig, axes = _figure(ncols=len(charts), width=3.6)
    for ax, (title, series) in zip(axes, charts.items(), strict=True):
        _lines(ax, steps, series, xlabel="step")
        ax.set_title(title)
    return _save(fig, path)


def stacked(path: Path, steps: Sequence[int], series: dict[str, Sequence[float]], title: str, ylabel: str) -> Path:
    """Stacked areas over steps: where each step's time went."""
    fig, (ax,) = _figure()
    ax.stackplot(list(steps), *[list(v) for v in series.values()], labels=list(series), alpha=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small", loc="upper left")
    ax.grid(alpha=0.3)
    return _save(fig, path)


def training(
    path: Path, iterations: Sequence[int], reward: dict[str, Sequence[float | None]], kept: Sequence[float | None]
) -> Path:
    """Left: each role's pass rate (the verifier's reward); right: the fraction of rollouts the selector kept."""
    fig, (left, right) = _figure(ncols=2, width=4.6)
    _lines(left, iterations, reward, percent=True)
    left.set_title("reward (pass rate) per role")
    _lines(right, iterations, {"kept / rollouts": kept}, percent=True)
    right.set_title("kept fraction")
    return _save(fig, path)


def pass_at_k_curves(path: Path, ks: Sequence[int], curves: dict[str, Sequence[float]], title: str) -> Path:
    fig, (ax,) = _figure()
    for name, values in curves.items():
        ax.plot(ks, values, marker="o", label=name)
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(ks), [str(k) for k in ks])
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k")
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


def length_vs_difficulty(path: Path, bins: Sequence[Bin], label: str, title: str) -> Path:
    fig, (ax,) = _figure()
    centers = [(b.low + b.high) / 2 for b in bins]
    width = 0.4 / len(bins)
    ax.bar([c - width / 2 for c in centers], [b.base_tokens or 0 for b in bins], width, label="base model")
    ax.bar([c + width / 2 for c in centers], [b.tokens or 0 for b in bins], width, label=label)
    ax.set_xticks(centers, [f"{b.low:.0%}-{b.high:.0%}\n{b.problems} problems" for b in bins])
    ax.set_xlabel("base model's solve rate")
    ax.set_ylabel("mean response tokens")
    ax.set_title(title)
    ax.legend(fontsize="small")
    return _save(fig, path)


def sparsity(path: Path, iterations: Sequence[int], fractions: Sequence[float], xlabel: str = "iteration") -> Path:
    fig, (ax,) = _figure()
    ax.bar(list(iterations), list(fractions))
    for i, f in zip(iterations, fractions, strict=True):
        ax.annotate(f"{f:.1%}", (i, f), textcoords="offset points", xytext=(0, 2), ha="center", fontsize=8)
    ax.set_xticks(list(iterations))
    ax.set_ylim(0, 1.08)
    ax.yaxis.set_major_formatter("{x:.0%}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("parameters unchanged")
    ax.set_title("update sparsity (merged weights vs the update's starting point)")
    return _save(fig, path)
