"""DETR (ResNet-50 backbone, 6+6 layer transformer) with its Hungarian-matched set loss.

Everything the loss needs runs inside ``forward``, the matcher included: solving the
assignment is part of the measured work, as it was in the original benchmark.
"""
from __future__ import annotations

import math
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
import torchvision
from scipy.optimize import linear_sum_assignment
from torch import Tensor, nn
from torchvision.ops import box_convert, generalized_box_iou

from funcbench.catalogue import compat
from funcbench.catalogue.models.common import (GetterReturnType, functionalize, seeded_getter, without_batch_stats_updates)

# Per preset: image height and width (batch of 2) and the pixel range box corners are
# drawn from. The small preset keeps the architecture and only shrinks the images.
PRESET_SIZES = {
    "small": {"height": 160, "width": 240, "corner_range": (20.0, 160.0)},
    "full": {"height": 800, "width": 1200, "corner_range": (100.0, 800.0)},
}
BATCH_SIZE = 2
BOXES_PER_IMAGE = (5, 10)  # randint bounds: 5..9 boxes per image
LABEL_RANGE = (5, 10)  # randint bounds: labels 5..9, as the original drew them

NUM_CLASSES = 91
NUM_QUERIES = 100
HIDDEN_DIM = 256
NUM_HEADS = 8
NUM_ENCODER_LAYERS = 6
NUM_DECODER_LAYERS = 6
DIM_FEEDFORWARD = 2048

# Matcher costs and loss weights of the original DETR training recipe.
COST_CLASS, COST_BBOX, COST_GIOU = 1.0, 5.0, 2.0
EOS_COEF = 0.1
LOSS_WEIGHTS = {"loss_ce": 1.0, "loss_bbox": 5.0, "loss_giou": 2.0}

Target = Dict[str, Tensor]  # {"labels": (n,) int64, "boxes": (n, 4) normalized cxcywh}


# ---------------------------------------------------------------------------------------
# Model
# ---------------------------------------------------------------------------------------


def sine_position_encoding(
    batch: int,
    height: int,
    width: int,
    device: torch.device,
    num_pos_feats: int = HIDDEN_DIM // 2,
    temperature: float = 10000.0,
    scale: float = 2 * math.pi,
) -> Tensor:
    """Normalized sine/cosine encoding of (y, x), shape (batch, 2 * num_pos_feats, H, W).

    Derived from an all-False padding mask (every image has the same size), so the
    cumulative sums are just row/column indices; kept as cumsums to do the original's work.
    """
    eps = 1e-6
    not_mask = torch.ones(batch, height, width, device=device)
    y_embed = not_mask.cumsum(1)
    x_embed = not_mask.cumsum(2)
    y_embed = y_embed / (y_embed[:, -1:, :] + eps) * scale
    x_embed = x_embed / (x_embed[:, :, -1:] + eps) * scale

    dim_t = torch.arange(num_pos_feats, dtype=torch.float32, device=device)
    dim_t = temperature ** (2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = x_embed[..., None] / dim_t
    pos_y = y_embed[..., None] / dim_t
    # Interleave sin (even channels) and cos (odd channels).
    pos_x = torch.stack((pos_x[..., 0::2].sin(), pos_x[..., 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[..., 0::2].sin(), pos_y[..., 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)


class EncoderLayer(nn.Module):
    """Post-norm encoder layer; the position encoding is added to queries and keys only."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)

    def forward(self, src: Tensor, pos: Tensor) -> Tensor:
        q = k = src + pos
        # need_weights=True (the default, as in DETR) takes the explicit softmax(QK^T)V
        # path, which supports double backward; dropout is 0 so forward is deterministic.
        src = self.norm1(src + self.self_attn(q, k, value=src)[0])
        return self.norm2(src + self.linear2(F.relu(self.linear1(src))))


class DecoderLayer(nn.Module):
    """Post-norm decoder layer: self-attention over queries, then cross-attention to memory."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=0.0)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, tgt: Tensor, memory: Tensor, pos: Tensor, query_pos: Tensor) -> Tensor:
        q = k = tgt + query_pos
        tgt = self.norm1(tgt + self.self_attn(q, k, value=tgt)[0])
        attended = self.multihead_attn(query=tgt + query_pos, key=memory + pos, value=memory)[0]
        tgt = self.norm2(tgt + attended)
        return self.norm3(tgt + self.linear2(F.relu(self.linear1(tgt))))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder_layers = nn.ModuleList(
            EncoderLayer(HIDDEN_DIM, NUM_HEADS, DIM_FEEDFORWARD) for _ in range(NUM_ENCODER_LAYERS)
        )
        self.decoder_layers = nn.ModuleList(
            DecoderLayer(HIDDEN_DIM, NUM_HEADS, DIM_FEEDFORWARD) for _ in range(NUM_DECODER_LAYERS)
        )
        self.decoder_norm = nn.LayerNorm(HIDDEN_DIM)
        # DETR initializes every transformer matrix with Xavier-uniform.
        for p in self.parameters():
            if p.dim() > 1:
                nn.init.xavier_uniform_(p)

    def forward(self, src: Tensor, query_embed: Tensor, pos: Tensor) -> Tensor:
        """src, pos: (B, C, H, W); query_embed: (Q, C). Returns (B, Q, C)."""
        batch = src.shape[0]
        # Sequence-first layout (HW, B, C), as nn.MultiheadAttention expects by default.
        memory = src.flatten(2).permute(2, 0, 1)
        pos = pos.flatten(2).permute(2, 0, 1)
        query_pos = query_embed.unsqueeze(1).repeat(1, batch, 1)
        for layer in self.encoder_layers:
            memory = layer(memory, pos)
        out = torch.zeros_like(query_pos)
        for layer in self.decoder_layers:
            out = layer(out, memory, pos, query_pos)
        return self.decoder_norm(out).transpose(0, 1)


class MLP(nn.Module):
    """Plain feed-forward net with ReLU between layers (the box head)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int):
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1)
        self.layers = nn.ModuleList(nn.Linear(d_in, d_out) for d_in, d_out in zip(dims, dims[1:] + [out_dim]))

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class DETR(nn.Module):
    def __init__(self):
        super().__init__()
        resnet = torchvision.models.resnet50(weights=None)
        # Up to layer4 only: avgpool/fc would get no gradient.
        self.backbone = nn.Sequential(
            resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool,
            resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4,
        )
        self.input_proj = nn.Conv2d(2048, HIDDEN_DIM, kernel_size=1)
        self.query_embed = nn.Embedding(NUM_QUERIES, HIDDEN_DIM)
        self.transformer = Transformer()
        self.class_embed = nn.Linear(HIDDEN_DIM, NUM_CLASSES + 1)
        self.bbox_embed = MLP(HIDDEN_DIM, HIDDEN_DIM, 4, 3)

    def forward(self, images: Tensor) -> Dict[str, Tensor]:
        features = self.backbone(images)
        b, _, h, w = features.shape
        pos = sine_position_encoding(b, h, w, features.device).to(features.dtype)
        hs = self.transformer(self.input_proj(features), self.query_embed.weight, pos)
        return {"pred_logits": self.class_embed(hs), "pred_boxes": self.bbox_embed(hs).sigmoid()}


# ---------------------------------------------------------------------------------------
# Loss: Hungarian matching + set criterion
# ---------------------------------------------------------------------------------------


def _cxcywh_to_xyxy(boxes: Tensor) -> Tensor:
    return box_convert(boxes, in_fmt="cxcywh", out_fmt="xyxy")


def _plain_values(t: Tensor) -> Tensor:
    """The values of ``t`` outside any torch.func transform (vjp, jvp, grad wrap tensors in
    levels that have no storage, so scipy cannot read them). The matching is a constant of
    the loss, so reading through the wrappers changes no derivative."""
    while torch._C._functorch.is_functorch_wrapped_tensor(t):
        t = torch._C._functorch.get_unwrapped(t)
    return t


@torch.no_grad()
def hungarian_match(pred_logits: Tensor, pred_boxes: Tensor, targets: Sequence[Target]) -> List[Tuple[Tensor, Tensor]]:
    """Per image, the (query indices, target indices) pairs minimizing the matching cost.

    The assignment is discrete, so no gradient flows through it (hence no_grad); the cost
    matrix goes to the CPU for scipy, and the indices come back to the predictions' device.
    """
    with compat.functorch_disabled():  # plain tensors in, plain tensors out
        # detach also drops forward-mode tangents: cdist has no forward AD.
        return _match(_plain_values(pred_logits).detach(), _plain_values(pred_boxes).detach(), targets)


def _match(pred_logits: Tensor, pred_boxes: Tensor, targets: Sequence[Target]) -> List[Tuple[Tensor, Tensor]]:
    batch, num_queries = pred_logits.shape[:2]
    # One cost matrix for the whole batch (all queries vs all targets), split per image after.
    prob = pred_logits.flatten(0, 1).softmax(-1)
    boxes = pred_boxes.flatten(0, 1)
    tgt_ids = torch.cat([t["labels"] for t in targets])
    tgt_boxes = torch.cat([t["boxes"] for t in targets])

    # 1 - p(class) as in the paper; the constant 1 does not change the assignment.
    cost_class = -prob[:, tgt_ids]
    cost_bbox = torch.cdist(boxes, tgt_boxes, p=1)
    cost_giou = -generalized_box_iou(_cxcywh_to_xyxy(boxes), _cxcywh_to_xyxy(tgt_boxes))
    cost = COST_BBOX * cost_bbox + COST_CLASS * cost_class + COST_GIOU * cost_giou
    cost = cost.view(batch, num_queries, -1).cpu()

    sizes = [len(t["boxes"]) for t in targets]
    indices = []
    for i, c in enumerate(cost.split(sizes, -1)):
        rows, cols = linear_sum_assignment(c[i].numpy())
        indices.append(
            (
                torch.as_tensor(rows, dtype=torch.int64, device=pred_logits.device),
                torch.as_tensor(cols, dtype=torch.int64, device=pred_logits.device),
            )
        )
    return indices


def _matched_query_index(indices: Sequence[Tuple[Tensor, Tensor]]) -> Tuple[Tensor, Tensor]:
    """(image index, query index) of every matched prediction, for advanced indexing."""
    batch_idx = torch.cat([torch.full_like(src, i) for i, (src, _) in enumerate(indices)])
    query_idx = torch.cat([src for src, _ in indices])
    return batch_idx, query_idx


def set_criterion(outputs: Dict[str, Tensor], targets: Sequence[Target]) -> Dict[str, Tensor]:
    """DETR's SetCriterion with losses labels, boxes and cardinality (no aux outputs)."""
    pred_logits, pred_boxes = outputs["pred_logits"], outputs["pred_boxes"]
    indices = hungarian_match(pred_logits, pred_boxes, targets)
    idx = _matched_query_index(indices)
    # Single process, so no all-reduce: the batch's target count, at least 1.
    num_boxes = max(float(sum(len(t["labels"]) for t in targets)), 1.0)
    losses: Dict[str, Tensor] = {}

    # labels: weighted cross entropy over all queries; unmatched ones must say "no object".
    class_weight = torch.ones(NUM_CLASSES + 1, device=pred_logits.device, dtype=pred_logits.dtype)
    class_weight[-1] = EOS_COEF
    matched_labels = torch.cat([t["labels"][j] for t, (_, j) in zip(targets, indices)])
    target_classes = torch.full(pred_logits.shape[:2], NUM_CLASSES, dtype=torch.int64, device=pred_logits.device)
    target_classes[idx] = matched_labels
    losses["loss_ce"] = F.cross_entropy(pred_logits.transpose(1, 2), target_classes, class_weight)
    with torch.no_grad():  # logged only, as in the original
        accuracy = (pred_logits[idx].argmax(-1) == matched_labels).float().mean() * 100
        losses["class_error"] = 100 - accuracy

    # cardinality: how many queries predict an object vs how many objects there are (logged only).
    with torch.no_grad():
        num_targets = torch.as_tensor([len(t["labels"]) for t in targets], device=pred_logits.device)
        num_predicted = (pred_logits.argmax(-1) != NUM_CLASSES).sum(1)
        losses["cardinality_error"] = F.l1_loss(num_predicted.float(), num_targets.float())

    # boxes: L1 and 1 - GIoU on the matched pairs.
    src_boxes = pred_boxes[idx]
    tgt_boxes = torch.cat([t["boxes"][j] for t, (_, j) in zip(targets, indices)])
    losses["loss_bbox"] = F.l1_loss(src_boxes, tgt_boxes, reduction="none").sum() / num_boxes
    giou = torch.diag(generalized_box_iou(_cxcywh_to_xyxy(src_boxes), _cxcywh_to_xyxy(tgt_boxes)))
    losses["loss_giou"] = (1 - giou).sum() / num_boxes
    return losses


def detr_loss(outputs: Dict[str, Tensor], targets: Sequence[Target]) -> Tensor:
    """Weighted sum 1*ce + 5*bbox + 2*giou; the logged-only terms carry no weight."""
    losses = set_criterion(outputs, targets)
    return sum(weight * losses[name] for name, weight in LOSS_WEIGHTS.items())


# ---------------------------------------------------------------------------------------
# Getter
# ---------------------------------------------------------------------------------------


def _random_targets(height: int, width: int, corner_range: Tuple[float, float]) -> List[Target]:
    lo, hi = corner_range
    targets = []
    for _ in range(BATCH_SIZE):
        n = int(torch.randint(*BOXES_PER_IMAGE, ()).item())
        labels = torch.randint(*LABEL_RANGE, (n,))
        # Two corners per axis, ordered so (x0, y0) is top-left; a 1 px floor keeps boxes non-degenerate.
        xs = (torch.rand(n, 2) * (hi - lo) + lo).sort(dim=1).values
        ys = (torch.rand(n, 2) * (hi - lo) + lo).sort(dim=1).values
        x0, x1 = xs[:, 0], torch.maximum(xs[:, 1], xs[:, 0] + 1)
        y0, y1 = ys[:, 0], torch.maximum(ys[:, 1], ys[:, 0] + 1)
        xyxy = torch.stack((x0 / width, y0 / height, x1 / width, y1 / height), dim=1)
        targets.append({"labels": labels, "boxes": box_convert(xyxy, in_fmt="xyxy", out_fmt="cxcywh")})
    return targets


@seeded_getter
def get_detr(device: torch.device, preset: str) -> GetterReturnType:
    """DETR-R50 on a batch of 2 random images with random boxes; forward(*params) -> set loss."""
    sizes = PRESET_SIZES[preset]
    height, width = sizes["height"], sizes["width"]

    model = without_batch_stats_updates(DETR())
    images = torch.rand(BATCH_SIZE, 3, height, width)
    targets = _random_targets(height, width, sizes["corner_range"])

    call, params = functionalize(model, device)
    images = images.to(device)
    targets = [{k: v.to(device) for k, v in t.items()} for t in targets]

    def forward(*new_params: Tensor) -> Tensor:
        return detr_loss(call(new_params, images), targets)

    return forward, params
