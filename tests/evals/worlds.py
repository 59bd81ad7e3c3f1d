"""A family of tiny worlds for the gate: one base model, several products with other tastes.

Every world shares the tiny world's base model, prompts and answer styles (``concise``: the right
number; ``verbose``: the right number wrapped in padding; ``wrong``), and differs in who likes what:

- ``demo``: users approve concise, right answers (the demo's world); the judge shares their taste.
- ``elaborate``: users approve the longer, elaborate (verbose) answers and dislike terse ones; the
  judge shares their taste. A fixed length bound fitted to ``demo`` vetoes every real gain here.
- ``biased_judge``: the demo's users, but a judge that prefers longer answers whatever users
  think: a candidate that only got longer wins its raw comparisons.

Candidates, each a real model: KTO by :func:`training.run.run` on on-policy feedback at a budget
(``small``: 30 optimizer steps, a nightly step; ``epochs3``: three passes), and the five bad kinds
(random weights, an SFT to rude answers, an SFT that pads answers with filler, an exact copy, KTO
on flipped thumbs), and an SFT to the padded answers ("only longer").
Votes carry ``NOISE`` (10%) flipped thumbs, as production feedback does.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flywheel.dev.world import World

NOISE = 0.1
WORLD = World(seed=0)
BUDGETS = {"small": {"training.max_steps": 30}, "epochs3": {"training.epochs": 3.0}}
STYLE_SCORES = {
    "demo": {"concise": 1.0, "verbose": 0.3, "wrong": 0.0, "other": 0.0},
    "elaborate": {"concise": 0.3, "verbose": 1.0, "wrong": 0.0, "other": 0.0},
}
RUDE = ("hmm , compute it !", "what ? compute it .", "well , let me see ?")
FILLER = "well , well , hmm , hmm , well , well , hmm , hmm , i think it is {n} ."


def _score(world: str, prompt: str, completion: str) -> float:
    try:
        return STYLE_SCORES[world][WORLD.style_of(prompt, completion)]
    except KeyError:
        return 0.0


def _text(prompt: str) -> str:
    if prompt.lstrip().startswith("["):
        try:
            return str(next(m["content"] for m in reversed(json.loads(prompt)) if m.get("role") == "user"))
        except (ValueError, StopIteration, KeyError, TypeError):
            return prompt
    return prompt


# The judges, as "module:function" rubrics (prompt, completion) -> score.
def demo_users(prompt: str, completion: str) -> float:
    return _score("demo", _text(prompt), completion)


def elaborate_users(prompt: str, completion: str) -> float:
    return _score("elaborate", _text(prompt), completion)


def length_biased_judge(prompt: str, completion: str) -> float:
    """What the demo's users like, outweighed by a taste for length (0.05 per character)."""
    return demo_users(prompt, completion) + 0.05 * len(completion)


USERS = {"demo": demo_users, "elaborate": elaborate_users, "biased_judge": demo_users}
JUDGES = {
    "demo": "tests.evals.worlds:demo_users",
    "elaborate": "tests.evals.worlds:elaborate_users",
    "biased_judge": "tests.evals.worlds:length_biased_judge",
}


def approves(world: str, prompt: str, completion: str) -> bool:
    return USERS[world](prompt, completion) >= 0.5


def _noisy(label: bool, rng: random.Random) -> bool:
    return (not label) if rng.random() < NOISE else label


def rows_from(world: str, answers: list[tuple[str, str]], split: str, seed: int) -> list[dict[str, Any]]:
    """Snapshot rows (docs/contracts.md columns) for (prompt, answer) pairs, thumbed by the world's
    users with NOISE flipped."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i, (prompt, completion) in enumerate(answers):
        rows.append(
            {
                "prompt": prompt,
                "prompt_format": "text",
                "completion": completion,
                "label": _noisy(approves(world, prompt, completion), rng),
                "trace_id": f"{split}-{seed}-{i:06d}",
                "model_version": "champion",
                "event_time": start + timedelta(seconds=i),
                "source": "thumb",
                "session_id": f"{split}-s{i // 4:05d}",
                "user_id": f"u{i % 50:03d}",
                "tags": json.dumps({"workload": workload(prompt)}),
            }
        )
    return rows


def workload(prompt: str) -> str:
    for key, name in (("what is", "question"), ("add", "imperative"), ("+", "symbolic")):
        if key in prompt:
            return name
    return "formal"


def sample_answers(model: Path, prompts: list[str], seed: int) -> list[str]:
    """One sampled answer per prompt (temperature 1), as the app would serve it."""
    from evals.generate import generate
    from evals.scoring import load, pick_device

    m = load("model", model, pick_device("cpu"))
    return generate(m, prompts, max_new_tokens=20, temperature=1.0, top_p=1.0, batch_size=64, seed=seed)


def approval(world: str, model: Path, samples: int = 4, seed: int = 7) -> float:
    """Share of the model's answers to the held-out prompts that the world's users approve."""
    prompts = WORLD.prompts("held_out") * samples
    answers = sample_answers(model, prompts, seed)
    return sum(approves(world, p, a) for p, a in zip(prompts, answers, strict=True)) / len(prompts)


def write_round_snapshot(
    folder: Path, world: str, champion: Path, seed: int, train: int = 768, held: int = 320
) -> Path:
    """A snapshot of on-policy feedback: the champion's answers to train and held-out prompts."""
    from tests.fixtures_model import write_snapshot

    rng = random.Random(seed)
    train_prompts = [rng.choice(WORLD.prompts("train")) for _ in range(train)]
    held_prompts = [rng.choice(WORLD.prompts("held_out")) for _ in range(held)]
    answers = sample_answers(champion, train_prompts + held_prompts, seed)
    train_rows = rows_from(world, list(zip(train_prompts, answers[:train], strict=True)), "train", seed)
    held_rows = rows_from(world, list(zip(held_prompts, answers[train:], strict=True)), "eval", seed + 1)
    return write_snapshot(folder, train_rows, held_rows)


def flipped(snapshot: Path, out: Path) -> Path:
    """The same snapshot with every train thumb flipped (a candidate trained to lower approval)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    shutil.copytree(snapshot, out)
    table = pq.read_table(out / "train.parquet")
    table = table.set_column(table.schema.get_field_index("label"), "label", pc.invert(table["label"]))
    pq.write_table(table, out / "train.parquet")
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["snapshot_id"] = out.name
    manifest["hashes"] = {"content": hashlib.sha256(out.name.encode()).hexdigest()[:12]}
    counts = manifest["class_counts"]["train"]
    counts["desirable"], counts["undesirable"] = counts["undesirable"], counts["desirable"]
    kto = manifest["kto"]
    kto["desirable_weight"], kto["undesirable_weight"] = kto["undesirable_weight"], kto["desirable_weight"]
    (out / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return out


def sft_pairs(kind: str, n: int = 512, seed: int = 1) -> list[tuple[str, str]]:
    """(prompt, answer) pairs from the train prompts for the bad SFT kinds."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        prompt = rng.choice(WORLD.prompts("train"))
        number = WORLD.all_answers(prompt)["concise"][0].split()[0]
        if kind == "rude":
            out.append((prompt, rng.choice(RUDE)))
        elif kind == "filler":
            out.append((prompt, FILLER.format(n=number)))
        elif kind == "padded":
            out.append((prompt, rng.choice(WORLD.all_answers(prompt)["verbose"])))
        else:
            raise ValueError(kind)
    return out


# -- running the gate in a world ------------------------------------------------------------

GATE_SETTINGS = {
    "evals.max_new_tokens": 20,
    "evals.bootstrap_samples": 400,
}


def gate_config(config: Any, world: str, judged: bool) -> Any:
    judge = {"evals.judge": "rubric", "evals.rubric": JUDGES[world]} if judged else {"evals.judge": "none"}
    return config.replace(**GATE_SETTINGS, **judge)


def build_candidate(kind: str, base: Path, out: Path) -> Path:
    """A bad kind that needs no training data of the round: random, rude, filler, copy, padded."""
    from tests.evals import world as w

    if kind == "random":
        return w.random_weights(base, out)
    if kind == "copy":
        shutil.copytree(base, out, ignore=shutil.ignore_patterns("MANIFEST.json"))
        return out
    return w.finetune(base, out, sft_pairs(kind))


def stage(registry: Any, name: str, folder: Path, snapshot_id: str, base: str) -> str:
    with registry.stage(name, {"kind": "candidate", "snapshot_id": snapshot_id, "base_version": base}) as dst:
        for f in folder.iterdir():
            if f.is_file() and f.name != "MANIFEST.json":
                (dst / f.name).write_bytes(f.read_bytes())
    return name


def outcome(decision: Any) -> dict[str, Any]:
    deciding = decision.deciding
    return {
        "promote": decision.promote,
        "deciding": deciding.name if deciding else "",
        "vetoes": [c.name for c in decision.checks if c.outcome == "veto"],
        "warnings": [c.name for c in decision.checks if c.outcome == "warning"],
    }


def run_rounds(
    config: Any, world: str, budget: str, judged: bool, rounds: int, base: Path
) -> list[dict[str, Any]]:
    """The flywheel in ``world``: each round, feedback on the champion's answers, a KTO candidate
    at ``budget``, the gate, and promotion on its decision. One row per round."""
    from core.registry import Registry
    from evals.run import run as gate
    from training.run import run as train

    config = gate_config(config.replace(**BUDGETS[budget]), world, judged)
    registry = Registry.from_config(config)
    if registry.champion() is None:
        registry.register(base, champion=True, version="base")
    out = []
    for number in range(1, rounds + 1):
        champion = registry.champion()
        assert champion is not None
        before = approval(world, registry.path(champion))
        snapshot = write_round_snapshot(
            Path(config.paths.lake) / "curated" / f"{world}-{budget}-r{number}",
            world,
            registry.path(champion),
            number,
        )
        version = train(config, snapshot=snapshot)
        after = approval(world, registry.path(version))
        decision = gate(config, candidate=version, snapshot=snapshot)
        if decision.promote:
            registry.promote(version, reason="gate passed")
        out.append(
            {
                "round": number,
                "champion_approval": before,
                "candidate_approval": after,
                **outcome(decision),
                "metrics": decision.metrics,
            }
        )
    return out


def in_folder(config: Any, folder: Path) -> Any:
    """``config`` with its lake, registry and runs under ``folder``."""
    return config.replace(**{f"paths.{k}": str(folder / k) for k in ("lake", "registry", "runs")})


def main() -> None:  # pragma: no cover - the table for the notes: python -m tests.evals.worlds ROOT
    import sys
    import tempfile

    from flywheel import config as cfgmod
    from flywheel.dev.tiny_world import build
    from tests.fixtures_model import SHARED_CACHE

    root = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp())
    worlds = sys.argv[2].split(",") if len(sys.argv) > 2 else list(JUDGES)
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 3
    parts = sys.argv[4].split(",") if len(sys.argv) > 4 else ["rounds", "bad"]
    base_config = cfgmod.defaults().replace(**{"paths.cache": str(SHARED_CACHE)})
    base = build(base_config)
    for world in worlds:
        for budget in BUDGETS if "rounds" in parts else ():
            for judged in (True, False):
                tag = f"{world}-{budget}-{'judge' if judged else 'nojudge'}"
                folder = root / tag
                shutil.rmtree(folder, ignore_errors=True)
                config = in_folder(base_config, folder)
                rows = run_rounds(config, world, budget, judged, rounds, base)
                for r in rows:
                    m = r["metrics"]
                    rp = m.get("replay", {})
                    print(
                        f"{tag} r{r['round']}: approval {r['champion_approval']:.2f} -> {r['candidate_approval']:.2f} "
                        f"{'PROMOTE' if r['promote'] else 'REJECT'} deciding={r['deciding']} vetoes={r['vetoes']} warn={r['warnings']} "
                        f"auc={m['agreement']['auc']['value']:.3f}[{m['agreement']['auc']['low']:.3f}] "
                        f"lm={m['agreement']['length_matched'].get('auc', {}).get('value', float('nan')):.3f}/{m['agreement']['length_matched']['pairs']} "
                        f"mass={m['agreement']['approved_mass'].get('change_per_token', {}).get('value', float('nan')):.3f} "
                        f"chosen={m['agreement']['chosen_logp_change']['value']:.3f} "
                        f"lcwin={rp.get('lc_win_rate', {}).get('value', float('nan')):.3f}[{rp.get('lc_win_rate', {}).get('low', float('nan')):.3f}] "
                        f"win={rp.get('win_rate', {}).get('value', float('nan')):.3f} len={rp.get('length_ratio', float('nan')):.2f} "
                        f"kl={rp.get('kl_per_token', {}).get('value', float('nan')):.3f} "
                        f"unsup={rp.get('unsupported', {}).get('candidate', float('nan')):.2f} deg={rp.get('degenerate', {}).get('candidate', float('nan')):.2f}",
                        flush=True,
                    )
        for judged in (True, False) if "bad" in parts else ():
            folder = root / f"{world}-bad-{'judge' if judged else 'nojudge'}"
            shutil.rmtree(folder, ignore_errors=True)
            config = in_folder(base_config, folder)
            kinds = (*BAD_KINDS, "padded") if world == "biased_judge" else BAD_KINDS
            for kind, r in run_bad_kinds(config, world, judged, base, kinds).items():
                print(
                    f"{world}-bad-{'judge' if judged else 'nojudge'} {kind}: approval {r['approval']:.2f} "
                    f"{'PROMOTE' if r['promote'] else 'REJECT'} deciding={r['deciding']} vetoes={r['vetoes']} warn={r['warnings']}",
                    flush=True,
                )


BAD_KINDS = ("random", "rude", "filler", "copy", "flipped")


def run_bad_kinds(
    config: Any, world: str, judged: bool, base: Path, kinds: tuple[str, ...] = BAD_KINDS
) -> dict[str, dict[str, Any]]:
    """Each bad kind against the base champion on one on-policy snapshot: outcome and approval."""
    from core.registry import Registry
    from evals.run import run as gate
    from training.run import run as train

    config = gate_config(config.replace(**BUDGETS["small"]), world, judged)
    registry = Registry.from_config(config)
    if registry.champion() is None:
        registry.register(base, champion=True, version="base")
    snapshot = write_round_snapshot(Path(config.paths.lake) / "curated" / f"{world}-bad", world, base, 99)
    results = {}
    for kind in kinds:
        name = f"bad-{kind}"
        if name not in registry.versions():
            if kind == "flipped":
                name = train(config, snapshot=flipped(snapshot, snapshot.parent / f"{world}-flipped"))
            else:
                stage(
                    registry,
                    name,
                    build_candidate(kind, base, Path(config.paths.runs) / name),
                    snapshot.name,
                    "base",
                )
        decision = gate(config, candidate=name, snapshot=snapshot)
        results[kind] = {
            "approval": approval(world, registry.path(name)),
            **outcome(decision),
            "metrics": decision.metrics,
        }
    return results


if __name__ == "__main__":  # pragma: no cover
    main()
