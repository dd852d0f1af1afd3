"""Cost estimates of trainings (hand-computed) and the order a sweep starts them in."""

from __future__ import annotations

from pathlib import Path

import pytest

from endobench.ablate import load_grid, plan_sweep
from endobench.ablate.executors import Job, order_by_dependents
from endobench.training.config import TrainConfig
from endobench.training.cost import backbone_gmacs, training_cost

REPO = Path(__file__).resolve().parents[1]


def config(**changes) -> TrainConfig:
    fields = dict(backbone="dinov2_vits14", pretrained=False, head="fusion", size=112, epochs=20)
    return TrainConfig(**{**fields, **changes})


def test_backbone_gmacs_hand_computed() -> None:
    # ViT-S/14 at 112 px: 8 x 8 patches + CLS = 65 tokens, 12 blocks of width 384
    vits = 12 * (12 * 65 * 384**2 + 2 * 65**2 * 384) / 1e9
    assert (
        backbone_gmacs("dinov2_vits14", 112)
        == pytest.approx(vits)
        == pytest.approx(1.4191, abs=1e-4)
    )
    assert backbone_gmacs("dinov2_vits14_reg4", 112) > vits  # 4 register tokens more
    assert backbone_gmacs("resnet50", 112) == pytest.approx(4.1 / 4)  # a quarter of the pixels
    assert backbone_gmacs("resnet50", 224) == pytest.approx(4.1)
    assert backbone_gmacs("a_plugin_backbone", 224) == 0.0


def test_training_cost_cached_live_unfrozen_unknown() -> None:
    head = 3 * 0.5 / 4  # fusion head forward + backward at 112 px
    vits = backbone_gmacs("dinov2_vits14", 112)
    # cached features: one backbone pass, then the head every epoch
    assert training_cost(config(augment="none")) == pytest.approx(vits + 20 * head)
    # live: the backbone every epoch (pixels change), 3x where blocks are trained
    assert training_cost(config(augment="endoscopic")) == pytest.approx(20 * (vits + head))
    assert training_cost(config(unfreeze_last=1)) == pytest.approx(20 * (3 * vits + head))
    assert training_cost(config(use_feature_cache=False)) == pytest.approx(20 * (vits + head))
    assert training_cost(config(head="linear", epochs=5)) == pytest.approx(vits)
    assert training_cost(config(backbone="a_plugin_backbone")) == 0.0


def test_demo_sweep_starts_its_live_trainings_first(tmp_path: Path) -> None:
    plan = plan_sweep(load_grid(REPO / "configs" / "demo.yaml"), tmp_path)
    key_of_dir = {t.out_dir: t.key for t in plan.tasks.values()}
    jobs = [
        Job(t.key, t, tuple(key_of_dir[d] for d in t.upstream), t.cost) for t in plan.tasks.values()
    ]
    order = [
        (j.payload.params.get("backbone"), j.payload.params.get("augmentation"))
        for j in order_by_dependents(jobs)
    ]
    # every training has 3 tracks waiting for it; then the costliest chain first
    assert order[:4] == [
        ("dinov2_vits14", "endoscopic"),
        ("resnet50", "endoscopic"),
        ("dinov2_vits14", "none"),
        ("resnet50", "none"),
    ]
    assert all(j.payload.stage == "track" and j.cost == 0.0 for j in order_by_dependents(jobs)[4:])
