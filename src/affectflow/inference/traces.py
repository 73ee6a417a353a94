"""A per-frame trace as files: its CSV (time, one column per series) and its plot (PNG). `predict`,
`evaluate` and `annotate` write them; every writer is atomic (affectflow.io)."""

from __future__ import annotations

from pathlib import Path


def write_trace_csv(path: Path, times, columns: dict) -> None:
    from ..io import atomic_path

    names = list(columns)
    with atomic_path(path) as tmp:
        with open(tmp, "w") as fh:
            fh.write(",".join(["time"] + names) + "\n")
            for i, t in enumerate(times):
                fh.write(f"{t:.3f}," + ",".join(f"{float(columns[n][i]):.6f}" for n in names) + "\n")


def plot_traces(path: Path, times, traces: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..io import atomic_path

    fig, ax = plt.subplots(figsize=(10, 3), dpi=100)
    for dimension, trace in traces.items():
        ax.plot(times, trace, lw=1.2, label=dimension)
    ax.axhline(0.0, color="0.7", lw=0.8)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("predicted value")
    ax.legend(loc="upper right")
    ax.set_title(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
