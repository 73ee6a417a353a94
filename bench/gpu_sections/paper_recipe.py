"""paper_recipe: does the paper's recipe train at paper size?

The paper CNN with the authors' init (3 draws of k), local-mean, SGD momentum 0.9, batch 128,
for lr 0.01 (the paper's), 0.005, 0.002, without and with gradient-norm clipping at 1.0:
training loss over the first and last steps of 300, relative to the labels' variance, and
whether it stayed finite (at lr 0.01 the loss was NaN within 3 steps on CPU and GPU).
"""

from __future__ import annotations

import math

import torch

from affectflow.learning.settings import TrainSettings

NAME = "paper_recipe"
HEADING = "Paper recipe at paper size ({recipe_steps} steps per row):"


def run(bench) -> None:
    s, rows = bench.s, []
    bench.result["paper_recipe"] = rows
    variance = float(bench.train_y.float().var(unbiased=False))
    batch = bench.batches(s["batch_size"], len(bench.train_x), seed=1)
    for lr in s["recipe_lrs"]:
        for clip in s["recipe_clips"]:
            for seed in s["recipe_seeds"]:
                model, step = bench.cnn_step("plain", lr=lr, clip_norm=clip or None, seed=seed, init="paper")
                losses = torch.stack([step(batch(k)).detach().float() for k in range(s["recipe_steps"])]).cpu()
                head, tail = losses[:10], losses[-20:]
                finite = bool(torch.isfinite(losses).all())
                first_bad = None if finite else int((~torch.isfinite(losses)).nonzero()[0, 0])
                row = {
                    "lr": lr,
                    "clip_norm": clip,
                    "seed": seed,
                    "init_k": round(model.init_k, 3),
                    "finite": finite,
                    "first_nonfinite_step": first_bad,
                    "first_loss_ratio": float(head.mean()) / variance,
                    "last_loss_ratio": float(tail.mean()) / variance if finite else math.nan,
                }
                rows.append(row)
                print(
                    f"   lr {lr:<6g} clip {clip:<4g} k {row['init_k']:.2f}  loss/var first "
                    f"{row['first_loss_ratio']:10.4g}  last {row['last_loss_ratio']:8.4g}"
                    + ("" if finite else f"  NON-FINITE from step {first_bad}"),
                    flush=True,
                )
                del model, step


def summary(result: dict) -> None:
    rows, s = result.get("paper_recipe") or [], result["settings"]
    if not rows:
        return
    print(
        f"\nPaper recipe (CNN {'/'.join(map(str, s['channels']))} FC {s['fc']}, authors' init, "
        f"{s['normalization']}, SGD momentum {TrainSettings.momentum:g}, batch {s['batch_size']}, "
        f"{s['recipe_steps']} steps): training loss / label variance"
    )
    print("| lr | clip | k | first 10 steps | last 20 steps | finite |\n|---:|---:|---:|---:|---:|---|")
    for r in rows:
        finite = "yes" if r["finite"] else f"no, from step {r['first_nonfinite_step']}"
        print(
            f"| {r['lr']:g} | {r['clip_norm']:g} | {r['init_k']:.2f} | {r['first_loss_ratio']:.4g} | "
            f"{r['last_loss_ratio']:.4g} | {finite} |"
        )
