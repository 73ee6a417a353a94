"""cnn_train: the paper's CNN training images/s with the data on the device.

Variants plain and AD (augmentation + dropout), AMP on/off x channels-last on/off, and
their ratios; on CUDA one more row with torch.backends.cudnn.benchmark on.
"""

from __future__ import annotations

import sys

import torch

from affectflow.contracts import CNN_VARIANTS

from .bench import VARIANTS
from .timing import error_text, free_device, peak_mib, reset_peak

NAME = "cnn_train"
HEADING = "CNN training (variant x AMP x channels-last):"


def measure(bench, variant: str, amp: bool, channels_last: bool) -> dict:
    """Throughput of one combination: images/s, ms/step, timed steps, the last loss."""
    model, step = bench.cnn_step(variant, amp=amp, channels_last=channels_last)
    batch = bench.batches(bench.s["batch_size"], len(bench.train_x))
    done, seconds, loss = bench.timed(lambda k: step(batch(k)))
    return {
        "images_per_s": round(done * bench.s["batch_size"] / seconds, 1),
        "ms_per_step": round(1e3 * seconds / done, 3),
        "steps": done,
        "final_loss": float(loss.detach()),
    }


def run(bench) -> None:
    rows: list[dict] = []
    bench.result["cnn_train"] = rows
    for variant in VARIANTS:
        for amp in (False, True):
            for channels_last in (False, True):
                row = {"variant": variant, "amp": amp, "channels_last": channels_last}
                rows.append(row)
                if amp and not bench.cuda and not bench.args.quick:
                    # bfloat16 autocast on a CPU without bf16 units: one paper-size step took ~5 minutes
                    row["skipped"] = "AMP on CPU (bfloat16 autocast) at paper size is too slow; --quick runs it"
                else:
                    try:
                        reset_peak(bench.device)
                        row.update(measure(bench, variant, amp, channels_last), peak_memory_mib=peak_mib(bench.device))
                    except Exception as error:  # noqa: BLE001 - one failed combination must not lose the others
                        row["error"] = error_text(error)
                        print(f"!! cnn_train {describe(row)}: {row['error']}", file=sys.stderr, flush=True)
                    free_device(bench.device)
                print_row(row)
    bench.result["cnn_train_ratios"] = ratios(rows)
    # The trainer leaves cudnn.benchmark as torch's default (off); one extra row shows what it would give.
    if bench.cuda and not torch.backends.cudnn.benchmark:
        bench.result["cnn_train_cudnn_benchmark"] = cudnn_benchmark_row(bench, rows)
    failed = [r for r in rows if "error" in r]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(rows)} combinations failed ({'; '.join(map(describe, failed))}): "
            f"{failed[0]['error']}"
        )


def cudnn_benchmark_row(bench, rows: list[dict]) -> dict:
    row = {"variant": "AD", "amp": True, "channels_last": True, "cudnn_benchmark": True}
    torch.backends.cudnn.benchmark = True
    try:
        row.update(measure(bench, "AD", True, True))
        base = next((r for r in rows if r["variant"] == "AD" and r["amp"] and r["channels_last"]), {})
        if base.get("images_per_s"):
            row["ratio_vs_default"] = round(row["images_per_s"] / base["images_per_s"], 3)
    except Exception as error:  # noqa: BLE001
        row["error"] = error_text(error)
    finally:
        torch.backends.cudnn.benchmark = False
        free_device(bench.device)
    print(
        f"   with torch.backends.cudnn.benchmark=True (AD, AMP, channels-last): "
        f"{row.get('images_per_s', row.get('error'))} images/s"
        + (f" ({row['ratio_vs_default']:.2f}x the default)" if "ratio_vs_default" in row else "")
    )
    return row


def describe(row: dict) -> str:
    return f"{row['variant']} amp={row['amp']} channels_last={row['channels_last']}"


def print_row(row: dict) -> None:
    if "skipped" in row:
        value = f"skipped: {row['skipped']}"
    elif "error" in row:
        value = f"error: {row['error']}"
    else:
        value = (
            f"{row['images_per_s']:10.1f} img/s  {row['ms_per_step']:8.2f} ms/step  loss {row['final_loss']:.4f}"
            + (f"  peak {row['peak_memory_mib']:.0f} MiB" if row.get("peak_memory_mib") is not None else "")
        )
    print(
        f"   {row['variant']:5s}  AMP {'on ' if row['amp'] else 'off'}  channels-last "
        f"{'on ' if row['channels_last'] else 'off'}  {value}",
        flush=True,
    )


def ratios(rows: list[dict]) -> list[dict]:
    """AMP on/off (same variant and layout), channels-last on/off (same variant and AMP), AD/plain."""
    by = {(r["variant"], r["amp"], r["channels_last"]): r.get("images_per_s") for r in rows}
    out = []
    for variant in VARIANTS:
        for cl in (False, True):
            on, off = by.get((variant, True, cl)), by.get((variant, False, cl))
            if on and off:
                out.append(
                    {"compare": "amp on/off", "variant": variant, "channels_last": cl, "ratio": round(on / off, 3)}
                )
        for amp in (False, True):
            on, off = by.get((variant, amp, True)), by.get((variant, amp, False))
            if on and off:
                out.append(
                    {"compare": "channels_last on/off", "variant": variant, "amp": amp, "ratio": round(on / off, 3)}
                )
    for amp in (False, True):
        for cl in (False, True):
            ad, plain = by.get(("AD", amp, cl)), by.get(("plain", amp, cl))
            if ad and plain:
                out.append({"compare": "AD/plain", "amp": amp, "channels_last": cl, "ratio": round(ad / plain, 3)})
    return out


def summary(result: dict) -> None:
    rows, s = result.get("cnn_train") or [], result["settings"]
    if not rows:
        return
    print(
        f"\nCNN training, images/s (CNN {'/'.join(map(str, s['channels']))} FC {s['fc']} at "
        f"{s['chip_size']}x{s['chip_size']}, batch {s['batch_size']}, {s['frames']} uint8 chips on the device, "
        f"{s['normalization']}, lr {s['throughput_lr']:g}; AD = augmentation + dropout {CNN_VARIANTS['AD'][1]:g})"
    )
    print("| variant | AMP | channels-last | images/s | ms/step | peak MiB |\n|---|---|---|---:|---:|---:|")
    for r in rows:
        peak = r.get("peak_memory_mib")
        print(
            f"| {r['variant']} | {'on' if r['amp'] else 'off'} | {'on' if r['channels_last'] else 'off'} | "
            f"{r.get('images_per_s', r.get('error', r.get('skipped', 'n/a')))} | {r.get('ms_per_step', '')} | "
            f"{peak if peak is not None else ''} |"
        )
    for q in result.get("cnn_train_ratios", []):
        fixed = ", ".join(
            f"{k.replace('_', '-')} {'on' if v else 'off'}" for k, v in q.items() if k in ("amp", "channels_last")
        )
        print(f"   ratio {q['compare']:21s} {q.get('variant', ''):5s} ({fixed}): {q['ratio']:.2f}x")
    if "cnn_train_cudnn_benchmark" in result:
        r = result["cnn_train_cudnn_benchmark"]
        print(
            f"   cudnn.benchmark=True (AD, AMP, channels-last): {r.get('images_per_s', r.get('error'))} images/s"
            + (f", {r['ratio_vs_default']:.2f}x the default" if "ratio_vs_default" in r else "")
        )
