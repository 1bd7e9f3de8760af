#!/usr/bin/env python3
"""The SIPL network of sipl, written independently in PyTorch: the twin (issue 16).

It implements the network sipl builds from an experiment config (src/model/: backbone, IPL with
every CPP init, the SMG's kMaX layers with the Eq. 10 filtering and τ(epoch) of Eq. 11, the
-IPL / -SMG ablations) and the training objective (Eq. 5, 12, 13), from the paper and sipl's
documented conventions (docs/model.md), not from sipl's code. It loads the weights of a sipl
checkpoint (`model.safetensors`) by their sipl names:

    sipl name                         PyTorch parameter                  layout change
    <module>.kernel  (conv, DHWIO)    <module>.weight  (OIDHW)           permute(4, 3, 0, 1, 2)
    <module>.kernel  (transposed      <module>.weight  (Cin, Cout, k³)   permute(4, 3, 0, 1, 2)
                      conv, [k³, Cout, Cin])
    <module>.kernel  (dense, [in, out]) <module>.weight ([out, in])      transpose
    <module>.bias / .gamma / .beta    <module>.bias / .weight / .bias    none
    smg.queries, ipl.cpp, ipl.classBias, head.prototypes, head.classBias   same name, none

Tensors inside are PyTorch's (N, C, D, H, W); sipl's are channels-last (N, D, H, W, C) with the
same D, H, W order, so only the channel axis moves.

Commands (one JSON line on stdout each):
    sipl_twin.py check DIR...      DIR holds config.json, model.safetensors, batch.safetensors
                                   (written by sipl: src/bench/twin.ts); writes DIR/twin.safetensors
                                   with the logits, pseudo masks, every loss term and every
                                   parameter gradient under sipl's names and layouts
    sipl_twin.py bench DIR ...     times the training step (forward, backward, AdamW) and a
                                   sliding-window pass over the same windows as sipl's bench

Needs only torch and numpy (Debian's python3-torch 1.13 or any newer PyTorch).
"""
import argparse
import json
import math
import statistics
import struct
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

# ── safetensors, read and written with numpy (no extra package) ──────────────────────────────

DTYPES = {'F32': np.float32, 'F64': np.float64, 'I32': np.int32, 'U8': np.uint8}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read_safetensors(path):
    with open(path, 'rb') as f:
        data = f.read()
    (n,) = struct.unpack('<Q', data[:8])
    header = json.loads(data[8 : 8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        begin, end = info['data_offsets']
        array = np.frombuffer(data[base + begin : base + end], dtype=DTYPES[info['dtype']])
        out[name] = array.reshape(info['shape']).copy()
    return out


def write_safetensors(path, tensors):
    header = {}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        array = np.ascontiguousarray(tensors[name])
        blob = array.tobytes()
        header[name] = {'dtype': NAMES[array.dtype], 'shape': list(array.shape), 'data_offsets': [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b' ' * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


# ── building blocks ──────────────────────────────────────────────────────────────────────────

# The check's conditioning probe: every convolution's output gets Gaussian noise of ROUNDING['scale']
# times its largest |value| — twice the RMS rounding error of sipl's Winograd convolutions against
# tfjs's reference kernels (~1e-6 of the output's largest value; their largest single error is
# 1–4e-5, docs/kernels.md). How far that moves each compared quantity in float64 is how closely a
# float32 computation can be expected to agree with the twin there.
ROUNDING = {'scale': 0.0, 'generator': None}


def rounded(y):
    if ROUNDING['scale'] == 0.0:
        return y
    noise = torch.randn(y.shape, generator=ROUNDING['generator'], dtype=y.dtype)
    return y + ROUNDING['scale'] * y.detach().abs().max() * noise

LEAKY_SLOPE = 0.01

# LeakyReLU's kink: a pre-activation within rounding of 0 may fall on either side in float32 and
# float64, and its gradient then differs by (1 − slope)·dy — at a few such voxels that moves a
# layer's gradient by up to ~1e-2 of its largest value (measured: perturbing the twin's own conv
# outputs by 1e-5 of their largest value does the same). So the check takes the side of the kink
# that sipl took (its pre-activations, traced under the same names). That hides nothing: the
# pre-activations themselves are compared, so the sides can differ only where the values agree
# to the comparison's tolerance, i.e. within rounding of 0 ('adoptedMax' reports how close).
KINK = {'sipl': None, 'adopted': 0, 'adoptedMax': 0.0, 'pre': {}}


def leaky_relu(z, name):
    sipl = KINK['sipl']
    if sipl is None:
        return F.leaky_relu(z, LEAKY_SLOPE)
    mine = z.detach()
    KINK['pre'][name] = mine.permute(0, 2, 3, 4, 1)
    positive = torch.from_numpy(sipl[f'pre.{name}']).permute(0, 4, 1, 2, 3) > 0
    differ = positive != (mine > 0)
    if differ.any():
        KINK['adopted'] += int(differ.sum())
        KINK['adoptedMax'] = max(KINK['adoptedMax'], float(mine[differ].abs().max() / mine.abs().max()))
    return torch.where(positive, z, z * LEAKY_SLOPE)


def gelu(x):
    return F.gelu(x, approximate='tanh')


def same_padding(x, size, stride):
    """TensorFlow's 'same': output ⌈in / stride⌉, the odd padding voxel at the far end."""
    pads = []
    for n in reversed(x.shape[2:]):  # F.pad takes the last axis first
        out = -(-n // stride)
        total = max((out - 1) * stride + size - n, 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Conv(nn.Module):
    def __init__(self, cin, cout, size, stride=1, bias=True):
        super().__init__()
        self.size, self.stride = size, stride
        self.weight = nn.Parameter(torch.empty(cout, cin, size, size, size))
        self.bias = nn.Parameter(torch.zeros(cout)) if bias else None

    def forward(self, x):
        return rounded(F.conv3d(same_padding(x, self.size, self.stride), self.weight, self.bias, self.stride))


class UpConv(nn.Module):
    """transposed convolution with kernel = stride: each output voxel sees one input voxel"""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(cin, cout, stride, stride, stride))
        self.bias = nn.Parameter(torch.zeros(cout))

    def forward(self, x):
        return F.conv_transpose3d(x, self.weight, self.bias, self.stride)


class SpatialNorm(nn.Module):
    """instance norm (groups = channels) or group norm, statistics per sample"""

    def __init__(self, channels, norm, groups):
        super().__init__()
        self.groups = channels if norm == 'instance' else math.gcd(channels, groups)
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return F.group_norm(x, self.groups, self.weight, self.bias, eps=1e-5)


class ConvNormAct(nn.Module):
    def __init__(self, cin, cout, size, stride, norm, groups):
        super().__init__()
        self.conv = Conv(cin, cout, size, stride, bias=False)
        self.norm = SpatialNorm(cout, norm, groups)
        self.trace_name = ''  # its sipl name, set by SiplTwin

    def forward(self, x):
        return leaky_relu(self.norm(self.conv(x)), self.trace_name)


class ResBlock(nn.Module):
    def __init__(self, channels, norm, groups):
        super().__init__()
        self.conv1 = Conv(channels, channels, 3, bias=False)
        self.norm1 = SpatialNorm(channels, norm, groups)
        self.conv2 = Conv(channels, channels, 3, bias=False)
        self.norm2 = SpatialNorm(channels, norm, groups)
        self.trace_name = ''

    def forward(self, x):
        h = leaky_relu(self.norm1(self.conv1(x)), f'{self.trace_name}.act1')
        return leaky_relu(x + self.norm2(self.conv2(h)), f'{self.trace_name}.act2')


class Stage(nn.Module):
    """an encoder stage: [stride-2 conv →] residual blocks (stage 0's down-sampling is the stem)"""

    def __init__(self, down, blocks):
        super().__init__()
        if down is not None:
            self.down = down
        self.block = nn.ModuleList(blocks)

    def forward(self, x):
        if hasattr(self, 'down'):
            x = self.down(x)
        for b in self.block:
            x = b(x)
        return x


class DecoderLevel(nn.Module):
    def __init__(self, cin, cout, norm, groups):
        super().__init__()
        self.up = UpConv(cin, cout, 2)
        self.fuse = ConvNormAct(2 * cout, cout, 3, 1, norm, groups)


class Backbone(nn.Module):
    """residual conv U-Net; stem = patch embedding with kernel = stride; F_o at full resolution"""

    def __init__(self, cfg, in_channels):
        super().__init__()
        widths, depths, p, e = cfg['widths'], cfg['depths'], cfg['patchStride'], cfg['embedDim']
        norm, groups = cfg['norm'], cfg['groups']
        self.strides = [p * 2**i for i in range(len(widths))]
        self.full = ConvNormAct(in_channels, e, 3, 1, norm, groups)
        self.stem = ConvNormAct(in_channels, widths[0], p, p, norm, groups)
        self.enc = nn.ModuleList(
            Stage(None if i == 0 else ConvNormAct(widths[i - 1], widths[i], 3, 2, norm, groups), [ResBlock(widths[i], norm, groups) for _ in range(depths[i])])
            for i in range(len(widths))
        )
        self.dec = nn.ModuleList(DecoderLevel(widths[i + 1], widths[i], norm, groups) for i in range(len(widths) - 1))
        self.out = nn.Module()
        self.out.up = UpConv(widths[0], e, p)
        self.out.norm = SpatialNorm(e, norm, groups)
        self.out.proj = Conv(e, e, 1)

    def forward(self, x):
        skips = []
        h = self.stem(x)
        for stage in self.enc:
            h = stage(h)
            skips.append(h)
        f = h
        features = {self.strides[-1]: f}
        for i in range(len(self.strides) - 2, -1, -1):
            level = self.dec[i]
            h = level.fuse(torch.cat([level.up(h), skips[i]], 1))
            features[self.strides[i]] = h
        fused = leaky_relu(self.out.norm(self.out.up(h) + self.full(x)), 'backbone.out')
        return f, features, self.out.proj(fused)


class Dense(nn.Linear):
    pass


class RmsNorm(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))

    def forward(self, x):
        return x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-6) * self.weight


def layer_norm(module, x):
    return F.layer_norm(x, x.shape[-1:], module.weight, module.bias, eps=1e-5)


def l2_normalize(x, eps=1e-6):
    return x / torch.sqrt((x * x).sum(-1, keepdim=True) + eps * eps)


def block_mean_nearest(x, size):
    """resizes a channels-first grid by integer factors: block mean down, nearest up"""
    for axis, target in enumerate(size):
        n = x.shape[2 + axis]
        if n > target:
            f = n // target
            shape = list(x.shape)
            shape[2 + axis : 3 + axis] = [target, f]
            x = x.reshape(shape).mean(3 + axis)
        elif n < target:
            x = x.repeat_interleave(target // n, dim=2 + axis)
    return x


# An argmax near a tie (the voxel's cluster in Eq. 6, its class in the binarised M^{l−1} of Eq.
# 10) may go either way in float32 and float64: where the twin's top-2 gap is below TIE of the
# scale, it takes sipl's choice (traced as smg.layer.l.assignment / .previous); elsewhere it keeps
# its own, and the choices are compared.
TIE = {'sipl': None, 'relative': 1e-3, 'adopted': 0}


def choose(logits, name, scale):
    """argmax over the last axis, sipl's choice where the top-2 gap is below TIE['relative'] · scale"""
    mine = logits.argmax(-1)
    sipl = TIE['sipl']
    if sipl is None or name not in sipl:
        return mine
    theirs = torch.from_numpy(sipl[name]).long().reshape(mine.shape)
    top = logits.detach().topk(2, dim=-1).values
    near_tie = (top[..., 0] - top[..., 1]) < TIE['relative'] * scale
    adopt = near_tie & (theirs != mine)
    TIE['adopted'] += int(adopt.sum())
    return torch.where(adopt, theirs, mine)


def margin(logits):
    """smallest gap between the largest and second-largest value along the last axis (argmax stability)"""
    if logits.shape[-1] < 2:
        return float('inf')
    top = logits.topk(2, dim=-1).values
    return float((top[..., 0] - top[..., 1]).min().detach())


# ── SMG: kMaX layers with the self-supervised filtering (Eq. 6–11) ───────────────────────────


class KmaxLayer(nn.Module):
    def __init__(self, pixel_channels, dq, heads, ffn_hidden, classes):
        super().__init__()
        self.dq, self.heads = dq, heads
        self.pixelProj = Dense(pixel_channels, dq)
        self.pixelNorm = nn.LayerNorm(dq)
        self.pixelHead = Dense(dq, dq)
        self.kernelNorm = nn.LayerNorm(dq)
        self.kernelProj = Dense(dq, dq)
        self.valueProj = Dense(dq, dq)
        self.crossNorm = RmsNorm(dq)
        self.crossOut = Dense(dq, dq, bias=False)
        self.attnNorm = nn.LayerNorm(dq)
        self.qkv = Dense(dq, 3 * dq)
        self.attnOut = Dense(dq, dq)
        self.ffnNorm = nn.LayerNorm(dq)
        self.ffn1 = Dense(dq, ffn_hidden)
        self.ffn2 = Dense(ffn_hidden, dq)
        self.classNorm = nn.LayerNorm(dq)
        self.class1 = Dense(dq, dq)
        self.class2 = Dense(dq, classes + 1)
        self.trace_name = ''

    def kernels(self, q):
        return self.kernelProj(layer_norm(self.kernelNorm, q))

    def self_attention(self, q):
        b, n, _ = q.shape
        h, dh = self.heads, self.dq // self.heads
        qkv = self.qkv(layer_norm(self.attnNorm, q)).reshape(b, n, 3, h, dh).permute(2, 0, 3, 1, 4)  # [3, B, h, N, dh]
        weights = torch.softmax(qkv[0] @ qkv[1].transpose(-1, -2) / math.sqrt(dh), -1)
        mixed = (weights @ qkv[2]).permute(0, 2, 1, 3).reshape(b, n, self.dq)
        return self.attnOut(mixed)

    def forward(self, pixels, queries, previous, tau, record):
        """pixels [B, P, C]; queries [B, N, d_q]; previous: one-hot M^{l−1} on this grid [B, P, K+1] or None"""
        projected = gelu(layer_norm(self.pixelNorm, self.pixelProj(pixels)))
        embeddings = l2_normalize(self.pixelHead(projected))
        similarity = embeddings @ self.kernels(queries).transpose(1, 2)  # [B, P, N], cosines
        record['assignmentMargin'] = min(record['assignmentMargin'], margin(similarity))
        index = choose(similarity, f'{self.trace_name}.assignment', 1.0)
        record['choices'][f'{self.trace_name}.assignment'] = index
        assignment = F.one_hot(index, queries.shape[1]).to(pixels.dtype)  # Eq. 6, no gradient
        keep = None
        if previous is not None:
            # Eq. 10: cluster n takes part only if one foreground class of M^{l−1} holds ≥ τ of its voxels
            counts = assignment.transpose(1, 2) @ previous  # [B, N, K+1]
            ratio = counts[..., 1:].max(-1).values / counts.sum(-1).clamp(min=1)
            keep = (ratio.float() >= tau).to(pixels.dtype)
            assignment = assignment * keep[:, None, :]
        updated = queries + self.self_attention(queries)  # self-attention on the pre-update queries
        aggregate = assignment.transpose(1, 2) @ self.valueProj(projected)  # Σ over each cluster's voxels
        updated = updated + self.crossOut(self.crossNorm(aggregate))
        updated = updated + self.ffn2(gelu(self.ffn1(layer_norm(self.ffnNorm, updated))))
        pixel_to_cluster = embeddings @ self.kernels(updated).transpose(1, 2)  # Eq. 7
        cluster_to_class = self.class2(gelu(self.class1(layer_norm(self.classNorm, updated))))  # Eq. 8
        mask = pixel_to_cluster @ cluster_to_class / math.sqrt(queries.shape[1])  # Eq. 9
        return updated, mask, keep


class Smg(nn.Module):
    def __init__(self, cfg, num_queries, channels_at_stride, classes):
        super().__init__()
        self.classes = classes
        self.queries = nn.Parameter(torch.empty(num_queries, cfg['queryDim']))
        self.strides = [s for s in cfg['scales'] for _ in range(cfg['layersPerScale'])]
        self.layer = nn.ModuleList(
            [KmaxLayer(channels_at_stride[s], cfg['queryDim'], cfg['heads'], cfg['ffnHidden'], classes) for s in self.strides]
        )

    def forward(self, features, tau, record):
        b = next(iter(features.values())).shape[0]
        queries = self.queries.expand(b, -1, -1)
        masks = []
        record['keep'] = []
        for stride, layer in zip(self.strides, self.layer):
            feature = features[stride]
            _, c, d, h, w = feature.shape
            previous = None
            if tau is not None and masks:
                last = masks[-1].permute(0, 2, 3, 4, 1)  # [B, d', h', w', K+1]
                record['classMargin'] = min(record['classMargin'], margin(last))
                # binarise M^{l−1} on its grid, move the one-hot map to this grid (block mean / nearest), binarise again
                source = choose(last, f'{layer.trace_name}.source', float(last.detach().abs().max()))
                labels = F.one_hot(source, self.classes + 1).permute(0, 4, 1, 2, 3).to(feature.dtype)
                on_grid = block_mean_nearest(labels, (d, h, w)).permute(0, 2, 3, 4, 1)
                classes = on_grid.argmax(-1)  # exact block means: ties go to the first class on both sides
                record['choices'][f'{layer.trace_name}.source'] = source
                record['choices'][f'{layer.trace_name}.previous'] = classes
                previous = F.one_hot(classes, self.classes + 1).reshape(b, d * h * w, self.classes + 1).to(feature.dtype)
            pixels = feature.permute(0, 2, 3, 4, 1).reshape(b, d * h * w, c)
            queries, mask, keep = layer(pixels, queries, previous, tau, record)
            record['keep'].append(keep)
            masks.append(mask.reshape(b, d, h, w, self.classes + 1).permute(0, 4, 1, 2, 3))
        return masks


# ── IPL: prototypes from instance and common prompts (Eq. 2–4) ───────────────────────────────


def head_masks(probabilities, classes, overlapping):
    """[B, K+1, …] exclusive class probabilities → the K heads' masks; nested regions sum classes ≥ k"""
    masks = probabilities[:, 1:]
    if overlapping:
        masks = torch.flip(torch.cumsum(torch.flip(masks, [1]), 1), [1])
    return masks


def load_class_embeddings(path):
    if path.endswith('.npy'):
        return np.load(path).astype(np.float64)
    with open(path) as f:
        return np.array(json.load(f), dtype=np.float64)


class CommonPrompts(nn.Module):
    def __init__(self, cpp, classes, dim):
        super().__init__()
        if cpp['init'] == 'random':
            self.vectors = nn.Parameter(torch.empty(classes, dim))
            return
        matrix = np.eye(classes) if cpp['init'] == 'onehot' else load_class_embeddings(cpp['file'])
        self.register_buffer('fixed', torch.tensor(matrix, dtype=torch.float32))
        self.proj = Dense(matrix.shape[1], dim)

    def forward(self):
        return self.vectors if hasattr(self, 'vectors') else self.proj(self.fixed)


class Ipl(nn.Module):
    def __init__(self, model, classes, feature_dim, overlapping):
        super().__init__()
        self.classes, self.overlapping = classes, overlapping
        self.cpp = CommonPrompts(model['cpp'], classes, feature_dim)
        self.mlp = nn.ModuleList([Dense(2 * feature_dim, model['prototypeHidden']), Dense(model['prototypeHidden'], model['backbone']['embedDim'])])
        self.classBias = nn.Parameter(torch.zeros(classes)) if model['classBias'] else None

    def forward(self, f, pseudo, fo):
        b, di = f.shape[:2]
        masks = head_masks(block_mean_nearest(torch.softmax(pseudo, 1), f.shape[2:]), self.classes, self.overlapping)
        ipp = torch.einsum('bkdhw,bcdhw->bkc', masks, f) / f[0, 0].numel()  # Eq. 2: GAP(M_k ⊗ F)
        cpp = self.cpp().to(f.dtype).expand(b, -1, -1)
        prototypes = self.mlp[1](gelu(self.mlp[0](torch.cat([ipp, cpp], -1))))  # Eq. 3
        logits = torch.einsum('bedhw,bke->bkdhw', fo, prototypes)  # Eq. 4
        return logits if self.classBias is None else logits + self.classBias[None, :, None, None, None]


class PlainPrototypes(nn.Module):
    def __init__(self, model, classes):
        super().__init__()
        self.prototypes = nn.Parameter(torch.empty(classes, model['backbone']['embedDim']))
        self.classBias = nn.Parameter(torch.zeros(classes)) if model['classBias'] else None

    def forward(self, fo):
        logits = torch.einsum('bedhw,ke->bkdhw', fo, self.prototypes)
        return logits if self.classBias is None else logits + self.classBias[None, :, None, None, None]


# ── the network and its objective ────────────────────────────────────────────────────────────


def tau_at(epoch, tau):
    """Eq. 11, from the current epoch"""
    progress = 1.0 if tau['rampEpochs'] == 0 else min(max(epoch, 0) / tau['rampEpochs'], 1.0)
    return progress * (tau['end'] - tau['start']) + tau['start']


class SiplTwin(nn.Module):
    def __init__(self, model, smg, in_channels, classes, overlapping):
        super().__init__()
        self.model_cfg, self.smg_cfg = model, smg
        self.classes = classes
        self.backbone = Backbone(model['backbone'], in_channels)
        channels = dict(zip(self.backbone.strides, model['backbone']['widths']))
        if model['smg']:
            self.smg = Smg(smg, model['queries'], channels, classes)
        else:
            self.mask_stride = min(smg['scales'])
            self.maskHead = Dense(channels[self.mask_stride], classes + 1)
        if model['ipl']:
            self.ipl = Ipl(model, classes, model['backbone']['widths'][-1], overlapping)
        else:
            self.head = PlainPrototypes(model, classes)
        for path, module in self.named_modules():
            if isinstance(module, (ConvNormAct, ResBlock, KmaxLayer)):
                module.trace_name = path

    def tau(self, training, epoch):
        filtering = training or self.smg_cfg['filterAtInference']
        return tau_at(epoch, self.smg_cfg['tau']) if self.model_cfg['smg'] and filtering else None

    def forward(self, x, training, epoch, record=None):
        record = record if record is not None else {}
        record.setdefault('assignmentMargin', float('inf'))
        record.setdefault('classMargin', float('inf'))
        record.setdefault('choices', {})
        f, features, fo = self.backbone(x)
        if self.model_cfg['smg']:
            aux = self.smg(features, self.tau(training, epoch), record)
        else:
            aux = [self.maskHead(features[self.mask_stride].permute(0, 2, 3, 4, 1)).permute(0, 4, 1, 2, 3)]
        logits = self.ipl(f, aux[-1], fo) if self.model_cfg['ipl'] else self.head(fo)
        return logits, aux


def soft_dice_loss(p, y, smooth):
    """1 − mean over (sample, channel) of (2Σpy + s) / (Σp² + Σy² + s); p, y [B, C, …]"""
    dims = tuple(range(2, p.dim()))
    dice = (2 * (p * y).sum(dims) + smooth) / ((p * p).sum(dims) + (y * y).sum(dims) + smooth)
    return 1 - dice.mean()


def sipl_losses(logits, aux, labels, classes, overlapping, loss):
    """Eq. 5, 12, 13 for logits [B, K, D, H, W], aux [B, K+1, d, h, w] and labels [B, D, H, W]"""
    one_hot = F.one_hot(labels.long(), classes + 1).permute(0, 4, 1, 2, 3).to(logits.dtype)
    regions = head_masks(one_hot, classes, overlapping)
    seg = soft_dice_loss(torch.sigmoid(logits), regions, loss['diceSmooth']) + F.binary_cross_entropy_with_logits(logits, regions)
    per_layer = []
    for mask in aux:
        if loss['auxTarget'] == 'full':
            mask = F.interpolate(mask, size=labels.shape[1:], mode='trilinear', align_corners=False)
            target = one_hot
        else:
            target = block_mean_nearest(one_hot, mask.shape[2:])
        log_p = torch.log_softmax(mask, 1)
        ce = -(target * log_p).sum(1).mean()
        per_layer.append(soft_dice_loss(log_p.exp(), target, loss['diceSmooth']) + ce)
    aux_sum = sum(per_layer) if per_layer else torch.zeros((), dtype=logits.dtype)
    return {'total': seg + loss['alpha'] * aux_sum, 'seg': seg, 'aux': aux_sum, 'perLayer': per_layer}


# ── sipl names and layouts ───────────────────────────────────────────────────────────────────


def parameter_map(net):
    """sipl name → (torch parameter, kind) for every parameter of the twin"""
    params = dict(net.named_parameters())
    kinds = {}
    for module_name, module in net.named_modules():
        kind = 'dense' if isinstance(module, nn.Linear) else 'other'
        for p_name, _ in module.named_parameters(recurse=False):
            kinds[f'{module_name}.{p_name}' if module_name else p_name] = kind
    out = {}
    for name, p in params.items():
        out[sipl_name_of(name)] = (p, kinds[name])
    return out


def sipl_name_of(name):
    """'backbone.enc.1.block.0.conv1.weight' → 'backbone.enc.1.block.0.conv1.kernel' (norms: gamma / beta)"""
    if name == 'ipl.cpp.vectors':
        return 'ipl.cpp'
    owner, _, leaf = name.rpartition('.')
    if leaf == 'weight':
        return owner + ('.gamma' if _is_norm(owner) else '.kernel')
    if leaf == 'bias' and _is_norm(owner):
        return owner + '.beta'
    return name


def _is_norm(owner):
    last = owner.split('.')[-1]
    return last.startswith('norm') or last.endswith('Norm')


def load_sipl_weights(net, weights):
    mapping = parameter_map(net)
    missing = sorted(set(mapping) - set(weights))
    extra = sorted(set(weights) - set(mapping))
    if missing or extra:
        raise SystemExit(f'sipl_twin: weights do not fit the twin (missing {missing[:5]}, unexpected {extra[:5]})')
    with torch.no_grad():
        for name, (p, kind) in mapping.items():
            value = torch.from_numpy(weights[name])
            if value.dim() == 5:
                value = value.permute(4, 3, 0, 1, 2)
            elif kind == 'dense' and value.dim() == 2:
                value = value.t()
            if tuple(value.shape) != tuple(p.shape):
                raise SystemExit(f'sipl_twin: {name} has shape {tuple(value.shape)}, the twin needs {tuple(p.shape)}')
            p.copy_(value)
    return mapping


def to_sipl_layout(tensor, kind):
    if tensor.dim() == 5:
        return tensor.permute(2, 3, 4, 1, 0)
    if kind == 'dense' and tensor.dim() == 2:
        return tensor.t()
    return tensor


def build(cfg):
    return SiplTwin(cfg['model'], cfg['smg'], cfg['inChannels'], cfg['numClasses'], cfg['overlappingRegions'])


# ── commands ─────────────────────────────────────────────────────────────────────────────────


def training_pass(net, cfg, x, labels, mapping, sipl):
    """forward, Eq. 13 and backward, with sipl's side of every kink and near-tie (see KINK, TIE); every compared quantity"""
    KINK.update(sipl=sipl, adopted=0, adoptedMax=0.0, pre={})
    TIE.update(sipl=sipl, adopted=0)
    record = {}
    logits, aux = net(x, cfg['training'], cfg['epoch'], record)
    losses = sipl_losses(logits, aux, labels, cfg['numClasses'], cfg['overlappingRegions'], cfg['loss'])
    net.zero_grad()
    losses['total'].backward()
    KINK['sipl'] = None
    TIE['sipl'] = None
    out = {'logits': logits.permute(0, 2, 3, 4, 1)}
    for l, mask in enumerate(aux):
        out[f'aux.{l}'] = mask.permute(0, 2, 3, 4, 1)
    for key in ('total', 'seg', 'aux'):
        out[f'loss.{key}'] = losses[key].reshape(1)
    for l, value in enumerate(losses['perLayer']):
        out[f'loss.aux.{l}'] = value.reshape(1)
    for name, z in KINK['pre'].items():
        out[f'pre.{name}'] = z
    for name, index in record['choices'].items():
        out[name] = index.double()
    for l, keep in enumerate(record.get('keep', [])):
        if keep is not None:
            out[f'keep.{l}'] = keep
    for name, (p, kind) in mapping.items():
        out[f'grad.{name}'] = to_sipl_layout(p.grad if p.grad is not None else torch.zeros_like(p), kind)
    # copies: a gradient's numpy view would change with the next pass's zero_grad and backward
    arrays = {k: v.detach().to(torch.float64 if v.is_floating_point() else v.dtype).numpy().copy() for k, v in out.items()}
    return arrays, record


def scales(arrays):
    """each quantity's comparison scale: its largest |value|; a gradient that is 0 in exact arithmetic (below 1e-9 of the largest) uses the largest gradient's"""
    largest = max((float(np.abs(v).max()) for k, v in arrays.items() if k.startswith('grad.')), default=0.0)
    out = {}
    for k, v in arrays.items():
        scale = float(np.abs(v).max()) if v.size else 0.0
        out[k] = largest if k.startswith('grad.') and scale < 1e-9 * largest else scale
    return out


def check(directory, dtype, sipl_file, out_file, rounding, draws):
    with open(f'{directory}/config.json') as f:
        cfg = json.load(f)
    net = build(cfg).to(dtype)
    mapping = load_sipl_weights(net, read_safetensors(f'{directory}/model.safetensors'))
    net = net.to(dtype)
    batch = read_safetensors(f'{directory}/batch.safetensors')
    x = torch.from_numpy(batch['x']).to(dtype).permute(0, 4, 1, 2, 3)
    labels = torch.from_numpy(batch['labels'])
    sipl = read_safetensors(f'{directory}/{sipl_file}')
    arrays, record = training_pass(net, cfg, x, labels, mapping, sipl)
    adopted = {'adoptedBranches': KINK['adopted'], 'adoptedMax': KINK['adoptedMax'], 'adoptedChoices': TIE['adopted']}
    write_safetensors(f'{directory}/{out_file}', arrays)
    # the conditioning probe: the same pass with convolution outputs rounded at sipl's level
    scale = scales(arrays)
    spread = {k: 0.0 for k in arrays}
    for draw in range(draws):
        ROUNDING.update(scale=rounding, generator=torch.Generator().manual_seed(draw))
        try:
            probed, _ = training_pass(net, cfg, x, labels, mapping, sipl)
        finally:
            ROUNDING['scale'] = 0.0
        for k, v in arrays.items():
            if k in probed and scale[k] > 0:
                spread[k] = max(spread[k], float(np.abs(probed[k] - v).max()) / scale[k])
    finite = lambda v: v if math.isfinite(v) else None  # noqa: E731 — JSON has no Infinity
    return {
        'dir': directory,
        'tau': net.tau(cfg['training'], cfg['epoch']),
        'assignmentMargin': finite(record['assignmentMargin']),
        'classMargin': finite(record['classMargin']),
        'kept': [None if k is None else [int(k.sum()), int(k.numel())] for k in record.get('keep', [])],
        **adopted,
        'rounding': rounding,
        'spread': spread,
    }


def time_steps(fn, steps, warmup):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def window_starts(size, patch, overlap):
    if size <= patch:
        return [0]
    target = patch * (1 - overlap)
    steps = math.ceil((size - patch) / target) + 1
    actual = (size - patch) / (steps - 1)
    return [int(math.floor(actual * i + 0.5)) for i in range(steps)]


def bench(directory, steps, warmup, threads, infer_size, infer_batch, overlap, infer_warmup=0):
    torch.set_num_threads(threads)
    with open(f'{directory}/config.json') as f:
        cfg = json.load(f)
    net = build(cfg)
    load_sipl_weights(net, read_safetensors(f'{directory}/model.safetensors'))
    batch = read_safetensors(f'{directory}/batch.safetensors')
    x = torch.from_numpy(batch['x']).permute(0, 4, 1, 2, 3).contiguous()
    labels = torch.from_numpy(batch['labels'])
    opt = cfg['optimizer']  # the config's optimiser, as sipl's bench step
    if opt['name'] == 'adamw':
        optimizer = torch.optim.AdamW(net.parameters(), lr=opt['lr'], betas=tuple(opt['betas']), weight_decay=opt['weightDecay'], eps=1e-8)
    else:
        optimizer = torch.optim.SGD(net.parameters(), lr=opt['lr'], momentum=opt['momentum'], nesterov=opt['nesterov'], weight_decay=opt['weightDecay'])

    def step():
        optimizer.zero_grad(set_to_none=True)
        logits, aux = net(x, True, cfg['epoch'])
        sipl_losses(logits, aux, labels, cfg['numClasses'], cfg['overlappingRegions'], cfg['loss'])['total'].backward()
        optimizer.step()

    times = time_steps(step, steps, warmup)
    result = {
        'torch': torch.__version__,
        'threads': torch.get_num_threads(),
        'stepMsMedian': statistics.median(times),
        'stepMsMin': min(times),
        'stepMs': times,
        'steps': steps,
        'inferMs': None,
    }
    if infer_size > 0:
        # the same windows as sipl's bench: an infer_size³ volume, windows of the patch, Gaussian-weighted accumulation
        patch = x.shape[2]
        starts = window_starts(infer_size, patch, overlap)
        windows = [(z, y, w) for z in starts for y in starts for w in starts]
        volume = torch.rand(1, cfg['inChannels'], infer_size, infer_size, infer_size)
        centre = (patch - 1) / 2
        axis = torch.exp(-((torch.arange(patch) - centre) ** 2) / (2 * (patch * 0.125) ** 2))
        weight = axis[:, None, None] * axis[None, :, None] * axis[None, None, :]
        net.eval()

        def sliding_window():
            acc = torch.zeros(cfg['numClasses'], infer_size, infer_size, infer_size)
            norm = torch.zeros(infer_size, infer_size, infer_size)
            for i in range(0, len(windows), infer_batch):
                group = windows[i : i + infer_batch]
                crops = torch.cat([volume[:, :, z : z + patch, y : y + patch, w : w + patch] for z, y, w in group])
                probs = torch.sigmoid(net(crops, False, cfg['epoch'])[0])
                for (z, y, w), p in zip(group, probs):
                    acc[:, z : z + patch, y : y + patch, w : w + patch] += p * weight
                    norm[z : z + patch, y : y + patch, w : w + patch] += weight
            return (acc / norm).argmax(0)

        with torch.no_grad():
            # untimed passes first, as sipl's --infer-warmup (counted: the result reports the passes run)
            warmed = 0
            for _ in range(infer_warmup):
                sliding_window()
                warmed += 1
            start = time.perf_counter()
            sliding_window()
            result['inferMs'] = (time.perf_counter() - start) * 1000
        result['inferWarmup'] = warmed
        result['windows'] = len(windows)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest='command', required=True)
    c = sub.add_parser('check')
    c.add_argument('dirs', nargs='+')
    c.add_argument('--dtype', choices=['float64', 'float32'], default='float64')
    c.add_argument('--sipl', default='sipl.safetensors', help="sipl's results in DIR (its pre-activations settle the kink)")
    c.add_argument('--out', default='twin.safetensors', help='where in DIR the twin writes its results')
    c.add_argument('--rounding', type=float, default=2e-6, help="the conditioning probe's noise, relative to each conv output's largest value (0: none)")
    c.add_argument('--draws', type=int, default=2, help='conditioning probe passes')
    b = sub.add_parser('bench')
    b.add_argument('dir')
    b.add_argument('--steps', type=int, default=5)
    b.add_argument('--warmup', type=int, default=1)
    b.add_argument('--threads', type=int, default=1)
    b.add_argument('--infer-size', type=int, default=0)
    b.add_argument('--infer-batch', type=int, default=2)
    b.add_argument('--overlap', type=float, default=0.5)
    b.add_argument('--infer-warmup', type=int, default=0, help='untimed sliding-window passes before the timed one')
    args = parser.parse_args()
    if args.command == 'check':
        dtype = torch.float64 if args.dtype == 'float64' else torch.float32
        torch.set_num_threads(1)
        for d in args.dirs:
            print(json.dumps(check(d, dtype, args.sipl, args.out, args.rounding, args.draws if args.rounding > 0 else 0)), flush=True)
    else:
        print(json.dumps(bench(args.dir, args.steps, args.warmup, args.threads, args.infer_size, args.infer_batch, args.overlap, args.infer_warmup)))


if __name__ == '__main__':
    sys.exit(main())
