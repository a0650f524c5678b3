"""torchvision classification and segmentation models (DETR lives in detr.py)."""
from __future__ import annotations

import torch
from torch import nn

from funcbench.catalogue.models.common import (GetterReturnType, functionalize, seeded_getter, without_batch_stats_updates)

# (batch, image side)
RESNET18_SIZES = {"full": (32, 224), "small": (2, 64)}
FCN_SIZES = {"full": (8, 480), "small": (1, 64)}
RESNET18_LABELS = 10


@seeded_getter
def get_resnet18(device: torch.device, preset: str) -> GetterReturnType:
    import torchvision.models

    batch, side = RESNET18_SIZES[preset]
    model = without_batch_stats_updates(torchvision.models.resnet18(weights=None))
    call, params = functionalize(model, device)
    inputs = torch.rand(batch, 3, side, side).to(device)
    labels = torch.rand(batch).mul(RESNET18_LABELS).long().to(device)
    criterion = nn.CrossEntropyLoss()

    def forward(*new_params):
        return criterion(call(new_params, inputs), labels)

    return forward, params


@seeded_getter
def get_fcn_resnet(device: torch.device, preset: str) -> GetterReturnType:
    import torchvision.models.segmentation

    batch, side = FCN_SIZES[preset]
    model = torchvision.models.segmentation.fcn_resnet50(weights=None, weights_backbone=None)
    model = without_batch_stats_updates(model).eval()  # eval: the head's dropout off
    call, params = functionalize(model, device)
    inputs = torch.rand(batch, 3, side, side).to(device)
    targets = torch.rand(batch, 21, side, side).to(device)
    criterion = nn.MSELoss()

    def forward(*new_params):
        return criterion(call(new_params, inputs)["out"], targets)

    return forward, params
