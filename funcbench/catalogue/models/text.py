"""Attention models: the word-language-model Transformer and a torchtext-style
multi-head attention container."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from funcbench.catalogue import compat
from funcbench.catalogue.models.common import GetterReturnType, functionalize, seeded_getter

# ---------------------------------------------------------------- transformer

NTOKEN = 50
# (sequence steps, batch): the model treats dim 0 of the token matrix as sequence.
TRANSFORMER_SIZES = {"full": (64, 128), "small": (16, 16)}


class PositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float, max_len: int = 5000):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(x + self.pe[: x.size(0)])


class TransformerModel(nn.Module):
    def __init__(self, ntoken: int, ninp: int, nhead: int, nhid: int, nlayers: int, dropout: float = 0.5):
        super().__init__()
        self.ninp = ninp
        self.encoder = nn.Embedding(ntoken, ninp)
        self.pos_encoder = PositionalEncoding(ninp, dropout)
        layer = nn.TransformerEncoderLayer(ninp, nhead, nhid, dropout)
        self.transformer_encoder = nn.TransformerEncoder(layer, nlayers, enable_nested_tensor=False)
        self.decoder = nn.Linear(ninp, ntoken)
        nn.init.uniform_(self.encoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)

    def forward(self, src: Tensor, causal_mask: Tensor) -> Tensor:
        # The mask is an argument, never cached on self: a tensor stored on the module
        # inside a torch.func transform escapes it and breaks the next call.
        x = self.pos_encoder(self.encoder(src) * math.sqrt(self.ninp))
        # CPU's fused attention kernel has no double backward (jvp, vhp, hessian fail
        # with "derivative for aten::_scaled_dot_product_flash_attention_for_cpu_backward
        # is not implemented"); the math backend has every derivative.
        with compat.math_attention():
            x = self.transformer_encoder(x, causal_mask)
        return torch.log_softmax(self.decoder(x), dim=-1)


@seeded_getter
def get_transformer(device: torch.device, preset: str) -> GetterReturnType:
    steps, batch = TRANSFORMER_SIZES[preset]
    model = TransformerModel(ntoken=NTOKEN, ninp=720, nhead=12, nhid=2048, nlayers=2)
    model.eval()  # dropout off: forward is deterministic and both APIs see one function
    call, params = functionalize(model, device)
    data = torch.rand(steps, batch + 1).mul(NTOKEN).long().to(device)
    inputs, targets = data.narrow(1, 0, batch), data.narrow(1, 1, batch)
    causal_mask = nn.Transformer.generate_square_subsequent_mask(steps).to(device)
    criterion = nn.NLLLoss()

    def forward(*new_params):
        out = call(new_params, inputs, causal_mask)
        return criterion(out.reshape(steps * batch, NTOKEN), targets.reshape(steps * batch))

    return forward, params


# -------------------------------------------------------------- multiheadattn


class InProjContainer(nn.Module):
    def __init__(self, query_proj: nn.Module, key_proj: nn.Module, value_proj: nn.Module):
        super().__init__()
        self.query_proj, self.key_proj, self.value_proj = query_proj, key_proj, value_proj

    def forward(self, query, key, value):
        return self.query_proj(query), self.key_proj(key), self.value_proj(value)


class ScaledDotProduct(nn.Module):
    """Attention over (length, batch * heads, head_dim) with optional key/value biases."""

    def forward(self, query, key, value, attn_mask=None, bias_k=None, bias_v=None):
        if bias_k is not None and bias_v is not None:
            key, value = torch.cat([key, bias_k]), torch.cat([value, bias_v])
            if attn_mask is not None:  # the bias position is never masked
                attn_mask = nn.functional.pad(attn_mask, (0, 1))
        head_dim = query.size(-1)
        query, key, value = (t.transpose(-2, -3) for t in (query, key, value))
        weights = torch.matmul(query * head_dim ** -0.5, key.transpose(-2, -1))
        if attn_mask is not None:
            weights = weights.masked_fill(attn_mask, -1e8)
        weights = torch.softmax(weights, dim=-1)
        return torch.matmul(weights, value).transpose(-2, -3), weights


class MultiheadAttentionContainer(nn.Module):
    def __init__(self, nhead: int, in_proj: nn.Module, attention: nn.Module, out_proj: nn.Module):
        super().__init__()
        self.nhead, self.in_proj, self.attention, self.out_proj = nhead, in_proj, attention, out_proj

    def forward(self, query, key, value, attn_mask=None, bias_k=None, bias_v=None):
        tgt_len, src_len, batch, embed = query.size(-3), key.size(-3), query.size(-2), query.size(-1)
        q, k, v = self.in_proj(query, key, value)
        head_dim = embed // self.nhead
        q = q.reshape(tgt_len, batch * self.nhead, head_dim)
        k = k.reshape(src_len, batch * self.nhead, head_dim)
        v = v.reshape(src_len, batch * self.nhead, head_dim)
        out, weights = self.attention(q, k, v, attn_mask=attn_mask, bias_k=bias_k, bias_v=bias_v)
        return self.out_proj(out.reshape(tgt_len, batch, embed)), weights


@seeded_getter
def get_multiheadattn(device: torch.device, preset: str) -> GetterReturnType:
    embed_dim, nhead, tgt_len, src_len, batch = 10, 5, 6, 10, 64
    linear = lambda: nn.Linear(embed_dim, embed_dim, bias=False)  # noqa: E731
    model = MultiheadAttentionContainer(nhead, InProjContainer(linear(), linear(), linear()),
                                        ScaledDotProduct(), linear())
    call, params = functionalize(model, device)
    query = torch.rand(tgt_len, batch, embed_dim).to(device)
    key = value = torch.rand(src_len, batch, embed_dim).to(device)
    mask_2d = torch.randint(0, 2, (tgt_len, src_len)).to(torch.bool)
    attn_mask = torch.stack([mask_2d] * (batch * nhead)).to(device)
    # (1, 1, embed) repeated per batch and split per head: (1, batch * nhead, head_dim),
    # the shape the original's repeat + reshape produced.
    bias = torch.rand(1, 1, embed_dim).repeat(1, batch, 1).reshape(1, batch * nhead, -1).to(device)

    def forward(*new_params):
        out, weights = call(new_params, query, key, value, attn_mask=attn_mask, bias_k=bias, bias_v=bias)
        return out.sum() + weights.sum()

    return forward, params
