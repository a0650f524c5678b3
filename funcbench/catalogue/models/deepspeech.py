"""DeepSpeech 2 (the deepspeech.pytorch variant) with a CTC loss.

LSTM, hidden 1024, 5 bidirectional layers, 10 classes, as in the original functorch /
torch.autograd.functional benchmark. The conv front end masks the padded time steps and
every recurrent block packs its input by the per-sample output lengths.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor, nn

from funcbench.catalogue.models.common import (GetterReturnType, functionalize, seeded_getter, without_batch_stats_updates)

# Batch size, time frames of the spectrogram, and input lengths drawn as rand(N) * span + low.
PRESET_SIZES = {
    "small": dict(batch=2, frames=100, len_low=80.0, len_span=10.0),
    "full": dict(batch=10, frames=500, len_low=400.0, len_span=50.0),
}

NUM_CLASSES = 10
HIDDEN_SIZE = 1024
NUM_LAYERS = 5
TARGET_LEN = 10
FREQ_BINS = 161  # spectrogram rows: 161 -> 81 -> 41 after the two strided convs


def conv_output_lengths(lengths: Tensor, convs: List[nn.Conv2d]) -> Tensor:
    """Time-axis output lengths after ``convs`` (as int32, like the original ``.int()``)."""
    seq_len = lengths.int()
    for m in convs:
        pad, dil, k, stride = m.padding[1], m.dilation[1], m.kernel_size[1], m.stride[1]
        seq_len = (seq_len + 2 * pad - dil * (k - 1) - 1) // stride + 1
    return seq_len.int()


def _time_mask(x: Tensor, lengths: Tensor) -> Tensor:
    """True at time steps (last dim of ``x``) at or past each sample's length."""
    steps = torch.arange(x.size(-1), device=x.device)
    mask = steps.unsqueeze(0) >= lengths.to(x.device).unsqueeze(1)  # (N, T)
    return mask.view(x.size(0), *([1] * (x.dim() - 2)), x.size(-1))


class MaskConv(nn.Module):
    """Runs ``seq_module`` layer by layer, zeroing padded time steps after each layer."""

    def __init__(self, seq_module: nn.Sequential):
        super().__init__()
        self.seq_module = seq_module

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        for module in self.seq_module:
            x = module(x)
            # Out of place: x may need grad (the original filled a bool mask in place and
            # then called the non in-place x.masked_fill).
            x = x.masked_fill(_time_mask(x, lengths), 0)
        return x


class SequenceWise(nn.Module):
    """Applies ``module`` to every time step of a (T, N, F) tensor via the (T*N, F) view."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: Tensor) -> Tensor:
        t, n = x.size(0), x.size(1)
        x = x.reshape(t * n, -1)
        x = self.module(x)
        return x.view(t, n, -1)


class BatchRNN(nn.Module):
    def __init__(self, input_size: int, hidden_size: int, batch_norm: bool = True):
        super().__init__()
        self.batch_norm = SequenceWise(nn.BatchNorm1d(input_size)) if batch_norm else None
        self.rnn = nn.LSTM(input_size=input_size, hidden_size=hidden_size,
                           bidirectional=True, bias=True)

    def forward(self, x: Tensor, output_lengths: Tensor) -> Tensor:
        if self.batch_norm is not None:
            x = self.batch_norm(x)
        total_length = x.size(0)
        x = nn.utils.rnn.pack_padded_sequence(x, output_lengths.cpu(), enforce_sorted=False)
        x, _ = self.rnn(x)
        x, _ = nn.utils.rnn.pad_packed_sequence(x, total_length=total_length)
        # (T, N, 2*H) -> sum the two directions -> (T, N, H)
        t, n = x.size(0), x.size(1)
        return x.view(t, n, 2, -1).sum(2)


class DeepSpeech(nn.Module):
    def __init__(self, num_classes: int = NUM_CLASSES, hidden_size: int = HIDDEN_SIZE,
                 num_layers: int = NUM_LAYERS):
        super().__init__()
        self.conv = MaskConv(nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=(41, 11), stride=(2, 2), padding=(20, 5)),
            nn.BatchNorm2d(32),
            nn.Hardtanh(0, 20, inplace=False),
            nn.Conv2d(32, 32, kernel_size=(21, 11), stride=(2, 1), padding=(10, 5)),
            nn.BatchNorm2d(32),
            nn.Hardtanh(0, 20, inplace=False),
        ))
        freq = FREQ_BINS
        for m in self.conv.seq_module:
            if isinstance(m, nn.Conv2d):
                freq = (freq + 2 * m.padding[0] - m.dilation[0] * (m.kernel_size[0] - 1) - 1) \
                    // m.stride[0] + 1
        rnn_input_size = 32 * freq  # 32 * 41 = 1312

        self.rnns = nn.Sequential(
            BatchRNN(rnn_input_size, hidden_size, batch_norm=False),
            *(BatchRNN(hidden_size, hidden_size) for _ in range(num_layers - 1)),
        )
        self.fc = SequenceWise(nn.Sequential(
            nn.BatchNorm1d(hidden_size),
            nn.Linear(hidden_size, num_classes, bias=False),
        ))

    def get_seq_lens(self, lengths: Tensor) -> Tensor:
        return conv_output_lengths(
            lengths, [m for m in self.conv.modules() if isinstance(m, nn.Conv2d)])

    def forward(self, x: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
        output_lengths = self.get_seq_lens(lengths.cpu())
        x = self.conv(x, output_lengths)
        n, c, f, t = x.shape
        x = x.view(n, c * f, t).transpose(1, 2).transpose(0, 1).contiguous()  # (T, N, C*F)
        for rnn in self.rnns:
            x = rnn(x, output_lengths)
        x = self.fc(x)
        # (T, N, classes) -> (N, T, classes); training mode: no softmax.
        return x.transpose(0, 1), output_lengths


@seeded_getter
def get_deepspeech(device: torch.device, preset: str) -> GetterReturnType:
    sizes = PRESET_SIZES[preset]
    n, frames = sizes["batch"], sizes["frames"]

    model = without_batch_stats_updates(DeepSpeech())
    model.train()  # what the original measured; there is no dropout

    inputs = torch.rand(n, 1, FREQ_BINS, frames)
    input_lengths = torch.rand(n) * sizes["len_span"] + sizes["len_low"]
    # The original passed float targets torch.rand(N, 10); CTCLoss does not accept float
    # targets, so draw class indices instead: 1..9 keeps the blank label 0 out of them.
    targets = (torch.rand(n, TARGET_LEN) * (NUM_CLASSES - 1)).long() + 1
    target_lengths = torch.full((n,), TARGET_LEN, dtype=torch.int)

    # The model takes the lengths back to the CPU itself (packing needs them there),
    # as the original did with lengths.cpu().int().
    inputs, input_lengths = inputs.to(device), input_lengths.to(device)
    targets, target_lengths = targets.to(device), target_lengths.to(device)
    call, params = functionalize(model, device)
    criterion = nn.CTCLoss()

    def forward(*new_params: Tensor) -> Tensor:
        out, out_sizes = call(new_params, inputs, input_lengths)
        # CTC expects log-probabilities over (T, N, C); the original passed the raw scores.
        # log_softmax adds one cheap op and keeps the cost of the same order.
        log_probs = out.transpose(0, 1).log_softmax(-1)
        return criterion(log_probs, targets, out_sizes, target_lengths)

    return forward, params
