"""What a candidate carries besides its weights: curves (JSON + PNG), metrics, the model card."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# The curves worth watching: the loss, each class's implicit reward and log-prob (a falling
# chosen log-prob is the known failure to watch), their margin, KTO's KL estimate, the paired
# methods' reward accuracy, and ORPO's two terms (NLL of the chosen answer and the log odds ratio).
CURVES = (
    "loss",
    "rewards/chosen",
    "rewards/rejected",
    "rewards/margins",
    "rewards/accuracies",
    "kl",
    "logps/chosen",
    "logps/rejected",
    "nll_loss",
    "log_odds_ratio",
)
# What each method is, for the model card.
METHODS = {
    "kto": "KTO on unpaired user feedback (thumbs)",
    "dpo": "DPO on preference pairs (edits and opposite thumbs)",
    "ipo": "IPO (bounded-margin DPO) on preference pairs",
    "simpo": "SimPO (reference-free, length-normalised margin) on preference pairs",
    "orpo": "ORPO (odds-ratio preference plus SFT, no reference) on preference pairs",
}


def curves(log_history: list[dict[str, Any]]) -> dict[str, list[list[float]]]:
    """``{name: [[step, value], ...]}`` for every curve the trainer logged."""
    out: dict[str, list[list[float]]] = {name: [] for name in CURVES}
    for entry in log_history:
        step = entry.get("step")
        for name in CURVES:
            if step is not None and name in entry:
                out[name].append([float(step), float(entry[name])])
    return {k: v for k, v in out.items() if v}


def summary(curve_data: dict[str, list[list[float]]]) -> dict[str, Any]:
    """First and last value of each curve, and the warnings worth a look."""
    result: dict[str, Any] = {}
    for name, points in curve_data.items():
        result[name] = {"first": points[0][1], "last": points[-1][1]}
    warnings = []
    chosen = result.get("logps/chosen")
    if chosen and chosen["last"] < chosen["first"]:
        warnings.append(
            f"log-prob of desirable completions fell ({chosen['first']:.3f} -> {chosen['last']:.3f}); "
            "check for the chosen-probability drop"
        )
    margins = result.get("rewards/margins")
    if margins and margins["last"] <= 0:
        warnings.append("the reward margin did not become positive: the feedback may be noise")
    result["warnings"] = warnings
    return result


def plot(curve_data: dict[str, list[list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on training nodes
    import matplotlib.pyplot as plt

    groups = [
        ("loss", ["loss", "nll_loss"]),
        ("implicit rewards", ["rewards/chosen", "rewards/rejected", "rewards/margins", "log_odds_ratio"]),
        ("KL estimate", ["kl"]),
        ("log-probs", ["logps/chosen", "logps/rejected"]),
    ]
    fig, axes = plt.subplots(1, len(groups), figsize=(4 * len(groups), 3.2))
    for ax, (title, names) in zip(axes, groups, strict=True):
        for name in names:
            if name in curve_data:
                xs, ys = zip(*curve_data[name], strict=True)
                ax.plot(xs, ys, label=name)
        ax.set_title(title)
        ax.set_xlabel("step")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def hub_id(base_path: Path) -> str | None:
    """The Hugging Face id the base descends from, for the card's ``base_model``: the base's own
    card's (a candidate carries it along the chain of champions), else its config's
    ``_name_or_path`` when that is a Hub id (``org/name``, not a local path); None when unknown."""
    card = base_path / "model_card.md"
    if card.is_file():
        from huggingface_hub import ModelCard

        found = ModelCard.load(card).data.to_dict().get("base_model")
        if isinstance(found, str) and found:
            return found
    try:
        name = json.loads((base_path / "config.json").read_text(encoding="utf-8")).get("_name_or_path")
    except (OSError, ValueError, AttributeError):
        return None
    hub_like = isinstance(name, str) and name.count("/") == 1 and not name.startswith((".", "/", "~"))
    return name if hub_like and not Path(name).exists() else None


def card_data(meta: dict[str, Any], metrics: dict[str, Any], base_model: str | None = None) -> Any:
    """Hugging Face model card metadata (the YAML front matter the Hub and vLLM/TGI tooling read):
    base model, the snapshot as dataset, the metrics logged, the library that loads the folder."""
    from huggingface_hub import ModelCardData

    method = str(metrics.get("method", "kto"))
    curves = metrics.get("curves") or {}
    lora = meta.get("mode") == "lora"
    return ModelCardData(
        base_model=base_model or str(meta["base_version"]),
        datasets=[str(meta["snapshot_id"])],
        library_name="transformers",
        pipeline_tag="text-generation",
        tags=["flywheel", method, "trl", *(["peft", "lora"] if lora else [])],
        metrics=sorted(name for name, value in curves.items() if isinstance(value, dict)),
        flywheel={
            "method": method,
            "mode": meta.get("mode"),
            "snapshot_id": meta["snapshot_id"],
            "base_version": meta["base_version"],
            "steps": metrics.get("steps"),
            "train_loss": metrics.get("train_loss"),
            # the LoRA adapter beside the merged weights, loadable with PEFT or vLLM's --lora-modules
            "adapter": "adapter/" if lora else None,
        },
    )


def model_card(
    version: str,
    meta: dict[str, Any],
    metrics: dict[str, Any],
    config_toml: str,
    base_model: str | None = None,
) -> str:
    """The model card: Hugging Face metadata (:func:`card_data`) as front matter, then the story."""
    from huggingface_hub import ModelCard

    body = _card_body(version, meta, metrics, config_toml)
    return str(ModelCard(f"---\n{card_data(meta, metrics, base_model).to_yaml()}\n---\n\n{body}"))


def _card_body(version: str, meta: dict[str, Any], metrics: dict[str, Any], config_toml: str) -> str:
    method = str(metrics.get("method", "kto"))
    choice = metrics.get("method_choice") or {}
    reference = "and reference" if method in ("kto", "dpo", "ipo") else "no reference: reference-free method"
    lines = [
        f"# {version}",
        "",
        f"A candidate trained by `flywheel train` with {METHODS.get(method, method)}.",
        "",
        f"- method: {method}"
        + (f" (chosen by `auto`: {choice['reason']})" if choice.get("configured") == "auto" else ""),
        f"- snapshot: `{meta['snapshot_id']}`",
        f"- base ({reference}): `{meta['base_version']}`",
        f"- mode: {meta['mode']}"
        + (
            " (merged into the weights here; the adapter alone is in `adapter/`)"
            if meta["mode"] == "lora"
            else ""
        ),
    ]
    if "rows" in metrics:
        lines += [
            f"- rows: {metrics['rows']['desirable']} desirable, {metrics['rows']['undesirable']} undesirable",
            f"- class weights: {json.dumps(metrics['class_weights'])}",
        ]
    if "pairs" in metrics:
        lines.append(
            f"- pairs: {metrics['pairs']['trained']} trained, {metrics['pairs']['dropped_too_long']} too long"
        )
    lines += [
        "",
        "## Training metrics",
        "",
        "| curve | first | last |",
        "|---|---|---|",
    ]
    for name, value in metrics["curves"].items():
        if isinstance(value, dict):
            lines.append(f"| {name} | {value['first']:.4f} | {value['last']:.4f} |")
    for warning in metrics["curves"].get("warnings", []):
        lines.append(f"\n> warning: {warning}")
    lines += [
        "",
        "Curves: `curves.json`, `curves.png`.",
        "",
        "## Configuration",
        "",
        "```toml",
        config_toml,
        "```",
    ]
    return "\n".join(lines) + "\n"
