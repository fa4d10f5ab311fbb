"""ImageNet table: our mobile-space and transferred-cell rows beside the published ones.

Every row of ours names the data it ran on; rows on the CIFAR-10 stand-in say "stand-in" in the
Data column, so a stand-in number is never read as an ImageNet one. Latency is printed with the
device it was measured on: ours as the retraining recorded it (``result.json``'s ``latency``; "-"
in results written before it was measured), the published ones on the GPU of Table 3.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ddpnas.report.tables import _cost_text, published

#: Table 3's "GPU latency": the source names no GPU model (the authors' timing code uses batch 8).
PUBLISHED_LATENCY_DEVICE = "GPU, model not stated"
LATENCY_NOTE = (
    "Latency of ours: median of repeated batch-1 float32 forwards after a warm-up "
    "(CUDA-synchronised on a GPU) at the Data column's resolution, on the device named, the one "
    "the network was retrained on. Published: Table 3's GPU latency; the GPU is not named and "
    "the authors' timing code runs batch 8 at 224 px, so it is not comparable with ours."
)


def _data_label(retrain: dict[str, Any]) -> str:
    info = retrain.get("dataset", {})
    if info.get("stand_in"):
        return (
            f"stand-in: {info['classes']} CIFAR-10 classes, {retrain['train_images']} train / "
            f"{retrain['test_images']} val images, {info['resolution']} px"
        )
    return f"ImageNet, {info.get('resolution', '?')} px"


def _pair(values: Any) -> str:
    return "-".join(f"{v:.3g}" for v in values)


def protocol_text(search: dict[str, Any], retrain: dict[str, Any]) -> str:
    """How a row of ours was searched and retrained, where it can differ from the published
    protocols: search resolution, augmentation and lr (vs XNAS); retraining batch per GPU, crop,
    jitter, lr steps and precision. Results written before these were recorded show less."""
    parts = []
    searched = search.get("search_protocol")
    if searched and retrain.get("kind") != "cell transferred":
        parts.append(
            f"search {searched['resolution']} px, {searched['augmentation']}, "
            f"{searched['lr_schedule']} ({searched['differs']})"
        )
    cfg = retrain.get("config", {})
    if cfg:
        accumulate = cfg.get("accumulate", 1)
        per_gpu = cfg["batch_size"] // retrain.get("world_size", 1) // accumulate
        jitter = cfg.get("jitter") or (0, 0, 0, 0)
        scale, ratio = cfg.get("crop_scale", (0.08, 1)), cfg.get("crop_ratio", (3 / 4, 4 / 3))
        crop = f"{_pair(scale)} / {_pair(ratio)}"
        parts.append(
            f"retrain {retrain.get('protocol', '?')}: batch {cfg['batch_size']} = "
            f"{retrain.get('world_size', 1)} GPU x {accumulate} x {per_gpu}, crop {crop}, "
            f"jitter {_pair(jitter) if any(jitter) else 'none'}, "
            f"lr per {cfg.get('lr_step', 'epoch')}, {retrain.get('precision', 'fp32')}"
        )
    return "; ".join(parts) or "-"


def imagenet_rows(pairs: list[tuple[dict[str, Any], dict[str, Any]]]) -> pd.DataFrame:
    """One row per (search record, retrain result) of ours, then the published rows."""
    rows = []
    for search, retrain in pairs:
        latency = retrain.get("latency") or {}
        rows.append(
            {
                "method": f"{search['label']} ({retrain['kind']})",
                "source": f"ours: {search['experiment']} seed {search['seed']}",
                "data": _data_label(retrain),
                "protocol": protocol_text(search, retrain),
                "top1": 100.0 * retrain["test_acc"],
                "top5": 100.0 * retrain["test_top5"],
                "params_m": retrain["params_m"],
                "macs_m": retrain["macs_m"],
                "latency_ms": latency.get("ms", np.nan),
                "latency_device": latency.get("device"),
                "epochs": retrain["epochs"],
                "search_seconds": search["search_seconds"],
                "search_cost": _cost_text(search["search_seconds"], search["environment"]),
                "retrain_seconds": retrain["wall_seconds"],
                "retrain_cost": _cost_text(retrain["wall_seconds"], retrain["environment"]),
            }
        )
    pub = published()
    for key, kind in (("imagenet_transfer", "cell transferred"), ("imagenet_mobile", "mobile")):
        table = pub[key]
        for entry in table["rows"]:
            values = dict(zip(table["columns"], entry["values"], strict=True))
            days = values.get("search_gpu_days")
            latency = values.get("gpu_latency_ms")
            rows.append(
                {
                    "method": f"{entry['method']} ({entry.get('kind', kind)})"
                    + ("" if entry["checked"] else " [unchecked]"),
                    "source": table["source"],
                    "data": "ImageNet (published)",
                    "protocol": "published",
                    "top1": values["top1"],
                    "top5": values.get("top5"),
                    "params_m": values.get("params_m"),
                    "macs_m": np.nan,
                    "latency_ms": np.nan if latency is None else latency,
                    "latency_device": None if latency is None else PUBLISHED_LATENCY_DEVICE,
                    "epochs": np.nan,
                    "search_cost": "-" if days is None else f"{days:g} GPU-days (published)",
                    "retrain_cost": "-",
                }
            )
    return pd.DataFrame(rows)


def _num(value: Any, digits: int) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def _latency(row: pd.Series) -> str:
    """ "6.09 (GPU, model not stated)": a latency means nothing without its device."""
    if pd.isna(row["latency_ms"]):
        return "-"
    return f"{row['latency_ms']:.3g} ({row['latency_device']})"


def imagenet_display(df: pd.DataFrame) -> pd.DataFrame:
    """Human-readable version of :func:`imagenet_rows`."""
    return pd.DataFrame(
        {
            "Method": df["method"],
            "Data": df["data"],
            "Protocol (where it can differ)": df["protocol"],
            "Top-1 (%)": df["top1"].map(lambda v: _num(v, 2)),
            "Top-5 (%)": df["top5"].map(lambda v: _num(v, 2)),
            "Params (M)": df["params_m"].map(lambda v: _num(v, 2)),
            "MACs (M)": df["macs_m"].map(lambda v: _num(v, 1)),
            "Latency (ms, device)": df.apply(_latency, axis=1),
            "Search cost": df["search_cost"],
            "Retrain cost": df["retrain_cost"],
            "Source": df["source"],
        }
    )
