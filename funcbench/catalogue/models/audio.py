"""wav2letter from torchaudio (DeepSpeech lives in deepspeech.py)."""
from __future__ import annotations

import torch
from torch import nn

from funcbench.catalogue.models.common import GetterReturnType, functionalize, seeded_getter

NUM_CLASSES = 28
# batch; waveform samples (700 samples give 3 output frames)
WAV2LETTER_SIZES = {"full": (10, 700), "small": (2, 700)}


@seeded_getter
def get_wav2letter(device: torch.device, preset: str) -> GetterReturnType:
    import torchaudio.models  # imported here so that a broken torchaudio only hides this model

    batch, frames = WAV2LETTER_SIZES[preset]
    call, params = functionalize(torchaudio.models.Wav2Letter(num_classes=NUM_CLASSES), device)
    inputs = torch.rand(batch, 1, frames).to(device)
    labels = torch.rand(batch, 3).mul(NUM_CLASSES).long().to(device)
    criterion = nn.NLLLoss()

    def forward(*new_params):
        return criterion(call(new_params, inputs), labels)

    return forward, params
